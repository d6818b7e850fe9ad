// Traffic charts (uPlot, vendored): an API's requests/s, latency, 404 share and errors over the
// last hour or day, and what each lookup service serves now.

import uPlot from './uplot.esm.js';
import { enc, fill, h } from './dom.js';
import { fmtBytes, pill } from './format.js';
import { get } from './api.js';
import { attempt } from './chrome.js';

const CHARTS = [
  { id: 'rps', title: 'Requests/s', floor: 1, series: [['requests_per_s', 'req/s', '#0f766e']] },
  { id: 'latency', title: 'Latency (ms)', floor: 0.1, series: [['p50_ms', 'p50', '#2563eb'], ['p99_ms', 'p99', '#b45309']] },
  { id: 'notfound', title: '404 share (%)', floor: 1, series: [['not_found_pct', '404 %', '#7c3aed']] },
  { id: 'errors', title: 'Errors/s', floor: 1, series: [['errors_per_s', '5xx/s', '#b91c1c']] },
];

/** One small line chart of `points` (ChartPoint objects) into `el`. */
function lineChart(el, chart, points, width) {
  const xs = points.map((p) => Date.parse(p.t) / 1000);
  const data = [xs, ...chart.series.map(([key]) => points.map((p) => (p[key] === undefined ? null : p[key])))];
  const opts = {
    title: chart.title,
    width,
    height: 150,
    cursor: { drag: { x: false, y: false } },
    legend: { show: true, live: false },
    // From 0, with room above the highest point; a flat line sits at the bottom of a readable scale.
    scales: { x: { time: true }, y: { range: (_u, _lo, hi) => [0, Math.max((hi || 0) * 1.1, chart.floor)] } },
    axes: [{}, { size: 50 }],
    series: [{}, ...chart.series.map(([, label, stroke]) => ({ label, stroke, width: 1.5, spanGaps: false }))],
  };
  fill(el);
  return new uPlot(opts, data, el);
}

/** The traffic card of an API page: charts for a window, and each lookup service's view. */
export function trafficCard(ctx, name) {
  const charts = h('div', { class: 'charts', id: 'traffic-charts' });
  const summary = h('p', { class: 'small muted', id: 'traffic-summary' }, 'Collecting…');
  const lookups = h('div', { id: 'traffic-lookups' });
  let windowName = '1h';
  const buttons = ['1h', '24h'].map((w) => {
    const b = h('button', { type: 'button', class: 'btn btn-small btn-quiet', 'aria-pressed': String(w === windowName), dataset: { window: w } }, w === '1h' ? 'Last hour' : 'Last day');
    b.addEventListener('click', () => {
      windowName = w;
      for (const x of buttons) x.setAttribute('aria-pressed', String(x.dataset.window === w));
      refresh();
    });
    return b;
  });
  const card = h('section', { class: 'card', 'aria-labelledby': 'traffic-h', id: 'traffic-card' },
    h('div', { class: 'card-head' }, h('h2', { id: 'traffic-h' }, 'Traffic'), buttons),
    summary, charts, lookups);

  async function refresh() {
    await attempt(ctx, summary, async () => {
      const t = await get(`/api/apis/${enc(name)}/traffic?window=${windowName}`, { signal: ctx.signal });
      fill(summary, t.points.length
        ? `${t.requests} requests, ${t.not_found} not found, ${t.errors} errors${t.p99_ms !== undefined ? `, p99 ${t.p99_ms.toFixed(2)} ms` : ''}, ${t.near_hits} keys from the near cache, over ${t.points.length} × ${t.step_s} s`
        : 'No traffic collected yet: the dashboard scrapes the lookup services configured for the edges ([dashboard.traffic] scrape_ms).');
      // Laid out first, so that each chart takes its own cell's width.
      const cells = CHARTS.map((c) => h('div', { class: 'chart', id: `chart-${c.id}` }));
      fill(charts, ...cells);
      if (t.points.length) CHARTS.forEach((c, i) => lineChart(cells[i], c, t.points, Math.max(220, cells[i].clientWidth || 300)));
      fill(lookups, t.lookups.length ? h('table', { class: 'data compact', id: 'traffic-lookups-table' },
        h('thead', {}, h('tr', {}, ['Lookup service', 'Serves', 'API memory', 'Redis memory'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, t.lookups.map((l) => h('tr', {},
          h('td', { class: 'mono small' }, l.lookup),
          h('td', {}, l.error ? pill('unreachable', 'bad', { title: l.error }) : l.version ? pill(`v${l.version}`, 'ok') : h('span', { class: 'muted' }, '—')),
          h('td', { class: 'num' }, l.memory_bytes !== undefined ? fmtBytes(l.memory_bytes) : '—'),
          h('td', { class: 'num' }, l.redis_used_bytes !== undefined ? `${fmtBytes(l.redis_used_bytes)}${l.redis_max_bytes ? ` of ${fmtBytes(l.redis_max_bytes)}` : ''}` : '—'))))) : null);
    });
  }
  refresh();
  return card;
}
