// Tablecast dashboard: a single page over the REST API under /api (see /api/openapi.json).
// Plain JavaScript ES modules, no build step. This entry module holds the router and boots the page.

import { $, h } from './dom.js';
import { pill } from './format.js';
import { go, setRouter } from './nav.js';
import { ApiError, get, isAbort, NEXT_KEY, signOut, state, store } from './api.js';
import { errorNotice, head, page } from './chrome.js';
import { viewLogin } from './page-login.js';
import { viewTables } from './page-tables.js';
import { viewApis } from './page-apis.js';
import { viewApiForm } from './page-api-form.js';
import { viewApi } from './page-api.js';
import { viewJob, viewJobs } from './page-jobs.js';
import { viewTokens } from './page-tokens.js';
import { viewTraffic } from './page-traffic.js';

let current = null;

async function route() {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const ctx = {
    signal: controller.signal,
    focus: route.navigated,
    every(ms, fn) {
      const t = setInterval(fn, ms);
      controller.signal.addEventListener('abort', () => clearInterval(t), { once: true });
    },
  };
  route.navigated = true;

  const hash = location.hash || '#/';
  const [pathPart, queryPart] = hash.slice(1).split('?');
  let parts;
  try {
    parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  const query = new URLSearchParams(queryPart || '');

  if (parts[0] === 'login') {
    viewLogin(ctx);
    return;
  }
  if (!store.token) {
    sessionStorage.setItem(NEXT_KEY, hash);
    go('#/login');
    return;
  }
  if (!state.me) {
    try {
      state.me = await get('/api/me', { signal: ctx.signal });
    } catch (e) {
      if (isAbort(e) || (e instanceof ApiError && e.status === 401)) return;
      page(ctx, 'Unavailable', '', head({ title: 'The dashboard is unavailable' }), errorNotice(e));
      return;
    }
  }
  $('#whoami').textContent = '';
  $('#whoami').append(state.me.name, ' ', state.me.admin ? pill('admin', 'accent') : pill('analyst'));

  try {
    switch (parts[0]) {
      case 'tables':
        await viewTables(ctx, parts[1], parts[2], parts[3]);
        break;
      case 'apis':
        if (parts[1] === undefined) await viewApis(ctx);
        else if (parts[1] === 'new' && parts.length === 2) await viewApiForm(ctx, null, query);
        else if (parts[2] === 'edit') await viewApiForm(ctx, parts[1], query);
        else await viewApi(ctx, parts[1]);
        break;
      case 'jobs':
        if (parts[1]) await viewJob(ctx, parts[1]);
        else await viewJobs(ctx, query);
        break;
      case 'traffic':
        await viewTraffic(ctx);
        break;
      case 'tokens':
        await viewTokens(ctx);
        break;
      default:
        go('#/tables');
    }
  } catch (e) {
    if (isAbort(e) || ctx.signal.aborted) return;
    if (e instanceof ApiError && e.status === 401) return;
    const title = e instanceof ApiError && e.status === 404 ? 'Not found' : 'Could not load this page';
    page(ctx, title, parts[0], head({ title }), errorNotice(e, title),
      h('button', { class: 'btn', type: 'button', onclick: () => route() }, 'Try again'));
  }
}

setRouter(route);
window.addEventListener('hashchange', () => route());
$('#sign-out').addEventListener('click', () => signOut('Signed out.'));
route.navigated = false;
route();
