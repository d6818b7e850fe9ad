// Plans and job progress: the guards table, the plan verdict, and the live progress view
// of a publish or rollback job fed with its events.

import { enc, fill, h } from './dom.js';
import { fmtBytes, fmtInt, fmtMs, HUGE, pill, pretty } from './format.js';
import { errorNotice } from './chrome.js';

const GUARDS = {
  format: ['Storage format', 'count'],
  row_count: ['Rows', 'count'],
  column_count: ['Columns', 'count'],
  row_width: ['Row width', 'bytes'],
  file_count: ['Files', 'count'],
  total_bytes: ['Data size', 'bytes'],
  partition_count: ['Partitions', 'count'],
  memory_pool: ['Engine memory', 'bytes'],
  output_keys: ['Output keys', 'count'],
  output_bytes: ['Output size', 'bytes'],
};
const RUNTIME_GUARDS = new Set(['memory_pool', 'output_keys', 'output_bytes']);
const STEPS = ['plan', 'guards', 'engine', 'push', 'verify', 'snapshot', 'gates', 'canary', 'commit', 'gc'];
const PATHS = {
  fasttrack: ['Fast track', 'in memory on DataFusion: seconds'],
  fallback: ['Fallback', 'a Spark job: minutes'],
};

function guardsTable(guards, atPlan, id) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data compact', id },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Guard'), h('th', { scope: 'col', class: 'num' }, 'Measured'), h('th', { scope: 'col', class: 'num' }, 'Limit'), h('th', { scope: 'col' }, 'Status'))),
    h('tbody', {}, guards.map((g) => {
      const [label, unit] = GUARDS[g.name] || [g.name, 'count'];
      const fmt = unit === 'bytes' ? fmtBytes : fmtInt;
      const later = atPlan && RUNTIME_GUARDS.has(g.name);
      let measured;
      if (g.name === 'format') measured = g.detail || (g.tripped ? 'not parquet' : 'parquet');
      else if (later) measured = h('span', { class: 'muted' }, 'while running');
      else if (g.measured >= HUGE) measured = 'unknown';
      else measured = fmt(g.measured);
      const limit = g.name === 'format' ? 'parquet' : fmt(g.limit);
      const statusPill = g.tripped ? pill('tripped', 'tripped') : later ? pill('watched', 'info') : pill('ok', 'ok');
      return h('tr', { class: g.tripped ? 'tripped' : '', dataset: { guard: g.name, tripped: String(g.tripped) } },
        h('td', {}, label, h('span', { class: 'sub' }, g.name === 'format' ? 'only Parquet is read in memory' : g.detail)),
        h('td', { class: 'num' }, measured),
        h('td', { class: 'num' }, limit),
        h('td', {}, statusPill));
    }))));
}

export function renderPlan(box, plan) {
  const [pathName, pathWords] = PATHS[plan.path] || [plan.path, ''];
  const tripped = plan.guards.filter((g) => g.tripped);
  fill(box,
    h('div', { class: `verdict ${plan.path}`, id: 'plan-verdict', dataset: { path: plan.path } },
      h('div', {},
        h('div', { class: 'big' }, `${pathName}: ${pathWords}`),
        h('div', { id: 'plan-reason' }, tripped.length
          ? `Because ${tripped.length === 1 ? 'a guard tripped' : `${tripped.length} guards tripped`}: ${plan.reason}.`
          : plan.reason === 'all guards within limits' ? 'Every guard is within its limit, so the job runs in memory.' : `${plan.reason}.`))),
    h('p', { class: 'small muted', id: 'plan-facts' },
      `${plan.rows >= HUGE ? 'unknown' : fmtInt(plan.rows)} rows (${plan.rows_source.replace('_', ' ')}) · ${fmtInt(plan.files)} files · ${fmtBytes(plan.bytes)} · `,
      `${fmtInt(plan.partitions_selected)} of ${fmtInt(plan.partitions_total)} partitions`,
      plan.latest_partitions && plan.latest_partitions.length ? ` (the latest: ${plan.latest_partitions.join(', ')})` : '',
      plan.data_time ? ` · data time ${plan.data_time}` : '',
      plan.unchanged ? ' · unchanged since the serving version' : ''),
    guardsTable(plan.guards, true, 'guards-table'),
    plan.explain ? h('details', {}, h('summary', {}, 'Engine plan'), h('pre', { class: 'code' }, plan.explain)) : null);
}

/** Live progress of a publish or rollback job, fed with its events. */
export function progressView(kind, options) {
  const linkJob = !(options && options.onJobPage);
  const root = h('div', { class: 'progress', id: `${kind}-progress`, dataset: { phase: 'idle' } });
  const statusText = h('span', { id: `${kind}-status`, dataset: { test: `${kind}-status` }, role: 'status' });
  const statePill = h('span', {});
  const steps = h('ol', { class: 'steps', id: `${kind}-steps`, 'aria-label': 'Steps' });
  const counters = h('div', { class: 'counters', id: `${kind}-counters` });
  const route = h('p', { class: 'small', id: `${kind}-route` });
  const edges = h('ul', { class: 'edge-list', id: `${kind}-edges` });
  const notes = h('div', {});
  const errorBox = h('div', { id: `${kind}-error` });
  const report = h('div', { id: `${kind}-report` });
  const stepEls = new Map();
  const edgeEls = new Map();
  let jobId = null;

  function resetSteps() {
    fill(steps, ...STEPS.map((s) => {
      const li = h('li', { dataset: { step: s } }, h('div', { class: 'bar' }), s, h('span', { class: 'ms' }, '\u00a0'));
      stepEls.set(s, li);
      return li;
    }));
  }
  function setStep(step, cls, ms) {
    const li = stepEls.get(step);
    if (!li) return;
    li.className = cls;
    if (ms !== undefined) li.querySelector('.ms').textContent = fmtMs(ms);
    li.setAttribute('aria-label', `${step}: ${cls}`);
  }
  function setStatus(phase, text, pillKind) {
    root.dataset.phase = phase;
    statusText.textContent = text;
    fill(statePill, pill(phase, pillKind || phase));
  }
  function edge(url) {
    if (!edgeEls.has(url)) {
      const li = h('li', { dataset: { edge: url } }, h('code', {}, url), h('span', { class: 'what' }));
      edgeEls.set(url, li);
      edges.append(li);
    }
    return edgeEls.get(url).querySelector('.what');
  }
  function setCounters(e) {
    fill(counters,
      h('span', {}, 'rows read ', h('b', {}, fmtInt(e.rows_in))),
      h('span', {}, 'keys ', h('b', {}, fmtInt(e.keys_out))),
      h('span', {}, 'encoded ', h('b', {}, fmtBytes(e.bytes_out))));
  }

  function start(job) {
    jobId = job.id;
    root.hidden = false;
    resetSteps();
    stepEls.forEach((li) => { li.className = ''; });
    fill(counters);
    fill(edges);
    edgeEls.clear();
    fill(route);
    fill(notes);
    fill(errorBox);
    fill(report);
    if (kind === 'rollback') steps.hidden = true;
    setStatus('queued', `Queued (job ${job.id.slice(0, 8)})`, 'queued');
  }

  function handle(e) {
    switch (e.event) {
      case 'queued':
        setStatus('queued', `Queued by ${e.author}${e.revision ? `, revision ${e.revision}` : ''}`, 'queued');
        break;
      case 'attempt_started':
        resetSteps();
        setStatus('running', e.attempt > 1 ? `Running, attempt ${e.attempt} of ${e.max_attempts}` : 'Running', 'running');
        break;
      case 'step_started':
        setStep(e.step, 'running');
        setStatus('running', `Running: ${e.step}`, 'running');
        break;
      case 'step_finished':
        setStep(e.step, 'done', e.ms);
        break;
      case 'guards': {
        const [name, words] = PATHS[e.path] || [e.path, ''];
        setStep('guards', 'done');
        fill(route, h('strong', {}, `${name}`), ` (${words}): ${e.reason}`);
        break;
      }
      case 'rerouted':
        notes.append(h('div', { class: 'notice warn' }, h('div', { class: 'title' }, `Re-routed from ${e.from} to ${e.to}`), e.reason));
        break;
      case 'rows':
        setCounters(e);
        break;
      case 'edge_sealed':
        fill(edge(e.edge), pill('sealed', 'info'), ` ${fmtInt(e.keys)} keys staged`);
        break;
      case 'committed':
        setStatus('running', `Committing version ${e.version}…`, 'running');
        for (const li of edgeEls.values()) fill(li.querySelector('.what'), pill('committed', 'committed'), ` serving v${e.version}`);
        break;
      case 'failed':
        setStep(e.step, 'failed');
        break;
      case 'retry_scheduled':
        setStatus('queued', `Attempt ${e.attempt} of ${e.max_attempts} failed; retrying ${relTimeFuture(e.retry_at)}`, 'warn');
        notes.append(h('div', { class: 'notice warn' }, h('div', { class: 'title' }, `Attempt ${e.attempt} failed at ${e.error && e.error.step}: will retry`), h('pre', {}, e.error && e.error.message)));
        break;
      case 'abandoned':
        setStatus('queued', `Interrupted: ${e.reason}`, 'warn');
        break;
      case 'finished':
        finish(e);
        break;
      case 'stream_error':
        fill(errorBox, errorNotice(new Error(e.message), 'Lost the progress stream'));
        break;
      default:
        break;
    }
  }

  function finish(e) {
    const r = e.report || {};
    if (e.state === 'succeeded' && r.unchanged) {
      setStatus('unchanged', `Unchanged: the source is what version ${r.previous_version} was computed from; nothing published`, 'ok');
    } else if (e.state === 'succeeded') {
      if (kind === 'publish') {
        setStatus('committed', `Committed version ${r.version} on ${(r.edges || []).length} edge${(r.edges || []).length === 1 ? '' : 's'} in ${fmtMs(r.total_ms)}`, 'committed');
        for (const ed of r.edges || []) fill(edge(ed.edge), pill('committed', 'committed'), ` ${fmtInt(ed.keys)} keys, ${fmtBytes(ed.bytes)}, pushed in ${fmtMs(ed.push_ms)}`);
        if (r.rows_in !== undefined) setCounters(r);
        for (const [step, ms] of Object.entries(r.timings_ms || {})) setStep(step, 'done', ms);
      } else {
        setStatus('committed', `Committed: serving version ${r.to} again (was ${r.from === null || r.from === undefined ? 'none' : r.from})`, 'committed');
      }
    } else {
      const err = e.error || (r.error) || {};
      setStatus(e.state === 'cancelled' ? 'cancelled' : 'failed',
        e.state === 'cancelled' ? 'Cancelled' : `Failed at step ${err.step || '?'}${err.edge ? ` (edge ${err.edge})` : ''}`, e.state);
      if (err.step) setStep(err.step, 'failed');
      fill(errorBox, h('div', { class: 'notice bad', role: 'alert' },
        h('div', { class: 'title' }, `${e.state === 'cancelled' ? 'Cancelled' : 'Failed'}${err.step ? ` at step ${err.step}` : ''}${err.edge ? ` on ${err.edge}` : ''}${e.attempts ? ` after ${e.attempts} attempt${e.attempts === 1 ? '' : 's'}` : ''}`),
        h('pre', {}, err.message || 'no message')));
    }
    if (e.report) {
      fill(report, h('details', {}, h('summary', {}, kind === 'publish' ? 'Publish report' : 'Rollback report'),
        kind === 'publish' && r.guards ? guardsTable(r.guards, false, `${kind}-report-guards`) : null,
        kind === 'publish' && r.gates && r.gates.length ? gatesTable(r.gates, `${kind}-report-gates`) : null,
        h('pre', { class: 'code', id: `${kind}-report-json` }, pretty(e.report))));
    }
    if (jobId && linkJob) route.append(' ', h('a', { href: `#/jobs/${enc(jobId)}`, class: 'small' }, 'job details'));
  }

  root.append(h('div', { class: 'status-line' }, statePill, statusText), steps, counters, route, edges, notes, errorBox, report);
  root.hidden = true;
  return { el: root, start, handle, get phase() { return root.dataset.phase; } };
}

function relTimeFuture(iso) {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  return Number.isNaN(s) ? 'later' : s <= 1 ? 'now' : `in ${s} s`;
}

/** Quality gates, each measured against its limit. */
function gatesTable(gates, id) {
  const round = (v) => (Number.isInteger(v) ? fmtInt(v) : v.toFixed(2));
  return h('table', { class: 'data compact', id },
    h('thead', {}, h('tr', {}, ['Gate', 'Measured', 'Limit', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, gates.map((g) => h('tr', { dataset: { gate: g.name } },
      h('td', {}, h('code', {}, g.name), h('span', { class: 'sub' }, g.detail)),
      h('td', { class: 'num' }, round(g.measured)),
      h('td', { class: 'num' }, round(g.limit)),
      h('td', {}, pill(g.passed ? 'passed' : 'failed', g.passed ? 'ok' : 'bad'))))));
}
