// Page #/apis: the list of APIs with what each serves and its last publish.

import { enc, fill, h } from './dom.js';
import { fmtBytes, fmtInt, freshnessBadge, pill, when } from './format.js';
import { get } from './api.js';
import { attempt, head, page } from './chrome.js';
import { describeSpec } from './spec.js';

export async function viewApis(ctx) {
  const [apis, jobs] = await Promise.all([
    get('/api/apis', { signal: ctx.signal }),
    get('/api/jobs?limit=500', { signal: ctx.signal }),
  ]);
  const lastPublish = new Map();
  for (const j of jobs) if (j.kind === 'publish' && !lastPublish.has(j.api)) lastPublish.set(j.api, j);

  const newButton = h('a', { class: 'btn btn-primary', href: '#/apis/new', id: 'new-api' }, 'New API');
  if (!apis.length) {
    page(ctx, 'APIs', 'apis', head({ title: 'APIs', actions: newButton }),
      h('div', { class: 'card empty' }, h('strong', {}, 'No APIs yet'),
        'Pick a table in ', h('a', { href: '#/tables' }, 'Tables'), ' and press “New API from this table”, or start from scratch with New API.'));
    return;
  }
  const rows = apis.map((a) => {
    const job = lastPublish.get(a.name);
    const serving = h('td', { class: 'num' }, h('span', { class: 'spinner', 'aria-label': 'loading' }));
    const path = h('td', {}, job && job.report && job.report.path ? job.report.path : '—');
    const keys = h('td', { class: 'num' }, '—');
    const size = h('td', { class: 'num' }, '—');
    attempt(ctx, serving, async () => {
      const v = await get(`/api/apis/${enc(a.name)}/versions`, { signal: ctx.signal });
      fill(serving, v.serving ? pill(`v${v.serving}`, 'ok') : v.edges.some((e) => e.serving) ? pill('edges differ', 'warn') : h('span', { class: 'muted' }, 'not published'));
      const current = v.history.find((x) => x.version === v.serving) || v.history[0];
      if (current) {
        path.textContent = current.path;
        keys.textContent = fmtInt(current.keys);
        size.textContent = fmtBytes(current.bytes);
      }
    });
    return h('tr', { dataset: { api: a.name } },
      h('td', {}, h('a', { href: `#/apis/${enc(a.name)}`, dataset: { test: `api-${a.name}` } }, a.name), a.protected ? [' ', pill('protected', 'info')] : null,
        h('span', { class: 'sub' }, describeSpec(a.spec))),
      h('td', { class: 'mono small' }, a.spec.table),
      serving,
      h('td', {}, job ? [pill(job.state, job.state), ' ', when(job.finished_at || job.created_at)] : h('span', { class: 'muted' }, 'never')),
      h('td', { class: 'num', dataset: { age: String(ageOf(a)) } }, freshnessBadge(a.freshness)),
      path, keys, size);
  });
  // Oldest data first (stale ones on top), or back to by name.
  const tbody = h('tbody', {}, rows);
  let byAge = false;
  const sortButton = h('button', { type: 'button', class: 'th-sort', id: 'sort-by-age', 'aria-pressed': 'false', title: 'Sort by data age, oldest first' }, 'Data age');
  sortButton.addEventListener('click', () => {
    byAge = !byAge;
    sortButton.setAttribute('aria-pressed', String(byAge));
    sortButton.textContent = byAge ? 'Data age ↓' : 'Data age';
    const sorted = rows.slice();
    if (byAge) sorted.sort((x, y) => Number(y.children[4].dataset.age) - Number(x.children[4].dataset.age));
    fill(tbody, sorted);
  });
  page(ctx, 'APIs', 'apis',
    head({ title: 'APIs', subtitle: `${apis.length} API${apis.length === 1 ? '' : 's'} defined`, actions: newButton }),
    h('div', { class: 'table-wrap card', id: 'apis-table-wrap' }, h('table', { class: 'data', id: 'apis-table' },
      h('thead', {}, h('tr', {}, ['API', 'Table', 'Serving', 'Last publish', sortButton, 'Path', 'Keys', 'Size'].map((c, i) => h('th', { scope: 'col', class: i >= 6 || i === 2 || i === 4 ? 'num' : '' }, c)))),
      tbody)));
}

/** Seconds of data age for sorting: stale without data first, unknown last. */
function ageOf(a) {
  const f = a.freshness;
  if (!f) return -1;
  if (f.age_s === undefined) return f.stale ? Number.MAX_SAFE_INTEGER : -1;
  return f.age_s;
}
