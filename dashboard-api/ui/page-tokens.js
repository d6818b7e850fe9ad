// Page #/tokens: analysts' dashboard tokens; also the token table and new-secret box shared
// with the read tokens on an API's page.

import { enc, fill, h, setBusy } from './dom.js';
import { pill, when } from './format.js';
import { api, get, post, state } from './api.js';
import { attempt, confirmDialog, copyText, head, loading, page } from './chrome.js';

export function secret(token, message) {
  return h('div', { class: 'stack' },
    h('p', { class: 'small' }, h('strong', {}, message)),
    h('div', { class: 'secret' }, h('code', { id: 'new-token-secret' }, token),
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(token, 'Token') }, 'Copy')));
}

export function pushResults(edges) {
  if (!edges || !edges.length) return null;
  const failed = edges.filter((e) => !e.ok);
  if (!failed.length) return h('p', { class: 'small muted' }, `Pushed to ${edges.length} edge${edges.length === 1 ? '' : 's'}.`);
  return h('div', { class: 'notice warn' }, h('div', { class: 'title' }, 'Some edges did not get the new token set (the next publish carries it):'),
    h('ul', {}, failed.map((e) => h('li', {}, h('code', {}, e.edge), `: ${e.error}`))));
}

// `canRevoke`: whether the signed-in user may revoke these tokens (else no Revoke buttons).
export function tokenTable(ctx, list, refresh, messages, canRevoke = true) {
  if (!list.length) return h('p', { class: 'muted small' }, 'No tokens yet.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data compact' },
    h('thead', {}, h('tr', {}, ['Name', 'Created', 'By', 'Status', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, list.map((t) => {
      const revoke = h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { test: `revoke-${t.id}` } }, 'Revoke');
      revoke.addEventListener('click', async () => {
        const ok = await confirmDialog(`Revoke ${t.name}?`, 'Requests with this token are refused from now on. This cannot be undone.', 'Revoke', true);
        if (!ok) return;
        setBusy(revoke, true);
        await attempt(ctx, messages, async () => {
          const r = await api('DELETE', `/api/tokens/${enc(t.id)}`, undefined, { signal: ctx.signal });
          fill(messages, h('p', { class: 'small' }, `${t.name} revoked.`), pushResults(r.edges));
          refresh();
        });
      });
      return h('tr', { dataset: { token: t.id } },
        h('td', {}, t.name, h('span', { class: 'sub mono' }, t.id)),
        h('td', {}, when(t.created_at)),
        h('td', {}, t.created_by),
        h('td', {}, t.revoked_at ? [pill('revoked', 'bad'), ' ', when(t.revoked_at)] : pill('active', 'ok')),
        h('td', {}, t.revoked_at || !canRevoke ? null : revoke));
    }))));
}

export async function viewTokens(ctx) {
  if (!state.me.admin) {
    page(ctx, 'Tokens', 'tokens', head({ title: 'Tokens' }),
      h('div', { class: 'card' }, h('p', {}, 'Only the administrator manages analysts’ dashboard tokens.'),
        h('p', { class: 'muted' }, 'Read tokens of an API are on that API’s page.')));
    return;
  }
  const listBox = h('div', { id: 'analyst-tokens' }, loading());
  const messages = h('div', { id: 'analyst-token-messages', 'aria-live': 'polite' });
  const nameInput = h('input', { type: 'text', id: 'analyst-token-name', placeholder: 'the analyst’s name', maxlength: '64', autocomplete: 'off' });
  const create = h('button', { type: 'submit', class: 'btn btn-primary', id: 'analyst-token-create' }, 'Create token');
  const form = h('form', { class: 'inline-form', novalidate: true },
    h('label', { class: 'sr-only', for: 'analyst-token-name' }, 'Analyst name'), h('div', { class: 'grow' }, nameInput), create);
  const refresh = () => attempt(ctx, listBox, async () => {
    const list = await get('/api/users/tokens', { signal: ctx.signal });
    fill(listBox, tokenTable(ctx, list, refresh, messages));
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!nameInput.value.trim()) {
      nameInput.focus();
      return;
    }
    setBusy(create, true);
    await attempt(ctx, messages, async () => {
      const t = await post('/api/users/tokens', { name: nameInput.value.trim() }, { signal: ctx.signal });
      nameInput.value = '';
      fill(messages, secret(t.token, `Token for ${t.name} created. Give it to them now: it is not shown again.`));
      refresh();
    });
    setBusy(create, false);
  });
  page(ctx, 'Tokens', 'tokens',
    head({ title: 'Tokens', subtitle: 'Analysts sign in to this dashboard with these. Read tokens of an API are on that API’s page.' }),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'New analyst token')), form, messages),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Analyst tokens')), listBox));
  refresh();
}
