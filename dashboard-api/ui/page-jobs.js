// Pages #/jobs and #/jobs/{id}: the job queue and history, and one job with its events.

import { enc, fill, h } from './dom.js';
import { durationBetween, fmtBytes, fmtInt, fmtMs, pill, when } from './format.js';
import { go } from './nav.js';
import { followJob, get, post, state } from './api.js';
import { attempt, confirmDialog, head, page, toast } from './chrome.js';
import { progressView } from './progress.js';

function jobOutcome(j) {
  if (j.error) {
    return h('div', { class: 'small' }, h('strong', {}, `${j.error.step || 'error'}${j.error.edge ? ` on ${j.error.edge}` : ''}: `),
      h('span', { class: 'wrap' }, j.error.message || JSON.stringify(j.error)));
  }
  const r = j.report;
  if (!r) return h('span', { class: 'muted' }, '—');
  if (j.kind === 'publish') return h('span', { class: 'small' }, r.version ? `v${r.version} via ${r.path} · ${fmtInt(r.keys_out)} keys · ${fmtBytes(r.bytes_out)}` : '—');
  return h('span', { class: 'small' }, `v${r.from ?? '–'} → v${r.to ?? '–'}`);
}

export async function viewJobs(ctx, query) {
  const stateFilter = query.get('state') || '';
  const apiFilter = query.get('api') || '';
  const params = new URLSearchParams({ limit: '200' });
  if (stateFilter) params.set('state', stateFilter);
  if (apiFilter) params.set('api', apiFilter);
  const [jobs, apis] = await Promise.all([
    get(`/api/jobs?${params}`, { signal: ctx.signal }),
    get('/api/apis', { signal: ctx.signal }),
  ]);
  const setFilter = (k, v) => {
    const q = new URLSearchParams({ state: stateFilter, api: apiFilter });
    q.set(k, v);
    for (const [key, val] of [...q.entries()]) if (!val) q.delete(key);
    go(`#/jobs${q.toString() ? `?${q}` : ''}`);
  };
  const stateSelect = h('select', { id: 'jobs-state', value: stateFilter, onchange: (e) => setFilter('state', e.target.value) },
    h('option', { value: '' }, 'all states'), ['queued', 'running', 'succeeded', 'failed', 'cancelled'].map((x) => h('option', { value: x }, x)));
  const apiSelect = h('select', { id: 'jobs-api', value: apiFilter, onchange: (e) => setFilter('api', e.target.value) },
    h('option', { value: '' }, 'all APIs'), apis.map((x) => h('option', { value: x.name }, x.name)));
  const queueLine = h('p', { class: 'muted', id: 'jobs-queue' });
  const tbody = h('tbody', {});
  const draw = (list) => {
    const queued = list.filter((j) => j.state === 'queued').length;
    const running = list.filter((j) => j.state === 'running').length;
    queueLine.textContent = `${running} running, ${queued} queued${stateFilter || apiFilter ? ' (filtered)' : ''}. Newest first; updates by itself.`;
    fill(tbody, ...(list.length ? list.map((j) => h('tr', { dataset: { job: j.id } },
      h('td', {}, h('a', { class: 'mono', href: `#/jobs/${enc(j.id)}` }, j.id.slice(0, 12))),
      h('td', {}, h('a', { href: `#/apis/${enc(j.api)}` }, j.api)),
      h('td', {}, j.kind, j.kind === 'rollback' && j.to ? ` to v${j.to}` : ''),
      h('td', {}, pill(j.state, j.state)),
      h('td', { class: 'num' }, `${j.attempts}/${j.max_attempts}`),
      h('td', {}, j.author),
      h('td', {}, when(j.created_at)),
      h('td', { class: 'num' }, j.started_at && j.finished_at ? fmtMs(durationBetween(j.started_at, j.finished_at)) : j.state === 'running' ? h('span', { class: 'spinner', 'aria-label': 'running' }) : '—'),
      h('td', {}, jobOutcome(j)))) : [h('tr', {}, h('td', { colspan: '9', class: 'empty' }, 'No jobs.'))]));
  };
  draw(jobs);
  page(ctx, 'Jobs', 'jobs',
    head({ title: 'Jobs', subtitle: 'Publishes and rollbacks: the queue and its history, with errors in full.' }),
    h('div', { class: 'inline-form', role: 'group', 'aria-label': 'Filters' },
      h('label', { class: 'sr-only', for: 'jobs-state' }, 'State'), stateSelect,
      h('label', { class: 'sr-only', for: 'jobs-api' }, 'API'), apiSelect),
    queueLine,
    h('div', { class: 'table-wrap card' }, h('table', { class: 'data', id: 'jobs-table' },
      h('thead', {}, h('tr', {}, ['Job', 'API', 'Kind', 'State', 'Attempts', 'By', 'Created', 'Took', 'Result'].map((c, i) => h('th', { scope: 'col', class: i === 4 || i === 7 ? 'num' : '' }, c)))),
      tbody)));
  ctx.every(3000, () => {
    attempt(ctx, null, async () => draw(await get(`/api/jobs?${params}`, { signal: ctx.signal })));
  });
}

export async function viewJob(ctx, id) {
  const j = await get(`/api/jobs/${enc(id)}`, { signal: ctx.signal });
  // Only the API's owner, editors and administrators may cancel its jobs.
  const owning = await get(`/api/apis/${enc(j.api)}`, { signal: ctx.signal }).catch(() => null);
  const mayCancel = owning ? owning.may_change : state.me.admin;
  const events = h('ol', { class: 'small events', id: 'job-events' });
  const progress = progressView(j.kind === 'publish' ? 'publish' : 'rollback', { onJobPage: true });
  const cancel = h('button', { type: 'button', class: 'btn btn-danger', id: 'cancel-job', hidden: !mayCancel || (j.state !== 'queued' && j.state !== 'running') }, 'Cancel job');
  cancel.addEventListener('click', async () => {
    const ok = await confirmDialog('Cancel this job?', 'A queued job will not run; a running one stops at its next lease renewal and nothing it staged is committed.', 'Cancel job', true);
    if (!ok) return;
    await attempt(ctx, null, async () => {
      await post(`/api/jobs/${enc(id)}/cancel`, undefined, { signal: ctx.signal });
      toast('Job cancelled');
    });
  });
  page(ctx, `Job ${id.slice(0, 8)}`, 'jobs',
    head({
      crumbs: [h('a', { href: '#/jobs' }, 'Jobs'), ' / '],
      title: `${j.kind} of ${j.api}`,
      subtitle: [h('span', { class: 'mono' }, j.id), ' · by ', j.author, ' · ', when(j.created_at)],
      actions: [h('a', { class: 'btn', href: `#/apis/${enc(j.api)}` }, `Open ${j.api}`), cancel],
    }),
    h('div', { class: 'grid-2' },
      h('div', { class: 'stack' },
        h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Progress')), progress.el),
        h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Job')),
          h('dl', { class: 'facts' },
            h('dt', {}, 'State'), h('dd', {}, pill(j.state, j.state)),
            h('dt', {}, 'Revision'), h('dd', {}, j.revision ?? '—'),
            j.route ? [h('dt', {}, 'Route'), h('dd', {}, j.route)] : null,
            j.to ? [h('dt', {}, 'Roll back to'), h('dd', {}, `v${j.to}`)] : null,
            h('dt', {}, 'Attempts'), h('dd', {}, `${j.attempts} of ${j.max_attempts}`),
            h('dt', {}, 'Started'), h('dd', {}, when(j.started_at)),
            h('dt', {}, 'Finished'), h('dd', {}, when(j.finished_at)),
            j.lease_owner ? [h('dt', {}, 'Runner'), h('dd', { class: 'mono small' }, j.lease_owner)] : null))),
      h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'Events')), events)));
  progress.start(j);
  await attempt(ctx, events, () => followJob(ctx, id, (e) => {
    progress.handle(e);
    const { event, ...rest } = e;
    events.append(h('li', {}, h('strong', {}, event), ' ', h('span', { class: 'mono muted wrap' }, Object.keys(rest).length ? JSON.stringify(rest) : '')));
    if (event === 'finished') cancel.hidden = true;
  }));
}
