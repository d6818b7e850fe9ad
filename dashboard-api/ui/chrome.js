// UI chrome shared by every page: toasts, the confirm dialog, error and loading notices,
// attempt() for async actions, copying, and the page frame (page(), head()).

import { $, $$, fill, h } from './dom.js';
import { ApiError, isAbort } from './api.js';

export function toast(message, kind) {
  const t = h('div', { class: `toast ${kind || ''}` }, message);
  $('#toasts').append(t);
  setTimeout(() => t.remove(), kind === 'bad' ? 9000 : 5000);
}

export function confirmDialog(title, text, okLabel, danger) {
  const dialog = $('#confirm-dialog');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  const ok = $('#confirm-ok');
  ok.textContent = okLabel || 'OK';
  ok.className = `btn ${danger ? 'btn-danger' : 'btn-primary'}`;
  return new Promise((resolve) => {
    dialog.returnValue = '';
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('#confirm-cancel').focus();
  });
}

export function errorNotice(e, title) {
  return h('div', { class: 'notice bad', role: 'alert' },
    h('div', { class: 'title' }, title || 'Something went wrong'),
    h('pre', {}, e && e.message ? e.message : String(e)));
}

export function loading(text) {
  return h('div', { class: 'loading-block' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text || 'Loading…');
}

/** Runs an async action for a view; errors become a notice in `where` (or a toast). */
export async function attempt(ctx, where, fn) {
  try {
    return await fn();
  } catch (e) {
    if (isAbort(e) || ctx.signal.aborted) return undefined;
    if (e instanceof ApiError && e.status === 401) return undefined;
    if (where) fill(where, errorNotice(e));
    else toast(e.message || String(e), 'bad');
    return undefined;
  }
}

export async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied`);
  } catch {
    toast(`Copying is not allowed here: select the ${what.toLowerCase()} and copy it by hand`, 'bad');
  }
}

export function page(ctx, title, section, ...content) {
  document.title = `${title} · Tablecast`;
  const main = $('#main');
  fill(main, ...content.flat());
  $('#topbar').hidden = section === 'login';
  for (const a of $$('[data-nav]')) {
    if (a.dataset.nav === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (ctx.focus) {
    const heading = $('h1', main);
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
  }
  window.scrollTo(0, 0);
}

export function head(opts) {
  return h('div', { class: 'page-head' },
    h('div', { class: 'titles' },
      opts.crumbs ? h('div', { class: 'crumbs' }, opts.crumbs) : null,
      h('h1', { id: opts.id || 'page-title' }, opts.title),
      opts.subtitle ? h('div', { class: 'subtitle' }, opts.subtitle) : null),
    opts.actions ? h('div', { class: 'actions' }, opts.actions) : null);
}
