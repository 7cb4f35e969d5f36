// pushgate console: certificates, their live figures, and per-user diagnosis.
// Plain DOM and ES modules, no build step. Hash routes: #/certificates, #/certificates/new,
// #/certificates/ID/edit, #/diagnosis?user=ID. This module routes and keeps the sign-in.

import { api, ApiError, token, setToken, clearToken } from './api.js';
import { $, $$, setFieldError, clearErrors } from './dom.js';
import {
  initCertificates, showCertificates, showCertForm, stopRefresh, forgetCertificates,
} from './certificates.js';
import { initDiagnosis, showDiagnosis } from './diagnosis.js';

function route() {
  const hash = location.hash || '#/certificates';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  if (!token()) return show('signin');
  $('#nav').hidden = false;
  $('#sign-out').hidden = false;
  let m;
  if (path === '/certificates/new') return showCertForm(null);
  if ((m = path.match(/^\/certificates\/(\d+)\/edit$/))) return showCertForm(Number(m[1]));
  if (path === '/diagnosis') return showDiagnosis(params.get('user'));
  return showCertificates();
}

function show(name) {
  for (const v of $$('.view')) v.hidden = v.id !== `view-${name}`;
  for (const a of $$('#nav a')) {
    const current = name.startsWith(a.dataset.nav) || (name === 'cert-form' && a.dataset.nav === 'certificates');
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name !== 'certificates') stopRefresh();
  if (name === 'signin') {
    $('#nav').hidden = true;
    $('#sign-out').hidden = true;
    document.title = 'Sign in · pushgate console';
    $('#signin-token').focus();
  }
}


function handleAuthError(err) {
  if (err instanceof ApiError && err.status === 401) {
    clearToken();
    show('signin');
    setFieldError($('#signin-form'), 'token', 'The gateway refused the saved token. Sign in again.');
    return true;
  }
  return false;
}

function initSignIn() {
  const form = $('#signin-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const value = form.token.value.trim();
    if (!value) return setFieldError(form, 'token', 'Enter the admin token.');
    const button = $('button[type=submit]', form);
    button.disabled = true;
    try {
      await api.verify(value);
      setToken(value);
      form.reset();
      if (!location.hash || location.hash === '#/signin') location.hash = '#/certificates';
      else route();
    } catch (err) {
      const msg = err.status === 401
        ? 'That token was refused. Check PUSHGATE_ADMIN_TOKEN on the gateway.'
        : err.message;
      setFieldError(form, 'token', msg);
    } finally {
      button.disabled = false;
    }
  });
  $('#sign-out').addEventListener('click', () => {
    clearToken();
    forgetCertificates();
    location.hash = '#/signin';
    show('signin');
  });
}

function init() {
  const context = { show, onAuthError: handleAuthError };
  initSignIn();
  initCertificates(context);
  initDiagnosis(context);
  window.addEventListener('hashchange', route);
  route();
}

init();
