// Page #/traffic: every API's last hour with errors, 404s, p99 and staleness, ranked by traffic,
// errors or staleness.

import { enc, fill, h } from './dom.js';
import { freshnessBadge, pill } from './format.js';
import { get } from './api.js';
import { head, page } from './chrome.js';

const fixed = (v, digits) => (v === undefined || v === null ? '—' : v.toFixed(digits));

/** Ways to rank, each a key (larger first). */
const RANKS = {
  traffic: (r) => r.requests_per_s,
  errors: (r) => r.error_pct,
  staleness: (r) => (r.freshness.stale ? 1e12 : 0) + (r.freshness.age_s || 0),
};

export async function viewTraffic(ctx) {
  const ranks = await get('/api/traffic', { signal: ctx.signal });
  const tbody = h('tbody', {});
  let by = 'traffic';
  const sorters = Object.keys(RANKS).map((k) => {
    const b = h('button', { type: 'button', class: 'btn btn-small btn-quiet', id: `rank-${k}`, 'aria-pressed': String(k === by) }, `By ${k}`);
    b.addEventListener('click', () => {
      by = k;
      for (const x of sorters) x.setAttribute('aria-pressed', String(x.id === `rank-${k}`));
      render();
    });
    return b;
  });
  function render() {
    const key = RANKS[by];
    const sorted = ranks.slice().sort((a, b) => key(b) - key(a) || a.api.localeCompare(b.api));
    fill(tbody, sorted.map((r) => h('tr', { dataset: { api: r.api } },
      h('td', {}, h('a', { href: `#/apis/${enc(r.api)}` }, r.api)),
      h('td', { class: 'num' }, fixed(r.requests_per_s, 2)),
      h('td', { class: 'num' }, r.error_pct > 0 ? pill(`${fixed(r.error_pct, 1)} %`, 'bad') : '0 %'),
      h('td', { class: 'num' }, `${fixed(r.not_found_pct, 1)} %`),
      h('td', { class: 'num' }, r.p99_ms === undefined ? '—' : `${fixed(r.p99_ms, 2)} ms`),
      h('td', { class: 'num' }, freshnessBadge(r.freshness)))));
  }
  render();
  page(ctx, 'Traffic', 'traffic',
    head({ title: 'Traffic', subtitle: 'The last hour of every API, from the lookup services’ metrics.', actions: sorters }),
    h('div', { class: 'table-wrap card' }, h('table', { class: 'data', id: 'traffic-table' },
      h('thead', {}, h('tr', {}, ['API', 'Requests/s', 'Errors', '404s', 'p99', 'Data age'].map((c, i) => h('th', { scope: 'col', class: i ? 'num' : '' }, c)))),
      tbody)));
}
