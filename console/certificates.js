// Certificates view: the list with live figures, the add/edit form, delete, and the banner
// that shows a saved certificate's ID for the operator to record (seed 步骤2.5).

import { api } from './api.js';
import {
  $, $$, h, fmtNumber, fmtTime, fmtDateTime, sentence,
  fieldBox, setFieldError, clearErrors, focusFirstError,
} from './dom.js';
import { readable } from './diagnosis.js';

/** Push platforms a certificate can be for; add an entry when the gateway learns a new vendor. */
const PLATFORMS = [
  { vendor: 'xiaomi', label: 'Xiaomi (MiPush)' },
  { vendor: 'huawei', label: 'Huawei (Push Kit)' },
  { vendor: 'honor', label: 'Honor (Honor Push)' },
  { vendor: 'oppo', label: 'OPPO (OPUSH)' },
  { vendor: 'vivo', label: 'vivo Push' },
  { vendor: 'meizu', label: 'Meizu (Flyme Push)' },
  { vendor: 'fcm', label: 'Firebase Cloud Messaging (FCM)' },
  { vendor: 'apns', label: 'Apple Push Notification service (APNs)' },
];

/** Vendor-specific fields: a form field with data-vendors is shown and sent only for those. */
function vendorFields(form) {
  return $$('.field[data-vendors]', form);
}

function fieldFor(form, box) {
  return form[box.dataset.field];
}

/** What the gateway sends when a certificate leaves a vendor setting empty (contract.md). */
const VENDOR_DEFAULTS = {
  huawei: { category: 'IM', api_version: 'v1' },
  honor: { importance: 'NORMAL' },
  oppo: { category: 'IM', notify_level: 2 },
  vivo: { classification: 1, category: 'IM' },
  meizu: { notice_msg_type: 1 },
};
/** Card rows of write-only secrets, shown only as set / not set. */
const SECRET_KEYS = new Set(['AppSecret', 'MasterSecret', 'Client secret', 'Receipt callback']);
/** Write-only form fields: sent only when typed (always when creating, for the required ones). */
const WRITE_ONLY = new Set(['app_secret', 'master_secret', 'client_secret']);
/** Huawei's receipt callback user name and HMAC key: optional, and sent together or not at all. */
const CALLBACK_PAIR = ['callback_user_name', 'callback_hmac_key'];
const VENDOR_SETTINGS = [
  ['client_id', 'Client ID'],
  ['api_version', 'Send API'],
  ['importance', 'Importance'],
  ['category', 'Category'],
  ['notify_level', 'Notify level'],
  ['classification', 'Classification'],
  ['notice_msg_type', 'Message type'],
  ['private_msg_template_id', 'Private template'],
];

/** A vendor setting as the card shows it: the stored value, else the default marked as such. */
function vendorSetting(cert, key) {
  if (cert[key] != null) return String(cert[key]);
  const d = VENDOR_DEFAULTS[cert.vendor]?.[key];
  return d === undefined ? null : `${d} (default)`;
}

/** FCM and APNs notifications open the app; the other vendors' can open a page or an activity. */
function clickApplies(form) {
  return !['fcm', 'apns'].includes(form.vendor.value);
}

function syncVendorFields(form) {
  const vendor = form.vendor.value;
  for (const box of vendorFields(form)) box.hidden = !box.dataset.vendors.split(' ').includes(vendor);
  $('#f-package-hint').textContent = vendor === 'apns'
    ? "The app's bundle ID (the apns-topic), such as com.example.chat."
    : "The app's main package name as registered with the push service.";
  // Huawei takes the AppSecret (OAuth) or a service-account key file (a signed JWT), not both.
  $('#f-sa-hint').textContent = vendor === 'huawei'
    ? 'Optional, instead of the AppSecret: AppGallery Connect → Project settings → Server SDK → Service account key. Upload the JSON file or paste its text. Write-only.'
    : 'Firebase console → Project settings → Service accounts → Generate new private key. Upload the file or paste its text. Write-only.';
  // Options of a shared select that only some vendors take (Huawei's and OPPO/vivo's categories).
  for (const opt of $$('option[data-vendors]', form)) {
    opt.hidden = !opt.dataset.vendors.split(' ').includes(vendor);
    opt.disabled = opt.hidden;
    if (opt.hidden && opt.selected) opt.parentElement.value = 'IM';
  }
}

const CLICK_ACTIONS = {
  open_app: 'Open the app',
  open_url: 'Open a web page',
  open_activity: 'Open a page in the app',
};

/** Failure classes in the order the figures show them. */
const FAILURE_CLASSES = [
  ['bad_token', 'bad token'],
  ['no_valid_targets', 'no valid targets'],
  ['misconfigured', 'misconfigured'],
  ['rate_limited', 'rate limited'],
  ['quota_exceeded', 'quota exceeded'],
  ['invalid_request', 'invalid request'],
  ['transient', 'transient'],
  ['unknown', 'unknown'],
  ['queue_full', 'queue full'],
];


const REFRESH_MS = 5000;

/** The gateway's upper bound for a certificate's QPS (domain::validate::MAX_QPS). */
const MAX_QPS = 100000;

const state = {
  /** The last list from the gateway, by id; the edit form starts from it. */
  certificates: new Map(),
  refreshTimer: null,
  /** The id being edited, or null while adding. */
  editing: null,
};

/** Set by initCertificates: how to switch views and what to do when the token is refused. */
let ctx = null;

export function initCertificates(context) {
  ctx = context;
  initSavedBanner();
  initCertForm();
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && state.refreshTimer) refreshCertificates();
  });
}

/** Forgets everything shown, on sign-out. */
export function forgetCertificates() {
  stopRefresh();
  state.certificates.clear();
  $('#cert-list').replaceChildren();
  hideSavedBanner();
}

export function showCertificates() {
  ctx.show('certificates');
  document.title = 'Certificates · pushgate console';
  refreshCertificates();
  startRefresh();
}

function startRefresh() {
  stopRefresh();
  state.refreshTimer = setInterval(() => {
    if (document.visibilityState === 'visible') refreshCertificates();
  }, REFRESH_MS);
}

export function stopRefresh() {
  if (state.refreshTimer) clearInterval(state.refreshTimer);
  state.refreshTimer = null;
}

async function refreshCertificates() {
  const errorBox = $('#certs-error');
  try {
    const list = await api.listCertificates();
    errorBox.hidden = true;
    renderCertificates(list);
    $('#refresh-status').textContent = `Live · updated ${fmtTime(new Date())}`;
  } catch (err) {
    if (ctx.onAuthError(err)) return;
    errorBox.textContent = `Could not load certificates: ${err.message}`;
    errorBox.hidden = false;
    $('#refresh-status').textContent = 'Live · update failed';
  }
}

/** Updates cards in place so a refresh never disturbs a button the operator is about to press. */
function renderCertificates(list) {
  const container = $('#cert-list');
  const seen = new Set();
  state.certificates.clear();
  for (const cert of list) {
    state.certificates.set(cert.id, cert);
    seen.add(String(cert.id));
    let card = $$('.cert', container).find((c) => c.dataset.id === String(cert.id));
    if (!card) {
      card = certCard(cert);
      container.append(card);
    }
    fillCertCard(card, cert);
  }
  for (const card of $$('.cert', container)) {
    if (!seen.has(card.dataset.id)) card.remove();
  }
  $('#certs-empty').hidden = list.length > 0;
}

function certCard(cert) {
  const card = h('article', { class: 'cert', 'data-id': cert.id, 'aria-labelledby': `cert-${cert.id}-title` },
    h('header', { class: 'cert-head' },
      h('h2', { id: `cert-${cert.id}-title` }, 'Certificate ', h('span', { class: 'cert-id', text: String(cert.id) })),
      h('span', { class: 'cert-platform' }),
      h('span', { class: 'badge cert-state' }),
    ),
    h('p', { class: 'cert-reason', hidden: true }),
    h('div', { class: 'cert-body' },
      h('dl', { class: 'cert-config' }),
      h('div', { class: 'cert-stats' }),
    ),
    h('div', { class: 'cert-actions' },
      h('a', { class: 'button', href: `#/certificates/${cert.id}/edit`, text: 'Edit' }),
      h('button', { type: 'button', class: 'danger-outline', text: 'Delete', onclick: () => askDelete(card) }),
      h('span', { class: 'confirm', hidden: true },
        h('span', { text: 'Delete this certificate? Devices using its ID stop getting notifications.' }),
        h('button', { type: 'button', class: 'danger', text: 'Delete certificate', onclick: () => doDelete(card) }),
        h('button', { type: 'button', class: 'link', text: 'Keep', onclick: () => cancelDelete(card) }),
      ),
    ),
  );
  return card;
}

function platformLabel(vendor) {
  return PLATFORMS.find((p) => p.vendor === vendor)?.label || vendor;
}

function clickActionText(ca) {
  if (!ca) return '—';
  const label = CLICK_ACTIONS[ca.type] || ca.type;
  if (ca.type === 'open_url') return `${label}: ${ca.url}`;
  if (ca.type === 'open_activity') return `${label}: ${ca.intent_uri}`;
  return label;
}

function stateBadge(status) {
  const s = (status && status.state) || 'unknown';
  if (s === 'healthy') return ['Healthy', 'ok'];
  if (s === 'broken') return ['Broken', 'bad'];
  if (s === 'quota_paused') return ['Quota paused', 'warn'];
  return [s, 'na'];
}

function fillCertCard(card, cert) {
  $('.cert-platform', card).textContent = platformLabel(cert.vendor);
  const status = cert.status || {};
  const [label, cls] = stateBadge(status);
  const badge = $('.cert-state', card);
  badge.textContent = label;
  badge.className = `badge cert-state ${cls}`;
  const reason = $('.cert-reason', card);
  reason.hidden = !status.reason;
  reason.textContent = status.reason ? readable(status.reason) : '';
  reason.className = `cert-reason ${cls}`;

  const sa = cert.service_account || {};
  const special = cert.vendor === 'fcm' ? [
    ['Package name', cert.package_name],
    ['Project ID', sa.project_id || '—'],
    ['Service account', sa.client_email || '—'],
    ['Channel ID', cert.channel_id || '—'],
    ['QPS', fmtNumber(cert.qps)],
  ] : cert.vendor === 'apns' ? [
    ['Bundle ID', cert.package_name],
    ['Key ID', cert.key_id || '—'],
    ['Team ID', cert.team_id || '—'],
    ['Signing key', cert.private_key_set ? 'set' : 'not set'],
    ['Environment', cert.environment || '—'],
    ['QPS', fmtNumber(cert.qps)],
  ] : null;
  const oppo = cert.vendor === 'oppo';
  const config = special || [
    ['Package name', cert.package_name],
    ...(oppo ? [] : [['AppID', cert.app_id]]),
    ...(cert.app_key ? [['AppKey', cert.app_key]] : []),
    oppo
      ? ['MasterSecret', cert.master_secret_set ? 'set' : 'not set']
      : cert.vendor === 'honor'
        ? ['Client secret', cert.client_secret_set ? 'set' : 'not set']
        : ['AppSecret', cert.app_secret_set ? 'set' : 'not set'],
    ['On tap', clickActionText(cert.click_action)],
    ...(['xiaomi', 'huawei', 'oppo'].includes(cert.vendor) ? [['Channel ID', cert.channel_id || '—']] : []),
    // Receipts are believed only when signed with the callback's user name and HMAC key.
    ...(cert.vendor === 'huawei' ? [
      ['Service account', cert.service_account ? `${cert.service_account.sub_account || '—'} (key ${cert.service_account.key_id || '—'})` : '—'],
      ['Receipt ID', cert.receipt_id || '—'],
      ['Receipt callback', cert.callback_user_name_set && cert.callback_hmac_key_set ? 'set' : 'not set'],
    ] : []),
    ...VENDOR_SETTINGS.filter(([key]) => vendorSetting(cert, key) !== null)
      .map(([key, label]) => [label, vendorSetting(cert, key)]),
    ['QPS', fmtNumber(cert.qps)],
  ];
  $('.cert-config', card).replaceChildren(
    ...config.flatMap(([k, v]) => [
      h('dt', { text: k }),
      h('dd', { 'data-key': k, class: SECRET_KEYS.has(k) ? (v === 'set' ? 'secret-set' : 'secret-unset') : null, text: v }),
    ]),
  );

  const stats = cert.stats || {};
  const failed = stats.failed || {};
  const failedTotal = Object.values(failed).reduce((a, b) => a + (Number(b) || 0), 0);
  let quota = 'Within quota';
  if (status.state === 'quota_paused') {
    quota = status.paused_until
      ? `Paused until ${fmtDateTime(new Date(status.paused_until * 1000))}`
      : 'Paused';
  }
  const broken = status.state === 'broken' ? `Broken${status.reason ? `: ${status.reason}` : ''}` : 'No';
  $('.cert-stats', card).replaceChildren(
    h('div', { class: 'figures' },
      figure('sent', 'Sent', stats.sent),
      figure('failed', 'Failed', failedTotal, failedTotal > 0 ? 'bad' : null),
      figure('queued', 'Queued', stats.queued),
      figure('rate_limited', 'Rate-limited', stats.rate_limited, stats.rate_limited > 0 ? 'warn' : null),
      // From the vendor's delivery receipts (only when the gateway has a public URL).
      figure('delivered_to_phone', 'Delivered to phone', stats.delivered_to_phone),
      figure('clicked', 'Clicked', stats.clicked),
    ),
    h('details', { class: 'failed-by-class' },
      h('summary', { text: 'Failed by class' }),
      h('table', {},
        h('tbody', {}, FAILURE_CLASSES.map(([key, name]) => h('tr', { 'data-class': key, class: failed[key] ? 'nonzero' : 'zero' },
          h('th', { scope: 'row', text: name }),
          h('td', { text: fmtNumber(failed[key] ?? 0) }),
        ))),
      ),
    ),
    h('dl', { class: 'cert-health' },
      h('dt', { text: 'Quota' }), h('dd', { class: status.state === 'quota_paused' ? 'warn' : 'ok', 'data-key': 'quota', text: quota }),
      h('dt', { text: 'Broken' }), h('dd', { class: status.state === 'broken' ? 'bad' : 'ok', 'data-key': 'broken', text: broken }),
    ),
  );
  // Keep the open/closed state of the breakdown across refreshes.
  const details = $('.failed-by-class', card);
  const remembered = card.dataset.failedOpen;
  details.open = remembered === undefined ? failedTotal > 0 : remembered === '1';
  details.addEventListener('toggle', () => { card.dataset.failedOpen = details.open ? '1' : '0'; });
}

function figure(key, label, value, cls) {
  return h('div', { class: `figure ${cls || ''}`, 'data-figure': key },
    h('span', { class: 'figure-value', text: fmtNumber(value ?? 0) }),
    h('span', { class: 'figure-label', text: label }),
  );
}

function askDelete(card) {
  $('.confirm', card).hidden = false;
}

function cancelDelete(card) {
  $('.confirm', card).hidden = true;
}

async function doDelete(card) {
  const id = card.dataset.id;
  try {
    await api.deleteCertificate(id);
    card.remove();
    if ($('#saved-id').textContent === id) hideSavedBanner();
    refreshCertificates();
  } catch (err) {
    if (ctx.onAuthError(err)) return;
    const box = $('#certs-error');
    box.textContent = `Could not delete certificate ${id}: ${err.message}`;
    box.hidden = false;
  }
}

function showSavedBanner(cert, created) {
  $('#saved-title').textContent = created ? 'Certificate added' : 'Certificate saved';
  $('#saved-id').textContent = String(cert.id);
  $('#saved-banner').hidden = false;
}

function hideSavedBanner() {
  $('#saved-banner').hidden = true;
  $('#saved-id').textContent = '';
}

function initSavedBanner() {
  $('#saved-dismiss').addEventListener('click', hideSavedBanner);
  $('#saved-copy').addEventListener('click', async () => {
    const button = $('#saved-copy');
    try {
      await navigator.clipboard.writeText($('#saved-id').textContent);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy';
    }
    setTimeout(() => { button.textContent = 'Copy ID'; }, 2000);
  });
}

function initCertForm() {
  const form = $('#cert-form');
  $('#f-vendor').replaceChildren(...PLATFORMS.map((p) => h('option', { value: p.vendor, text: p.label })));
  form.click_action_type.addEventListener('change', () => syncClickFields(form));
  form.vendor.addEventListener('change', () => syncVendorFields(form));
  form.service_account_file.addEventListener('change', async () => {
    const file = form.service_account_file.files[0];
    if (file) form.service_account.value = await file.text();
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    saveCertificate(form);
  });
}

function syncClickFields(form) {
  const type = clickApplies(form) ? form.click_action_type.value : 'open_app';
  fieldBox(form, 'click_action.url').hidden = type !== 'open_url';
  fieldBox(form, 'click_action.intent_uri').hidden = type !== 'open_activity';
}


export async function showCertForm(id) {
  const form = $('#cert-form');
  form.reset();
  clearErrors(form);
  state.editing = id;
  hideSavedBanner();
  $('#cert-form-title').textContent = id === null ? 'Add certificate' : `Edit certificate ${id}`;
  document.title = `${$('#cert-form-title').textContent} · pushgate console`;
  fillSecretState(form, false);
  syncClickFields(form);
  syncVendorFields(form);
  ctx.show('cert-form');
  if (id === null) {
    setFormBusy(form, false);
    form.package_name.focus();
    return;
  }
  // Show what the list already knows at once, but accept input only once the gateway's own
  // copy is in, so nothing the operator types is overwritten by a late answer.
  const cached = state.certificates.get(id);
  if (cached) fillCertForm(form, cached);
  setFormBusy(form, true);
  try {
    const fresh = await api.getCertificate(id);
    if (state.editing !== id) return;
    fillCertForm(form, fresh);
    setFormBusy(form, false);
    form.qps.focus();
  } catch (err) {
    if (ctx.onAuthError(err) || state.editing !== id) return;
    const top = $('#cert-form-error');
    top.textContent = `Could not load certificate ${id}: ${err.message}`;
    top.hidden = false;
  }
}

function setFormBusy(form, busy) {
  form.setAttribute('aria-busy', String(busy));
  $('#cert-fields').disabled = busy;
  $('#cert-save').disabled = busy;
}

function fillKeyState(form, cert) {
  const saSet = !!(cert.service_account && cert.service_account.private_key_set);
  $('#f-sa-state').hidden = !saSet;
  form.service_account.placeholder = saSet ? 'Set — paste or upload a new JSON only to replace it' : '{"type": "service_account", …}';
  const p8Set = !!cert.private_key_set;
  $('#f-p8-state').hidden = !p8Set;
  form.private_key.placeholder = p8Set ? 'Set — paste a new .p8 only to replace it' : '-----BEGIN PRIVATE KEY-----';
}

/** The write-only secrets: a "set" badge and a hint; the value is never filled in. */
function fillSecretState(form, isSet, masterSet = false, clientSet = false, callbackSet = false) {
  for (const [name, set, badge, hint] of [
    ['app_secret', isSet, '#f-secret-state', '#f-secret-hint'],
    ['master_secret', masterSet, '#f-master-state', '#f-master-hint'],
    ['client_secret', clientSet, '#f-client-secret-state', '#f-client-secret-hint'],
    ['callback_user_name', callbackSet, '#f-callback-user-state', '#f-callback-user-hint'],
    ['callback_hmac_key', callbackSet, '#f-callback-key-state', '#f-callback-key-hint'],
  ]) {
    $(badge).hidden = !set;
    form[name].placeholder = set ? 'Set — leave empty to keep' : '';
    $(hint).textContent = set
      ? 'The saved secret is never shown. Type a new one only to replace it.'
      : 'Write-only: once saved it is never shown again.';
  }
}

function fillCertForm(form, cert) {
  form.vendor.value = cert.vendor;
  form.package_name.value = cert.package_name || '';
  form.app_id.value = cert.app_id || '';
  form.app_secret.value = '';
  for (const name of CALLBACK_PAIR) form[name].value = '';
  form.receipt_id.value = cert.receipt_id || '';
  fillSecretState(form, !!cert.app_secret_set, !!cert.master_secret_set, !!cert.client_secret_set,
    !!(cert.callback_user_name_set && cert.callback_hmac_key_set));
  const ca = cert.click_action || { type: 'open_app' };
  form.click_action_type.value = ca.type;
  form.url.value = ca.url || '';
  form.intent_uri.value = ca.intent_uri || '';
  form.channel_id.value = cert.channel_id || '';
  form.qps.value = cert.qps ?? '';
  form.service_account.value = '';
  form.key_id.value = cert.key_id || '';
  form.team_id.value = cert.team_id || '';
  form.private_key.value = '';
  form.environment.value = cert.environment || 'production';
  fillKeyState(form, cert);
  form.app_key.value = cert.app_key || '';
  form.master_secret.value = '';
  form.client_secret.value = '';
  for (const [key] of VENDOR_SETTINGS) {
    const v = cert[key] ?? VENDOR_DEFAULTS[cert.vendor]?.[key];
    if (v != null) form[key].value = String(v);
    else if (form[key].tagName === 'INPUT') form[key].value = '';
  }
  syncClickFields(form);
  syncVendorFields(form);
}

/** Checks what the browser can know; the gateway checks again and its answer wins. */
function validate(form, creating) {
  const errors = {};
  const v = (name) => form[name].value.trim();
  const vendor = form.vendor.value;
  if (!v('package_name')) errors.package_name = 'Enter the package name, such as com.example.chat.';
  const shown = (name) => !fieldBox(form, name).hidden;
  if (shown('app_id') && !v('app_id')) errors.app_id = 'Enter the AppID from the push service console.';
  if (shown('app_key') && !v('app_key')) errors.app_key = 'Enter the AppKey from the push service console.';
  const huaweiKey = vendor === 'huawei' && v('service_account');
  const harmonyNext = vendor === 'huawei' && form.api_version.value === 'v3';
  if (creating && shown('app_secret') && !form.app_secret.value && !huaweiKey && !harmonyNext) {
    errors.app_secret = vendor === 'huawei'
      ? 'Enter the AppSecret, or give a service-account key file below.'
      : 'Enter the AppSecret from the push service console.';
  }
  if (huaweiKey && form.app_secret.value) errors.service_account = 'Give the AppSecret or a service-account key file, not both.';
  // HarmonyOS NEXT (v3) takes only the service-account JWT (huawei.md §1).
  if (harmonyNext) {
    if (form.app_secret.value) errors.app_secret = 'HarmonyOS NEXT (v3) takes no AppSecret: give the service-account key file instead.';
    else if (creating && !huaweiKey) errors.service_account = 'HarmonyOS NEXT (v3) needs the service-account key file.';
  }
  if (creating && shown('master_secret') && !form.master_secret.value) errors.master_secret = 'Enter the MasterSecret from the OPPO console.';
  if (vendor === 'fcm' || vendor === 'huawei') {
    const text = v('service_account');
    if (creating && !text && vendor === 'fcm') errors.service_account = 'Upload or paste the service-account JSON file.';
    if (text && !errors.service_account) {
      try {
        const parsed = JSON.parse(text);
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      } catch {
        errors.service_account = 'This is not a JSON object; paste the whole file.';
      }
    }
  }
  if (vendor === 'apns') {
    if (!/^[A-Za-z0-9]{10}$/.test(v('key_id'))) errors.key_id = 'The Key ID has 10 letters and digits.';
    if (!/^[A-Za-z0-9]{10}$/.test(v('team_id'))) errors.team_id = 'The Team ID has 10 letters and digits.';
    if (creating && !v('private_key')) errors.private_key = 'Paste the text of the .p8 file.';
    else if (v('private_key') && !v('private_key').includes('BEGIN PRIVATE KEY')) {
      errors.private_key = 'Paste the whole .p8 file, from -----BEGIN PRIVATE KEY----- to the end.';
    }
  }
  if (shown('client_id') && !v('client_id')) errors.client_id = 'Enter the Client ID from the Honor developer console.';
  if (creating && shown('client_secret') && !form.client_secret.value) errors.client_secret = 'Enter the Client secret from the Honor developer console.';
  if (CALLBACK_PAIR.every(shown) && CALLBACK_PAIR.some((name) => form[name].value)) {
    if (!form.callback_user_name.value) errors.callback_user_name = 'Enter the user name of the receipt configuration too (AppGallery Connect).';
    if (!form.callback_hmac_key.value) errors.callback_hmac_key = 'Enter the HMAC key of the receipt configuration too (AppGallery Connect).';
  }
  const type = clickApplies(form) ? form.click_action_type.value : 'open_app';
  if (type === 'open_url') {
    const url = v('url');
    let ok = false;
    try {
      const parsed = new URL(url);
      ok = (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.hostname !== '';
    } catch {
      ok = false;
    }
    if (!url) errors['click_action.url'] = 'Enter the web page to open, starting with http:// or https://.';
    else if (!ok) errors['click_action.url'] = 'The URL must start with http:// or https:// and name a host.';
  }
  if (type === 'open_activity') {
    const uri = v('intent_uri');
    if (!uri) errors['click_action.intent_uri'] = 'Enter the intent URI of the page to open.';
    else if (!uri.startsWith('intent:') || !uri.includes('#Intent;') || !uri.endsWith(';end')) {
      errors['click_action.intent_uri'] = 'An intent URI starts with intent: and ends with #Intent;…;end.';
    }
  }
  const qps = v('qps');
  if (!/^\d+$/.test(qps) || Number(qps) < 1 || Number(qps) > MAX_QPS) {
    errors.qps = `QPS must be a whole number from 1 to ${MAX_QPS.toLocaleString('en-US')}.`;
  }
  return errors;
}

function formBody(form, creating) {
  const vendor = form.vendor.value;
  const type = clickApplies(form) ? form.click_action_type.value : 'open_app';
  const click = { type };
  if (type === 'open_url') click.url = form.url.value.trim();
  if (type === 'open_activity') click.intent_uri = form.intent_uri.value.trim();
  const body = {
    vendor,
    package_name: form.package_name.value.trim(),
    click_action: click,
    qps: Number(form.qps.value),
  };
  const numeric = new Set(['notify_level', 'classification', 'notice_msg_type']);
  for (const box of vendorFields(form)) {
    const name = box.dataset.field;
    // The tap action is sent as click_action above.
    if (box.hidden || name.startsWith('click_action')) continue;
    const value = fieldFor(form, box).value.trim();
    if (name === 'service_account') {
      // The uploaded or pasted file, as the JSON object Google issued; left out to keep it.
      if (value) body.service_account = JSON.parse(value);
    } else if (name === 'private_key') {
      if (value) body.private_key = value;
    } else if (WRITE_ONLY.has(name)) {
      // A Huawei certificate with a key file sends no AppSecret (the two replace each other).
      const keyInstead = vendor === 'huawei' && name === 'app_secret' && form.service_account.value.trim();
      if ((creating && !keyInstead) || value) body[name] = fieldFor(form, box).value;
    } else if (CALLBACK_PAIR.includes(name)) {
      // Left out to keep the saved pair.
      if (value) body[name] = fieldFor(form, box).value;
    } else if (numeric.has(name)) {
      body[name] = Number(value);
    } else {
      body[name] = value || null;
    }
  }
  return body;
}

async function saveCertificate(form) {
  clearErrors(form);
  const creating = state.editing === null;
  const errors = validate(form, creating);
  if (Object.keys(errors).length) {
    for (const [field, msg] of Object.entries(errors)) setFieldError(form, field, msg);
    focusFirstError(form);
    return;
  }
  const button = $('#cert-save');
  button.disabled = true;
  try {
    const body = formBody(form, creating);
    const cert = creating
      ? await api.createCertificate(body)
      : await api.updateCertificate(state.editing, body);
    form.app_secret.value = '';
    form.service_account.value = '';
    form.private_key.value = '';
    form.master_secret.value = '';
    form.client_secret.value = '';
    for (const name of CALLBACK_PAIR) form[name].value = '';
    state.editing = null;
    showSavedBanner(cert, creating);
    location.hash = '#/certificates';
  } catch (err) {
    if (ctx.onAuthError(err)) return;
    let field = err.field === 'click_action' ? 'click_action.type' : err.field;
    if (field && field.startsWith('service_account')) field = 'service_account';
    const message = sentence(err.message);
    if (!(field && setFieldError(form, field, message))) {
      const top = $('#cert-form-error');
      top.textContent = message;
      top.hidden = false;
    }
    focusFirstError(form);
  } finally {
    button.disabled = false;
  }
}
