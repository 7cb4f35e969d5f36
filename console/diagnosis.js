// Diagnosis view: the seed's troubleshooting checklist (常见问题) answered for one user,
// each line green, red or grey with the gateway's reason, and the user's devices.

import { api } from './api.js';
import { $, h, fmtDateTime, sentence, humanize, clearErrors, setFieldError } from './dom.js';

/** The seed's troubleshooting checklist, in words an operator reads. */
const CHECK_LABELS = {
  certificate_configured: 'Certificate configured',
  certificate_healthy: 'Certificate healthy',
  token_reported: 'Push token reported',
  device_state: 'Device state',
  last_notification: 'Last notification and vendor answer',
};

/** Set by initDiagnosis: how to switch views and what to do when the token is refused. */
let ctx = null;

/** Readable gateway text: check keys become their labels, unix times become dates. */
export function readable(text) {
  const t = String(text || '')
    .replace(/\b(\d{10}) \(unix\)/g, (_, secs) => fmtDateTime(new Date(Number(secs) * 1000)))
    .replace(/\b(certificate_configured|certificate_healthy|token_reported|device_state|last_notification)\b/g,
      (key) => CHECK_LABELS[key].toLowerCase());
  return sentence(t);
}

export function initDiagnosis(context) {
  ctx = context;
  const form = $('#diagnosis-form');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const user = form.user.value.trim();
    if (!user) return setFieldError(form, 'user', 'Enter a user ID.');
    const target = `#/diagnosis?user=${encodeURIComponent(user)}`;
    if (location.hash === target) runDiagnosis(user);
    else location.hash = target;
  });
}

export function showDiagnosis(user) {
  ctx.show('diagnosis');
  document.title = 'Diagnosis · pushgate console';
  const form = $('#diagnosis-form');
  if (user) {
    form.user.value = user;
    runDiagnosis(user);
  } else {
    $('#diagnosis-result').replaceChildren();
    form.user.focus();
  }
}

async function runDiagnosis(user) {
  const out = $('#diagnosis-result');
  out.replaceChildren(h('p', { class: 'muted', text: `Diagnosing ${user}…` }));
  try {
    const d = await api.diagnose(user);
    if ($('#diagnosis-form').user.value.trim() !== user) return;
    out.replaceChildren(renderDiagnosis(d));
  } catch (err) {
    if (ctx.onAuthError(err)) return;
    out.replaceChildren(h('p', { class: 'error', role: 'alert', text: `Could not diagnose ${user}: ${err.message}` }));
  }
}

function checkClass(ok) {
  if (ok === true) return 'ok';
  if (ok === false) return 'bad';
  return 'na';
}

function checkMark(ok) {
  if (ok === true) return '✓';
  if (ok === false) return '✗';
  return '–';
}

function checkStatus(ok) {
  if (ok === true) return 'passed';
  if (ok === false) return 'failed';
  return 'not applicable';
}

function renderDiagnosis(d) {
  const would = d.would_push === true;
  return h('div', { class: 'diagnosis', 'data-user': d.user },
    h('div', { class: `verdict ${would ? 'ok' : 'bad'}` },
      h('span', { class: 'badge ' + (would ? 'ok' : 'bad'), text: would ? 'Would push' : 'Would not push' }),
      h('h2', { text: d.user }),
      h('p', { class: 'summary', text: readable(d.summary) }),
    ),
    h('h3', { text: 'Checklist' }),
    checklist(d.checks || [], 'checklist'),
    h('h3', { text: 'Devices' }),
    renderDevices(d.devices || []),
    // With several devices the headline checklist is the most promising one; show each.
    (d.devices || []).length > 1
      ? d.devices.filter((dev) => (dev.checks || []).length).map((dev) => h('details', { class: 'device-checks', 'data-device': dev.device },
        h('summary', { text: `Checklist for device ${dev.device} (${dev.platform || '?'})` }),
        checklist(dev.checks, 'checklist device-checklist'),
      ))
      : null,
  );
}

function checklist(checks, cls) {
  return h('ul', { class: cls }, checks.map((c) => h('li', {
    class: `check ${checkClass(c.ok)}`,
    'data-check': c.check,
    'data-ok': String(c.ok),
  },
    h('span', { class: 'mark', 'aria-hidden': 'true', text: checkMark(c.ok) }),
    h('span', { class: 'visually-hidden', text: `${checkStatus(c.ok)}: ` }),
    h('span', { class: 'check-name', text: CHECK_LABELS[c.check] || humanize(c.check) }),
    h('span', { class: 'check-detail', text: readable(c.detail) }),
  )));
}

function yesNo(v) {
  if (v === true) return 'yes';
  if (v === false) return 'no';
  return '—';
}

function renderDevices(devices) {
  if (!devices.length) return h('p', { class: 'empty', text: 'No devices known for this user: it never logged in here.' });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'devices' },
    h('thead', {}, h('tr', {}, ['Device', 'Platform', 'State', 'Background', 'Token bound', 'Certificate', 'Would push', 'Last notification']
      .map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, devices.map((dev) => h('tr', { 'data-device': dev.device },
      h('td', { text: dev.device }),
      h('td', { text: dev.platform || '—' }),
      h('td', {}, h('span', { class: `state state-${String(dev.state).toLowerCase()}`, text: dev.state || '—' })),
      h('td', { text: yesNo(dev.background) }),
      h('td', { class: dev.token_bound ? 'ok' : 'bad', text: yesNo(dev.token_bound) }),
      h('td', { text: dev.certificate_id ?? '—' }),
      h('td', { class: dev.would_push ? 'ok' : 'bad', text: yesNo(dev.would_push) }),
      h('td', {}, lastNotification(dev.last_notification)),
    ))),
  ));
}

function lastNotification(n) {
  if (!n) return h('span', { class: 'muted', text: 'none yet' });
  const at = typeof n.at === 'number' ? fmtDateTime(new Date(n.at)) : '';
  const cls = n.class === 'delivered' ? 'ok' : 'bad';
  return h('div', { class: 'last-notification' },
    h('span', { class: `badge ${cls}`, text: humanize(n.class || 'unknown') }),
    ' ', at,
    n.vendor_code !== null && n.vendor_code !== undefined ? h('div', { class: 'muted', text: `vendor code ${n.vendor_code}` }) : null,
    n.detail ? h('div', { class: 'muted', text: readable(n.detail) }) : null,
    (n.msg_id || n.trace_id) ? h('div', { class: 'ids' },
      n.msg_id ? `msg ${n.msg_id}` : '', n.msg_id && n.trace_id ? ' · ' : '', n.trace_id ? `trace ${n.trace_id}` : '') : null,
  );
}
