// Page #/apis/{name}: one API's overview, plan, publish, try it, versions, read tokens and spec.

import { enc, fill, h, setBusy } from './dom.js';
import { fmtBytes, fmtInt, fmtMs, freshnessBadge, pill, pretty, when } from './format.js';
import { go } from './nav.js';
import { api, followJob, get, isAbort, post } from './api.js';
import {
  attempt,
  confirmDialog,
  copyText,
  errorNotice,
  head,
  loading,
  page,
  toast,
} from './chrome.js';
import { describeSpec, filterLabel, specViewer, valueLabel } from './spec.js';
import { progressView, renderPlan } from './progress.js';
import { pushResults, secret, tokenTable } from './page-tokens.js';
import { trafficCard } from './charts.js';

/** The key URL rule (README "Keys in URLs"): ~null, ~empty, ~dots, percent-encoding. */
function keySegment(value) {
  if (value === null) return '~null';
  if (value === '') return '~empty';
  if (/^\.+$/.test(value)) return `~${value}`;
  let out = '';
  for (const b of new TextEncoder().encode(value)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function lookupUrl(base, key) {
  return key.length ? base + key.map(keySegment).join('/') : base.replace(/\/$/, '');
}

export async function viewApi(ctx, name) {
  const a = await get(`/api/apis/${enc(name)}`, { signal: ctx.signal });
  const s = a.spec;

  // Overview
  const servingCell = h('dd', { id: 'overview-serving' }, h('span', { class: 'spinner', 'aria-label': 'loading' }));
  const overview = h('section', { class: 'card', 'aria-labelledby': 'overview-h' },
    h('div', { class: 'card-head' }, h('h2', { id: 'overview-h' }, 'Overview')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Serving'), servingCell,
      h('dt', {}, 'Table'), h('dd', {}, h('a', { class: 'mono', href: `#/tables/${enc(a.catalog)}/${s.table.split('.').map(enc).join('/')}` }, s.table), h('span', { class: 'muted' }, ` in ${a.catalog}`)),
      h('dt', {}, 'Key'), h('dd', { class: 'mono' }, s.key.length ? s.key.join(', ') : h('span', { class: 'muted' }, 'none (one global entry)')),
      h('dt', {}, 'Values'), h('dd', { class: 'mono' }, s.values.map(valueLabel).join(', ')),
      s.group_by && s.group_by.length ? [h('dt', {}, 'Group by'), h('dd', { class: 'mono' }, s.group_by.join(', '))] : null,
      s.order_by && s.order_by.length ? [h('dt', {}, 'Order'), h('dd', { class: 'mono' }, s.order_by.map((o) => `${o.field} ${o.dir}`).join(', '))] : null,
      h('dt', {}, 'Rows per key'), h('dd', {}, s.limit ? `${fmtInt(s.limit)}, as a ${s.shape}` : `all, as a ${s.shape}`),
      s.filter && s.filter.length ? [h('dt', {}, 'Filter'), h('dd', { class: 'mono' }, s.filter.map(filterLabel).join(' and '))] : null,
      h('dt', {}, 'Edges'), h('dd', {}, h('span', {}, a.edge_group), h('span', { class: 'muted small' }, ` (${a.edges.length ? a.edges.join(', ') : 'no edges configured'})`)),
      h('dt', {}, 'Access'), h('dd', {}, a.protected ? pill('protected: needs a read token', 'info') : pill('public', '')),
      h('dt', {}, 'Revision'), h('dd', {}, `${a.revision}, `, when(a.updated_at)),
      h('dt', {}, 'Owner'), h('dd', { id: 'overview-owner' }, a.owner,
        a.editors.length ? h('span', { class: 'muted small' }, ` · editors: ${a.editors.join(', ')}`) : null)));
  // Only its owner, its editors and administrators may change the API: the page offers them
  // the actions, and tells everyone else who may.
  const readOnly = a.may_change ? null
    : h('p', { class: 'muted small', id: 'read-only-hint' }, `Only ${a.owner}${a.editors.length ? `, ${a.editors.join(', ')}` : ''} and administrators may change, publish or delete this API.`);

  // Freshness: how old the served data is, and what keeps it fresh.
  const f = a.freshness || {};
  const r = s.refresh || {};
  const t = a.triggers || {};
  const freshnessCard = h('section', { class: 'card', 'aria-labelledby': 'freshness-h', id: 'freshness-card' },
    h('div', { class: 'card-head' }, h('h2', { id: 'freshness-h' }, 'Freshness')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Data age'), h('dd', { id: 'freshness-age' }, freshnessBadge(f)),
      h('dt', {}, 'Data time'), h('dd', { class: 'mono' }, f.data_time || h('span', { class: 'muted' }, 'unknown')),
      h('dt', {}, 'Objective'), h('dd', {}, f.objective_h ? `${f.objective_h} h` : h('span', { class: 'muted' }, 'none')),
      s.latest_partitions ? [h('dt', {}, 'Reads'), h('dd', {}, `the latest ${s.latest_partitions} partition${s.latest_partitions === 1 ? '' : 's'}`)] : null,
      h('dt', {}, 'Triggers'), h('dd', { id: 'freshness-triggers' },
        r.on_table_change ? pill(`on table change${r.settle_s ? `, settle ${r.settle_s} s` : ''}${r.require_success_marker ? ', after _SUCCESS' : ''}`, 'info') : null,
        r.schedule ? [' ', pill(`${r.schedule} (${r.timezone || 'UTC'})`, 'info', { id: 'freshness-schedule' })] : null,
        !r.on_table_change && !r.schedule ? h('span', { class: 'muted' }, 'none: published by hand') : null),
      t.next_at ? [h('dt', {}, 'Next firing'), h('dd', { id: 'freshness-next' }, h('time', { datetime: t.next_at, title: t.next_at }, new Date(t.next_at).toLocaleString()))] : null,
      t.last_fired_at ? [h('dt', {}, 'Last firing'), h('dd', { id: 'freshness-last' }, `${t.last_trigger === 'schedule' ? 'schedule' : 'table change'}, `, when(t.last_fired_at),
        t.last_job ? [' · ', h('a', { href: `#/jobs/${enc(t.last_job)}` }, 'job')] : null)] : null));

  // Plan
  const planResult = h('div', { id: 'plan-result', 'aria-live': 'polite' },
    h('p', { class: 'muted' }, 'See which path a publish would take and every guard’s reading, without reading any data.'));
  const planRoute = h('select', { id: 'plan-route', 'aria-label': 'Path for the plan' },
    h('option', { value: 'auto' }, 'auto'), h('option', { value: 'fasttrack' }, 'fast track'), h('option', { value: 'fallback' }, 'fallback'));
  const planButton = h('button', { type: 'button', class: 'btn', id: 'plan-button' }, 'Plan');
  planButton.addEventListener('click', async () => {
    setBusy(planButton, true);
    await attempt(ctx, planResult, async () => {
      const plan = await post(`/api/apis/${enc(name)}/plan`, { route: planRoute.value }, { signal: ctx.signal });
      renderPlan(planResult, plan);
    });
    setBusy(planButton, false);
  });
  const planCard = h('section', { class: 'card', 'aria-labelledby': 'plan-h', id: 'plan-card' },
    h('div', { class: 'card-head' }, h('h2', { id: 'plan-h' }, 'Plan'), planRoute, planButton),
    planResult);

  // Publish
  const progress = progressView('publish');
  const publishRoute = h('select', { id: 'publish-route', 'aria-label': 'Path for the publish' },
    h('option', { value: 'auto' }, 'auto'), h('option', { value: 'fasttrack' }, 'fast track'), h('option', { value: 'fallback' }, 'fallback'));
  const publishButton = h('button', { type: 'button', class: 'btn btn-primary', id: 'publish-button', disabled: !a.edges.length }, 'Publish');
  const publishMessage = h('div', {});
  const publishCard = h('section', { class: 'card', 'aria-labelledby': 'publish-h', id: 'publish-card' },
    h('div', { class: 'card-head' }, h('h2', { id: 'publish-h' }, 'Publish'), a.may_change ? [publishRoute, publishButton] : null),
    readOnly,
    a.edges.length ? null : h('div', { class: 'notice warn' }, `Edge group ${a.edge_group} has no edges configured.`),
    publishMessage,
    h('p', { class: 'muted small', id: 'publish-hint' }, `Computes revision ${a.revision} and pushes it as a new version to ${a.edges.length} edge${a.edges.length === 1 ? '' : 's'}; all switch at once, only when every edge holds all of it.`),
    progress.el);

  async function follow(job) {
    progress.start(job);
    publishButton.disabled = true;
    try {
      const end = await followJob(ctx, job.id, progress.handle);
      if (end && end.event === 'finished') refreshVersions();
    } catch (e) {
      if (!isAbort(e)) fill(publishMessage, errorNotice(e, 'Lost track of the job'));
    } finally {
      if (!ctx.signal.aborted) publishButton.disabled = !a.edges.length;
    }
  }
  // A publish stopped by its quality gates: say why, and let the owner publish anyway.
  const gated = a.last_job && a.last_job.kind === 'publish' && a.last_job.state === 'failed' && a.last_job.error && a.last_job.error.step === 'gates';
  if (gated) {
    const anyway = h('button', { type: 'button', class: 'btn btn-danger', id: 'publish-anyway' }, 'Publish anyway');
    anyway.addEventListener('click', async () => {
      const ok = await confirmDialog(`Publish ${name} past its quality gates?`, a.last_job.error.message, 'Publish anyway', true);
      if (!ok) return;
      setBusy(anyway, true);
      const job = await attempt(ctx, publishMessage, () => post(`/api/apis/${enc(name)}/publish`, { route: publishRoute.value, force: true }, { signal: ctx.signal }));
      setBusy(anyway, false);
      if (job) {
        fill(publishMessage);
        follow(job);
      }
    });
    fill(publishMessage, h('div', { class: 'notice warn', id: 'gates-failed' },
      h('div', { class: 'title' }, 'The last publish failed its quality gates; the serving version stays.'),
      h('p', {}, a.last_job.error.message), a.may_change ? anyway : null));
  }
  publishButton.addEventListener('click', async () => {
    setBusy(publishButton, true);
    fill(publishMessage);
    const job = await attempt(ctx, publishMessage, () => post(`/api/apis/${enc(name)}/publish`, { route: publishRoute.value }, { signal: ctx.signal }));
    setBusy(publishButton, false);
    if (job) follow(job);
  });

  // Try it
  const tryCard = h('section', { class: 'card', 'aria-labelledby': 'try-h', id: 'try-card' },
    h('div', { class: 'card-head' }, h('h2', { id: 'try-h' }, 'Try it')));
  if (!a.lookup_url) {
    tryCard.append(h('div', { class: 'notice warn' }, `No lookup service is configured for edge group ${a.edge_group}: set [dashboard] lookup_base_urls.${a.edge_group} in tablecast.toml.`));
  } else {
    const keyInputs = s.key.map((col, i) => {
      const input = h('input', { type: 'text', id: `try-key-${i}`, autocomplete: 'off', spellcheck: 'false', placeholder: 'value' });
      const isNull = h('input', { type: 'checkbox', id: `try-null-${i}` });
      isNull.addEventListener('change', () => {
        input.disabled = isNull.checked;
        drawUrl();
      });
      input.addEventListener('input', drawUrl);
      input.addEventListener('change', drawUrl);
      return { col, input, isNull };
    });
    const token = a.protected ? h('input', { type: 'password', id: 'try-token', autocomplete: 'off', placeholder: 'tca_…' }) : null;
    const urlBox = h('code', { class: 'url', id: 'try-url' });
    const send = h('button', { type: 'submit', class: 'btn btn-primary', id: 'try-send' }, 'Send');
    const curl = h('button', { type: 'button', class: 'btn', id: 'try-curl' }, 'Copy curl');
    const result = h('div', { id: 'try-result', 'aria-live': 'polite' });
    const keyValues = () => keyInputs.map((k) => (k.isNull.checked ? null : k.input.value));
    function drawUrl() {
      urlBox.textContent = lookupUrl(a.lookup_url, keyValues());
    }
    const curlLine = () => `curl -s '${urlBox.textContent}'${token && token.value ? ` -H 'Authorization: Bearer ${token.value}'` : ''}`;
    curl.addEventListener('click', () => copyText(curlLine(), 'curl command'));
    const tryForm = h('form', { id: 'try-form', novalidate: true },
      keyInputs.length
        ? keyInputs.map((k, i) => h('div', { class: 'field' },
          h('label', { for: k.input.id }, k.col, h('span', { class: 'muted small' }, ` key ${i + 1} of ${keyInputs.length}`)),
          h('div', { class: 'kv-key' }, k.input, h('label', { class: 'checkbox small', for: k.isNull.id }, k.isNull, 'NULL'))))
        : h('p', { class: 'muted' }, 'This API has no key: one global entry.'),
      token ? h('div', { class: 'field' }, h('label', { for: 'try-token' }, 'Read token'), token, h('p', { class: 'help' }, 'This API is protected: lookups need one of its tokens.')) : null,
      h('div', { class: 'field' }, h('div', { class: 'label' }, 'URL'), urlBox,
        h('p', { class: 'help' }, 'Empty is ~empty, NULL is ~null; other bytes than A–Z a–z 0–9 - _ . are percent-encoded.')),
      h('div', { class: 'inline-form' }, send, curl),
      result);
    tryForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      setBusy(send, true);
      const body = { key: keyValues() };
      if (token && token.value.trim()) body.token = token.value.trim();
      await attempt(ctx, result, async () => {
        const r = await post(`/api/apis/${enc(name)}/try`, body, { signal: ctx.signal });
        const ok = r.status >= 200 && r.status < 300;
        fill(result,
          h('div', { class: 'status-line', id: 'try-status', dataset: { status: String(r.status) } },
            pill(`${r.status}${ok ? ' OK' : ''}`, ok ? 'ok' : 'bad'),
            r.version ? pill(`v${r.version}`, 'accent', { id: 'try-version' }) : null,
            h('span', { class: 'muted small', id: 'try-latency' }, `${fmtMs(r.latency_ms)} · ${fmtBytes(r.bytes)}${r.truncated ? ' (shown truncated)' : ''}`)),
          h('p', { class: 'small muted' }, 'Called ', h('code', { id: 'try-called-url' }, r.url), ' from the dashboard.'),
          h('pre', { class: 'code', id: 'try-body', tabindex: '0', 'aria-label': 'Answer' }, typeof r.body === 'string' ? r.body : pretty(r.body)));
      });
      setBusy(send, false);
    });
    drawUrl();
    tryCard.append(h('p', { class: 'muted small' }, 'Look a key up on the edge lookup service, as a client would.'), tryForm);
  }

  // Versions
  const versionsBox = h('div', { id: 'versions' }, loading('Asking the edges…'));
  const rollbackProgress = progressView('rollback');
  const versionsCard = h('section', { class: 'card', 'aria-labelledby': 'versions-h', id: 'versions-card' },
    h('div', { class: 'card-head' }, h('h2', { id: 'versions-h' }, 'Versions'),
      h('button', { type: 'button', class: 'btn btn-small btn-quiet', onclick: () => refreshVersions() }, 'Refresh')),
    versionsBox, rollbackProgress.el);

  async function rollback(version) {
    const ok = await confirmDialog(`Serve version ${version} of ${name} again?`,
      `Every edge of the ${a.edge_group} group switches to version ${version} at once. The other kept versions stay available.`, `Serve v${version}`, true);
    if (!ok) return;
    const job = await attempt(ctx, versionsBox, () => post(`/api/apis/${enc(name)}/rollback`, { to: version }, { signal: ctx.signal }));
    if (!job) return;
    rollbackProgress.start(job);
    await attempt(ctx, null, async () => {
      await followJob(ctx, job.id, rollbackProgress.handle);
      refreshVersions();
    });
  }

  async function refreshVersions() {
    await attempt(ctx, versionsBox, async () => {
      const v = await get(`/api/apis/${enc(name)}/versions`, { signal: ctx.signal });
      const current = v.history.find((x) => x.version === v.serving);
      fill(servingCell, ...(v.serving
        ? [pill(`v${v.serving}`, 'ok', { id: 'serving-version' }), current ? ` ${fmtInt(current.keys)} keys, ${fmtBytes(current.bytes)}, via ${current.path}, ` : ' ', current ? when(current.committed_at) : '']
        : [h('span', { class: 'muted' }, 'not published yet')]));
      const keptEverywhere = (ver) => v.edges.length > 0 && v.edges.every((e) => !e.error && e.kept.some((k) => k.version === ver));
      const parts = [];
      const broken = v.edges.filter((e) => e.error);
      if (broken.length) parts.push(h('div', { class: 'notice bad' }, broken.map((e) => h('div', {}, h('code', {}, e.edge), `: ${e.error}`))));
      if (!v.serving && v.edges.some((e) => e.serving)) {
        parts.push(h('div', { class: 'notice warn' }, 'The edges serve different versions: ',
          v.edges.map((e) => `${e.edge} v${e.serving ?? '–'}`).join(', ')));
      }
      if (v.converging && v.desired) {
        parts.push(h('div', { class: 'notice warn', id: 'versions-converging' },
          `Converging to v${v.desired}: a switch did not reach every edge yet. The control plane brings every edge to it (or back) as soon as they answer.`));
      }
      if (!v.history.length) {
        parts.push(h('p', { class: 'muted', id: 'versions-empty' }, 'Nothing published yet.'));
      } else {
        parts.push(h('div', { class: 'table-wrap' }, h('table', { class: 'data compact', id: 'versions-table' },
          h('thead', {}, h('tr', {}, ['Version', 'Committed', 'Path', 'Keys', 'Size', ''].map((c, i) => h('th', { scope: 'col', class: i === 3 || i === 4 ? 'num' : '' }, c)))),
          h('tbody', {}, v.history.map((x) => h('tr', { dataset: { version: String(x.version) } },
            h('td', {}, `v${x.version}`, h('span', { class: 'sub mono', title: x.checksum || '' }, (x.checksum || '').slice(0, 10))),
            h('td', {}, x.committed_at ? when(x.committed_at) : pill(x.state, x.state === 'discarded' ? 'warn' : '')),
            h('td', {}, x.path || '–'),
            h('td', { class: 'num' }, fmtInt(x.keys)),
            h('td', { class: 'num' }, fmtBytes(x.bytes)),
            h('td', {}, x.version === v.serving
              ? pill('serving', 'ok')
              : x.state !== 'committed' && x.state !== 'retired'
                ? h('span', { class: 'muted small' }, x.state)
                : keptEverywhere(x.version) && a.may_change
                ? h('button', {
                  type: 'button', class: 'btn btn-small', dataset: { test: `rollback-${x.version}` }, onclick: () => rollback(x.version),
                  title: `${v.serving && x.version > v.serving ? 'Roll forward' : 'Roll back'} to version ${x.version}`,
                }, `Serve v${x.version}`)
                : keptEverywhere(x.version)
                ? h('span', { class: 'muted small' }, 'kept')
                : h('span', { class: 'muted small', title: 'Only the newest versions are kept on the edges' }, 'dropped'))))))));
      }
      fill(versionsBox, ...parts);
    });
  }

  // Tokens
  const tokensBox = h('div', { id: 'api-tokens' });
  const secretBox = h('div', { id: 'api-token-secret-box', 'aria-live': 'polite' });
  const tokenName = h('input', { type: 'text', id: 'api-token-name', placeholder: 'who uses it, e.g. checkout-service', maxlength: '64', autocomplete: 'off' });
  const tokenCreate = h('button', { type: 'submit', class: 'btn', id: 'api-token-create' }, 'Create token');
  const tokenForm = h('form', { class: 'inline-form', novalidate: true },
    h('label', { class: 'sr-only', for: 'api-token-name' }, 'Token name'), h('div', { class: 'grow' }, tokenName), tokenCreate);
  tokenForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!tokenName.value.trim()) {
      tokenName.focus();
      return;
    }
    setBusy(tokenCreate, true);
    await attempt(ctx, secretBox, async () => {
      const t = await post(`/api/apis/${enc(name)}/tokens`, { name: tokenName.value.trim() }, { signal: ctx.signal });
      tokenName.value = '';
      fill(secretBox, secret(t.token, `Token ${t.name} created. Copy it now: it is not shown again.`), pushResults(t.edges));
      refreshTokens();
    });
    setBusy(tokenCreate, false);
  });
  const tokensCard = h('section', { class: 'card', 'aria-labelledby': 'tokens-h', id: 'tokens-card' },
    h('div', { class: 'card-head' }, h('h2', { id: 'tokens-h' }, 'Read tokens')),
    a.protected ? h('p', { class: 'muted small' }, 'Lookups must send one of these as Authorization: Bearer ….')
      : h('p', { class: 'muted small' }, 'This API is public. Tokens take effect once it is protected (Edit → Protected).'),
    a.may_change ? tokenForm : null, secretBox, tokensBox);

  async function refreshTokens() {
    await attempt(ctx, tokensBox, async () => {
      const list = await get(`/api/apis/${enc(name)}/tokens`, { signal: ctx.signal });
      fill(tokensBox, tokenTable(ctx, list, () => refreshTokens(), secretBox, a.may_change));
    });
  }

  // Spec
  const viewer = specViewer('api-spec');
  viewer.set(s);
  const specCard = h('section', { class: 'card', 'aria-labelledby': 'spec-h' },
    h('div', { class: 'card-head' }, h('h2', { id: 'spec-h' }, 'Spec'), h('span', { class: 'hint' }, `revision ${a.revision}`)),
    viewer.el);

  const remove = h('button', { type: 'button', class: 'btn btn-danger', id: 'delete-api' }, 'Delete');
  remove.addEventListener('click', async () => {
    const ok = await confirmDialog(`Delete ${name}?`, 'Its revisions, versions and tokens go and queued jobs are cancelled; every edge drops its keys and its lookups answer 404 at once.', 'Delete API', true);
    if (!ok) return;
    await attempt(ctx, null, async () => {
      const deleted = await api('DELETE', `/api/apis/${enc(name)}`, undefined, { signal: ctx.signal });
      const missed = deleted.edges.filter((e) => !e.ok).map((e) => e.edge);
      toast(missed.length ? `${name} deleted; ${missed.join(', ')} will drop it when it answers` : `${name} deleted from every edge`, missed.length ? 'bad' : undefined);
      go('#/apis');
    });
  });

  page(ctx, name, 'apis',
    head({
      crumbs: [h('a', { href: '#/apis' }, 'APIs'), ' / '],
      title: name,
      id: 'page-title',
      subtitle: describeSpec(s),
      actions: a.may_change ? [h('a', { class: 'btn', href: `#/apis/${enc(name)}/edit`, id: 'edit-api' }, 'Edit'), remove] : [],
    }),
    h('div', { class: 'grid-2' },
      h('div', { class: 'stack' }, overview, freshnessCard, planCard, publishCard),
      h('div', { class: 'stack' }, tryCard, versionsCard, tokensCard, specCard)),
    trafficCard(ctx, name));

  refreshVersions();
  refreshTokens();
  if (a.last_job && a.last_job.kind === 'publish') follow(a.last_job);
}
