// Page #/login: the token sign-in form.

import { $, h, setBusy } from './dom.js';
import { go } from './nav.js';
import { get, isAbort, NEXT_KEY, state, store } from './api.js';
import { page } from './chrome.js';

export function viewLogin(ctx) {
  const input = h('input', {
    type: 'password', id: 'login-token', name: 'token', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'login-help login-error',
  });
  const error = h('p', { class: 'field-error', id: 'login-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'login-submit' }, 'Sign in');
  const reason = state.signOutReason;
  state.signOutReason = '';
  const form = h('form', { class: 'card', id: 'login-form', novalidate: true },
    h('h1', { class: 'sr-only' }, 'Sign in'),
    reason ? h('div', { class: 'notice warn' }, reason) : null,
    h('div', { class: 'field' },
      h('label', { for: 'login-token' }, 'Access token'),
      input,
      h('p', { class: 'help', id: 'login-help' },
        'The admin token (TABLECAST_ADMIN_TOKEN) or an analyst token from your administrator. ',
        'It stays in this browser tab only.'),
      error),
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    error.textContent = '';
    input.removeAttribute('aria-invalid');
    if (!token) {
      error.textContent = 'Paste your token.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    setBusy(submit, true);
    try {
      state.me = await get('/api/me', { token, noSignOut: true, signal: ctx.signal });
      store.token = token;
      const next = sessionStorage.getItem(NEXT_KEY);
      sessionStorage.removeItem(NEXT_KEY);
      go(next && !next.startsWith('#/login') ? next : '#/tables');
    } catch (e) {
      if (isAbort(e)) return;
      error.textContent = e.status === 401 ? 'That token is unknown or has been revoked.' : e.message;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } finally {
      setBusy(submit, false);
    }
  });
  page(ctx, 'Sign in', 'login',
    h('div', { class: 'login' },
      h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Tablecast'),
      form,
      h('p', { class: 'help' }, 'Publish warehouse tables as low-latency lookup APIs.')));
  $('.login .brand-mark').replaceWith($('.topbar .brand-mark').cloneNode(true));
  input.focus();
}
