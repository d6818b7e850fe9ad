// Page #/traffic: every API's last hour, busiest first, with errors, 404s, p99 and staleness.

import { enc, h } from './dom.js';
import { freshnessBadge, pill } from './format.js';
import { get } from './api.js';
import { head, page } from './chrome.js';

const fixed = (v, digits) => (v === undefined || v === null ? '—' : v.toFixed(digits));

export async function viewTraffic(ctx) {
  const ranks = await get('/api/traffic', { signal: ctx.signal });
  const rows = ranks.map((r) => h('tr', { dataset: { api: r.api } },
    h('td', {}, h('a', { href: `#/apis/${enc(r.api)}` }, r.api)),
    h('td', { class: 'num' }, fixed(r.requests_per_s, 2)),
    h('td', { class: 'num' }, r.error_pct > 0 ? pill(`${fixed(r.error_pct, 1)} %`, 'bad') : '0 %'),
    h('td', { class: 'num' }, `${fixed(r.not_found_pct, 1)} %`),
    h('td', { class: 'num' }, r.p99_ms === undefined ? '—' : `${fixed(r.p99_ms, 2)} ms`),
    h('td', { class: 'num' }, freshnessBadge(r.freshness))));
  page(ctx, 'Traffic', 'traffic',
    head({ title: 'Traffic', subtitle: 'The last hour of every API, from the lookup services’ metrics, busiest first.' }),
    h('div', { class: 'table-wrap card' }, h('table', { class: 'data', id: 'traffic-table' },
      h('thead', {}, h('tr', {}, ['API', 'Requests/s', 'Errors', '404s', 'p99', 'Data age'].map((c, i) => h('th', { scope: 'col', class: i ? 'num' : '' }, c)))),
      h('tbody', {}, rows))));
}
