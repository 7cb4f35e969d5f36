// Small DOM helpers shared by the console's views. Values always go in as text, never as HTML.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Builds an element; string children become text nodes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fmtNumber(n) {
  return typeof n === 'number' ? n.toLocaleString('en-US') : '—';
}

export function fmtTime(date) {
  return date.toLocaleTimeString('en-GB', { hour12: false });
}

export function fmtDateTime(date) {
  return `${date.toLocaleDateString('en-CA')} ${fmtTime(date)}`;
}

/** The gateway writes messages as lower-case clauses; beside a field they read as sentences. */
export function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return t;
  const s = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(s) ? s : `${s}.`;
}

export function humanize(key) {
  const s = String(key).replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// Field errors: each form field sits in a .field box named by data-field (the API's dotted path).

export function fieldBox(form, field) {
  return $$('.field', form).find((el) => el.dataset.field === field) || null;
}

export function setFieldError(form, field, message) {
  const box = fieldBox(form, field);
  if (!box || box.hidden) return false;
  box.classList.add('invalid');
  $('.field-error', box).textContent = message;
  const input = $('input, select, textarea', box);
  if (input) input.setAttribute('aria-invalid', 'true');
  return true;
}

export function clearErrors(form) {
  for (const box of $$('.field', form)) {
    box.classList.remove('invalid');
    $('.field-error', box).textContent = '';
    const input = $('input, select, textarea', box);
    if (input) input.removeAttribute('aria-invalid');
  }
  const top = $('.error[role=alert]', form);
  if (top) {
    top.hidden = true;
    top.textContent = '';
  }
}

export function focusFirstError(form) {
  const box = $('.field.invalid', form);
  if (box) $('input, select, textarea', box)?.focus();
}
