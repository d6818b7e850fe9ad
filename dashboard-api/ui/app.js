// Tablecast dashboard: a single page over the REST API under /api (see /api/openapi.json).
// Plain JavaScript, no build step. The DOM is built with `h()` (textContent only, never HTML
// strings), so table data and error messages can never inject markup.
'use strict';

(() => {
  // ── DOM helpers ──────────────────────────────────────────────────────────────────────────

  const BOOL_PROPS = new Set(['checked', 'disabled', 'hidden', 'selected', 'required', 'readOnly', 'multiple', 'open']);

  /** Creates an element: h('a', {href, class, text, onclick, dataset}, ...children). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    let value;
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'value') value = v;
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (BOOL_PROPS.has(k)) el[k] = Boolean(v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    if (value !== undefined) el.value = value;
    return el;
  }

  function append(el, ...children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  /** Replaces an element's children (arrays flattened, null and false skipped). */
  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, ...children);
  }

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const enc = encodeURIComponent;

  function setBusy(button, busy) {
    button.disabled = busy;
    button.classList.toggle('busy', busy);
    button.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  // ── formatting ───────────────────────────────────────────────────────────────────────────

  const numberFormat = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (n === null || n === undefined ? '—' : numberFormat.format(n));

  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    const digits = i === 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
    return `${v.toFixed(digits)} ${units[i]}`;
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms < 10) return `${ms.toFixed(ms < 1 ? 2 : 1)} ms`;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  function relTime(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso || '—';
    const s = (Date.now() - t) / 1000;
    if (s < 45) return 'just now';
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    if (s < 7 * 86400) return `${Math.round(s / 86400)} d ago`;
    return new Date(t).toLocaleDateString();
  }

  function when(iso) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const t = Date.parse(iso);
    return h('time', { datetime: iso, title: Number.isNaN(t) ? iso : new Date(t).toLocaleString() }, relTime(iso));
  }

  function durationBetween(a, b) {
    const s = Date.parse(a);
    const e = Date.parse(b);
    return Number.isNaN(s) || Number.isNaN(e) ? null : e - s;
  }

  const HUGE = 2 ** 63;

  function pill(text, kind, extra) {
    return h('span', Object.assign({ class: `pill ${kind || ''}` }, extra || {}), text);
  }

  function cell(value) {
    if (value === null || value === undefined) return h('span', { class: 'null' }, 'null');
    if (typeof value === 'object') return JSON.stringify(value);
    return String(value);
  }

  const pretty = (v) => JSON.stringify(v, null, 2);

  // ── session ──────────────────────────────────────────────────────────────────────────────

  const TOKEN_KEY = 'tablecast.token';
  const NEXT_KEY = 'tablecast.next';
  const store = {
    get token() {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    },
    set token(t) {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    },
  };
  const state = { me: null, signOutReason: '', cache: new Map(), expanded: new Set() };

  function signOut(reason) {
    store.token = '';
    state.me = null;
    state.cache.clear();
    state.signOutReason = reason || '';
    go('#/login');
  }

  // ── REST client ──────────────────────────────────────────────────────────────────────────

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || `HTTP ${status}`);
      this.name = 'ApiError';
      this.status = status;
      this.code = e.code || `http_${status}`;
      this.fields = e.fields || [];
    }
  }

  const isAbort = (e) => e && (e.name === 'AbortError' || e.name === 'Aborted');

  async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    const token = opts.token !== undefined ? opts.token : store.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload, signal: opts.signal });
    } catch (e) {
      if (isAbort(e)) throw e;
      throw new ApiError(0, { error: { code: 'network', message: `The dashboard did not answer: ${e.message}` } });
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = res.ok ? text : { error: { message: text } };
      }
    }
    if (res.status === 401 && !opts.noSignOut) {
      signOut('Your token is no longer accepted. Sign in again.');
      throw new ApiError(401, data);
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  const get = (path, opts) => api('GET', path, undefined, opts);
  const post = (path, body, opts) => api('POST', path, body, opts);

  /** GETs once per session (catalog listings), sharing in-flight requests. */
  function cachedGet(path) {
    if (!state.cache.has(path)) {
      const p = get(path).catch((e) => {
        state.cache.delete(path);
        throw e;
      });
      state.cache.set(path, p);
    }
    return state.cache.get(path);
  }

  function sleep(ctx, ms) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }

  /**
   * Follows a job's Server-Sent Events (fetch, since EventSource cannot send a bearer token),
   * reconnecting after the last seen event id, until the `finished` event. Returns it.
   */
  async function followJob(ctx, id, onEvent) {
    let after = 0;
    let failures = 0;
    while (!ctx.signal.aborted) {
      let res;
      try {
        res = await fetch(`/api/jobs/${enc(id)}/events?after=${after}`, {
          headers: { Authorization: `Bearer ${store.token}`, Accept: 'text/event-stream' },
          signal: ctx.signal,
        });
      } catch (e) {
        if (ctx.signal.aborted) return null;
        failures += 1;
        if (failures > 10) throw new ApiError(0, { error: { message: `lost the job's event stream: ${e.message}` } });
        await sleep(ctx, Math.min(300 * 2 ** failures, 5000));
        continue;
      }
      if (res.status === 401) {
        signOut('Your token is no longer accepted. Sign in again.');
        return null;
      }
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        throw new ApiError(res.status, body);
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let data = '';
            let seq = null;
            for (const line of block.split('\n')) {
              if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(5).replace(/^ /, '');
              else if (line.startsWith('id:')) seq = line.slice(3).trim();
            }
            if (!data) continue;
            let event;
            try {
              event = JSON.parse(data);
            } catch {
              continue;
            }
            if (seq !== null && seq !== '') after = Number(seq);
            failures = 0;
            onEvent(event);
            if (event.event === 'finished' || event.event === 'stream_error') {
              reader.cancel().catch(() => {});
              return event;
            }
          }
        }
      } catch (e) {
        if (ctx.signal.aborted) return null;
        failures += 1;
      }
      if (ctx.signal.aborted) return null;
      await sleep(ctx, Math.min(300 * 2 ** failures, 5000));
    }
    return null;
  }

  // ── UI chrome: toasts, confirm dialog, errors ────────────────────────────────────────────

  function toast(message, kind) {
    const t = h('div', { class: `toast ${kind || ''}` }, message);
    $('#toasts').append(t);
    setTimeout(() => t.remove(), kind === 'bad' ? 9000 : 5000);
  }

  function confirmDialog(title, text, okLabel, danger) {
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

  function errorNotice(e, title) {
    return h('div', { class: 'notice bad', role: 'alert' },
      h('div', { class: 'title' }, title || 'Something went wrong'),
      h('pre', {}, e && e.message ? e.message : String(e)));
  }

  function loading(text) {
    return h('div', { class: 'loading-block' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text || 'Loading…');
  }

  /** Runs an async action for a view; errors become a notice in `where` (or a toast). */
  async function attempt(ctx, where, fn) {
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

  async function copyText(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      toast(`${what} copied`);
    } catch {
      toast(`Copying is not allowed here: select the ${what.toLowerCase()} and copy it by hand`, 'bad');
    }
  }

  // ── routing ──────────────────────────────────────────────────────────────────────────────

  let current = null;

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  function page(ctx, title, section, ...content) {
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

  function head(opts) {
    return h('div', { class: 'page-head' },
      h('div', { class: 'titles' },
        opts.crumbs ? h('div', { class: 'crumbs' }, opts.crumbs) : null,
        h('h1', { id: opts.id || 'page-title' }, opts.title),
        opts.subtitle ? h('div', { class: 'subtitle' }, opts.subtitle) : null),
      opts.actions ? h('div', { class: 'actions' }, opts.actions) : null);
  }

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

  // ── login ────────────────────────────────────────────────────────────────────────────────

  function viewLogin(ctx) {
    const input = h('input', {
      type: 'password', id: 'login-token', name: 'token', autocomplete: 'off', spellcheck: 'false',
      required: true, 'aria-describedby': 'login-help login-error',
    });
    const error = h('p', { class: 'field-error', id: 'login-error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'login-submit' }, 'Sign in');
    const reason = state.signOutReason;
    state.signOutReason = '';
    const form = h('form', { class: 'card', id: 'login-form', novalidate: true },
      h('h1', { class: 'sr-only' }, 'Sign in'),
      reason ? h('div', { class: 'notice warn' }, reason) : null,
      h('div', { class: 'field' },
        h('label', { for: 'login-token' }, 'Access token'),
        input,
        h('p', { class: 'help', id: 'login-help' },
          'The admin token (TABLECAST_ADMIN_TOKEN) or an analyst token from your administrator. ',
          'It stays in this browser tab only.'),
        error),
      submit);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const token = input.value.trim();
      error.textContent = '';
      input.removeAttribute('aria-invalid');
      if (!token) {
        error.textContent = 'Paste your token.';
        input.setAttribute('aria-invalid', 'true');
        input.focus();
        return;
      }
      setBusy(submit, true);
      try {
        state.me = await get('/api/me', { token, noSignOut: true, signal: ctx.signal });
        store.token = token;
        const next = sessionStorage.getItem(NEXT_KEY);
        sessionStorage.removeItem(NEXT_KEY);
        go(next && !next.startsWith('#/login') ? next : '#/tables');
      } catch (e) {
        if (isAbort(e)) return;
        error.textContent = e.status === 401 ? 'That token is unknown or has been revoked.' : e.message;
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      } finally {
        setBusy(submit, false);
      }
    });
    page(ctx, 'Sign in', 'login',
      h('div', { class: 'login' },
        h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Tablecast'),
        form,
        h('p', { class: 'help' }, 'Publish warehouse tables as low-latency lookup APIs.')));
    $('.login .brand-mark').replaceWith($('.topbar .brand-mark').cloneNode(true));
    input.focus();
  }

  // ── tables ───────────────────────────────────────────────────────────────────────────────

  async function viewTables(ctx, catalogName, dbName, tableName) {
    const catalogs = await cachedGet('/api/catalogs');
    if (!catalogs.length) {
      page(ctx, 'Tables', 'tables', head({ title: 'Tables' }),
        h('div', { class: 'card empty' }, h('strong', {}, 'No catalog is configured'),
          'Set `metastore` or [dashboard] catalogs in tablecast.toml and restart `tablecast serve`.'));
      return;
    }
    const catalog = catalogs.find((c) => c.name === catalogName) || catalogs[0];
    const base = `#/tables/${enc(catalog.name)}`;

    const picker = catalogs.length > 1
      ? h('div', { class: 'field' }, h('label', { for: 'catalog-select' }, 'Catalog'),
        h('select', {
          id: 'catalog-select',
          value: catalog.name,
          onchange: (e) => go(`#/tables/${enc(e.target.value)}`),
        }, catalogs.map((c) => h('option', { value: c.name }, c.name))))
      : h('div', { class: 'field' }, h('div', { class: 'label' }, 'Catalog'), h('div', {}, catalog.name));
    const tree = h('ul', { class: 'tree', id: 'db-tree', 'aria-label': `Databases of ${catalog.name}` }, h('li', { class: 'loading' }, 'Loading databases…'));
    const side = h('nav', { class: 'card', 'aria-label': 'Catalog browser' },
      picker,
      h('p', { class: 'help mono' }, catalog.uri),
      h('h3', {}, 'Databases'),
      tree);
    const detail = h('div', { id: 'table-detail' });
    const qualified = dbName && tableName ? `${dbName}.${tableName}` : null;

    page(ctx, qualified || 'Tables', 'tables',
      qualified ? null : head({ title: 'Tables', subtitle: 'Browse the catalogs Tablecast reads. Pick a table to see its schema, statistics and first rows.' }),
      h('div', { class: 'split' }, side, detail));

    if (dbName) state.expanded.add(`${catalog.name}/${dbName}`);
    attempt(ctx, tree, async () => {
      const dbs = await cachedGet(`/api/catalogs/${enc(catalog.name)}/databases`);
      fill(tree, ...(dbs.length ? dbs.map((db) => dbNode(ctx, catalog, db, base, dbName === db ? tableName : null)) : [h('li', { class: 'none' }, 'No databases')]));
    });

    if (!qualified) {
      detail.append(h('div', { class: 'card empty' }, h('strong', {}, 'Choose a table'),
        'Open a database on the left, then a table, to see its columns, partitions, size and a preview of its rows.'));
      return;
    }
    detail.append(loading(`Reading ${qualified}…`));
    await attempt(ctx, detail, async () => {
      const t = await get(`/api/catalogs/${enc(catalog.name)}/tables/${enc(qualified)}`, { signal: ctx.signal });
      fill(detail, ...tableDetail(catalog, t));
      if (ctx.focus) $('#page-title').focus({ preventScroll: true });
    });
  }

  function dbNode(ctx, catalog, db, base, selectedTable) {
    const key = `${catalog.name}/${db}`;
    const listId = `tables-of-${db}`;
    const list = h('ul', { id: listId, hidden: true });
    const toggle = h('button', {
      type: 'button', class: 'db-toggle', 'aria-expanded': 'false', 'aria-controls': listId, dataset: { test: `db-${db}` },
    }, h('span', { class: 'chev', 'aria-hidden': 'true' }, '▸'), db);
    let loaded = false;
    const open = async (expand) => {
      toggle.setAttribute('aria-expanded', String(expand));
      list.hidden = !expand;
      if (expand) state.expanded.add(key);
      else state.expanded.delete(key);
      if (!expand || loaded) return;
      loaded = true;
      fill(list, h('li', { class: 'loading' }, 'Loading tables…'));
      await attempt(ctx, list, async () => {
        const tables = await cachedGet(`/api/catalogs/${enc(catalog.name)}/databases/${enc(db)}/tables`);
        fill(list, ...(tables.length ? tables.map((t) => h('li', {},
          h('a', {
            href: `${base}/${enc(db)}/${enc(t.name)}`,
            'aria-current': t.name === selectedTable ? 'page' : null,
            dataset: { test: `table-${t.table}` },
          }, t.name))) : [h('li', { class: 'none' }, 'No tables')]));
      });
    };
    toggle.addEventListener('click', () => open(toggle.getAttribute('aria-expanded') !== 'true'));
    if (state.expanded.has(key)) open(true);
    return h('li', {}, toggle, list);
  }

  function tableDetail(catalog, t) {
    const stats = t.stats || {};
    const source = { catalog: 'from catalog statistics', listing: 'from listing the files', unknown: 'unknown' }[stats.source] || stats.source;
    const newApi = `#/apis/new?catalog=${enc(catalog.name)}&table=${enc(t.name)}`;
    const out = [
      head({
        id: 'page-title',
        crumbs: [h('a', { href: '#/tables' }, 'Tables'), ' / ', catalog.name, ' / ', t.name.split('.')[0]],
        title: t.name,
        subtitle: [pill(t.format, 'accent'), ' ', h('span', { class: 'mono small' }, t.location)],
        actions: h('a', { class: 'btn btn-primary', href: newApi, id: 'new-api-from-table' }, 'New API from this table'),
      }),
      h('div', { class: 'stats', id: 'table-stats' },
        stat('Rows', fmtInt(stats.rows), source, 'rows'),
        stat('Files', fmtInt(stats.files), null, 'files'),
        stat('Size', fmtBytes(stats.bytes), stats.bytes ? `${fmtInt(stats.bytes)} bytes` : null, 'bytes'),
        stat('Partitions', fmtInt(t.partition_count), t.partition_keys.length ? `by ${t.partition_keys.join(', ')}` : 'not partitioned', 'partitions')),
    ];

    out.push(h('section', { class: 'card', 'aria-labelledby': 'schema-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'schema-h' }, 'Schema'), h('span', { class: 'hint' }, `${t.columns.length} columns`)),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data compact', id: 'schema-table' },
        h('thead', {}, h('tr', {}, h('th', { class: 'num', scope: 'col' }, '#'), h('th', { scope: 'col' }, 'Column'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Notes'))),
        h('tbody', {}, t.columns.map((c, i) => h('tr', { dataset: { column: c.name } },
          h('td', { class: 'num muted' }, i + 1),
          h('td', { class: 'mono' }, c.name),
          h('td', { class: 'mono' }, c.type),
          h('td', {}, c.partition_key ? pill('partition key', 'info') : null, ' ', c.scalar ? null : pill('not servable', 'warn', { title: 'Nested or unsupported type: it cannot be a key or a value' })))))))));

    if (t.partition_keys.length) {
      out.push(h('section', { class: 'card', 'aria-labelledby': 'partitions-h' },
        h('div', { class: 'card-head' }, h('h2', { id: 'partitions-h' }, 'Partitions'),
          h('span', { class: 'hint' }, t.partitions.length < t.partition_count ? `first ${t.partitions.length} of ${fmtInt(t.partition_count)}` : `${fmtInt(t.partition_count)}`)),
        t.partitions.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'data compact', id: 'partitions-table' },
          h('thead', {}, h('tr', {}, t.partition_keys.map((k) => h('th', { scope: 'col' }, k)), h('th', { class: 'num', scope: 'col' }, 'Rows'), h('th', { scope: 'col' }, 'Location'))),
          h('tbody', {}, t.partitions.map((p) => h('tr', {},
            p.values.map((v) => h('td', { class: 'mono' }, v)),
            h('td', { class: 'num' }, fmtInt(p.rows)),
            h('td', { class: 'mono small muted wrap' }, p.location)))))) : h('p', { class: 'muted' }, 'No partitions.')));
    }

    const preview = t.preview;
    out.push(h('section', { class: 'card', 'aria-labelledby': 'preview-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'preview-h' }, 'Preview'),
        preview ? h('span', { class: 'hint' }, `first ${preview.rows.length} rows of ${preview.file.split('/').slice(-2).join('/')}`) : null),
      preview
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'data compact preview-table', id: 'preview-table' },
          h('thead', {}, h('tr', {}, preview.columns.map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, preview.rows.map((r) => h('tr', {}, r.map((v) => h('td', { class: typeof v === 'number' ? 'num' : '' }, cell(v)))))))
        )
        : h('p', { class: 'muted' }, t.preview_error ? `No preview: ${t.preview_error}` : 'No preview.')));

    const params = Object.entries(t.parameters || {});
    if (params.length) {
      out.push(h('details', { class: 'card' }, h('summary', {}, `Table parameters (${params.length})`),
        h('dl', { class: 'facts small' }, params.map(([k, v]) => [h('dt', { class: 'mono' }, k), h('dd', { class: 'mono' }, v)]))));
    }
    return out;
  }

  function stat(label, value, note, test) {
    return h('div', { class: 'stat', dataset: { test: `stat-${test}` } },
      h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), note ? h('div', { class: 'note' }, note) : null);
  }

  // ── API specs in words and as TOML ───────────────────────────────────────────────────────

  function valueLabel(v) {
    const base = v.agg ? `${v.agg}(${v.column || '*'})` : v.column;
    return v.as && v.as !== v.column ? `${base} as ${v.as}` : base;
  }

  function filterLabel(f) {
    if (f.op === 'is_null') return `${f.column} is null`;
    if (f.op === 'not_null') return `${f.column} is not null`;
    return `${f.column} ${f.op} ${JSON.stringify(f.value)}`;
  }

  function describeSpec(s) {
    const key = s.key && s.key.length ? `For each ${s.key.join(' + ')}` : 'One global entry';
    const rows = s.limit ? (s.order_by && s.order_by.length ? `the top ${s.limit}` : `up to ${s.limit}`) : 'all';
    const what = s.shape === 'object' ? 'one object' : `${rows} rows`;
    const order = s.order_by && s.order_by.length ? `, by ${s.order_by.map((o) => `${o.field} ${o.dir === 'desc' ? 'descending' : 'ascending'}`).join(', ')}` : '';
    const filter = s.filter && s.filter.length ? `, where ${s.filter.map(filterLabel).join(' and ')}` : '';
    return `${key}: ${what} of ${s.values.map(valueLabel).join(', ')}${order}${filter}.`;
  }

  function tomlValue(v) {
    if (typeof v === 'string') return JSON.stringify(v);
    if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
    if (v !== null && typeof v === 'object') return `{ ${Object.entries(v).map(([k, x]) => `${tomlKey(k)} = ${tomlValue(x)}`).join(', ')} }`;
    return String(v);
  }

  const tomlKey = (k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));

  function toToml(spec) {
    const lines = [];
    const tables = [];
    for (const [k, v] of Object.entries(spec)) {
      if (v === undefined || v === null) continue;
      if (Array.isArray(v) && v.length && typeof v[0] === 'object' && v[0] !== null) tables.push([k, v]);
      else if (!Array.isArray(v) && typeof v === 'object') tables.push([k, v]);
      else lines.push(`${tomlKey(k)} = ${tomlValue(v)}`);
    }
    for (const [k, v] of tables) {
      if (Array.isArray(v)) {
        for (const item of v) {
          lines.push('', `[[${k}]]`);
          for (const [ik, iv] of Object.entries(item)) if (iv !== undefined && iv !== null) lines.push(`${tomlKey(ik)} = ${tomlValue(iv)}`);
        }
      } else if (Object.keys(v).length) {
        lines.push('', `[${k}]`);
        for (const [ik, iv] of Object.entries(v)) if (iv !== undefined && iv !== null) lines.push(`${tomlKey(ik)} = ${tomlValue(iv)}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }

  /** A JSON/TOML switcher over a spec. */
  function specViewer(id) {
    let spec = {};
    let format = 'toml';
    const out = h('pre', { class: 'code', id, tabindex: '0', 'aria-label': 'The API spec' });
    const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Spec format' });
    const draw = () => {
      out.textContent = format === 'toml' ? toToml(spec) : pretty(spec);
      for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.format === format));
    };
    for (const f of ['toml', 'json']) {
      tabs.append(h('button', {
        type: 'button', role: 'tab', dataset: { format: f }, id: `${id}-${f}`,
        onclick: () => {
          format = f;
          draw();
        },
      }, f.toUpperCase()));
    }
    return {
      el: h('div', {}, tabs, out),
      set(s) {
        spec = s;
        draw();
      },
      text: () => out.textContent,
    };
  }

  // ── APIs list ────────────────────────────────────────────────────────────────────────────

  async function viewApis(ctx) {
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
        path, keys, size);
    });
    page(ctx, 'APIs', 'apis',
      head({ title: 'APIs', subtitle: `${apis.length} API${apis.length === 1 ? '' : 's'} defined`, actions: newButton }),
      h('div', { class: 'table-wrap card', id: 'apis-table-wrap' }, h('table', { class: 'data', id: 'apis-table' },
        h('thead', {}, h('tr', {}, ['API', 'Table', 'Serving', 'Last publish', 'Path', 'Keys', 'Size'].map((c, i) => h('th', { scope: 'col', class: i >= 5 || i === 2 ? 'num' : '' }, c)))),
        h('tbody', {}, rows))));
  }

  // ── API form ─────────────────────────────────────────────────────────────────────────────

  const AGGS = ['count', 'sum', 'min', 'max', 'avg', 'count_distinct'];
  const OPS = ['=', '!=', '<', '<=', '>', '>=', 'in', 'is_null', 'not_null'];
  const LISTS = ['key', 'values', 'group_by', 'order_by', 'filter'];
  const fieldId = (path) => `f-${path.replace(/[[\].]+/g, '-').replace(/-$/, '')}`;

  function humanField(path) {
    const m = path.match(/^(\w+)(?:\[(\d+)\])?(?:\.(\w+))?$/);
    if (!m) return path;
    const names = { key: 'Key column', values: 'Value', group_by: 'Group by', order_by: 'Order', filter: 'Filter', name: 'Name', table: 'Table', limit: 'Limit', shape: 'Shape', catalog: 'Catalog', edge_group: 'Edge group', protected: 'Access', body: 'Spec' };
    let out = names[m[1]] || m[1];
    if (m[2] !== undefined) out += ` ${Number(m[2]) + 1}`;
    if (m[3]) out += ` › ${m[3] === 'as' ? 'output name' : m[3]}`;
    return out;
  }

  function parseLiteral(text) {
    const t = text.trim();
    if (t === '') return '';
    try {
      const v = JSON.parse(t);
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    } catch {
      // plain text
    }
    return t;
  }

  function formatLiteral(v) {
    if (v === undefined || v === null) return '';
    if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' && !/[,"]/.test(x) ? x : JSON.stringify(x))).join(', ');
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function modelFromSpec(spec, view) {
    return {
      name: spec.name || '',
      table: spec.table || '',
      catalog: view ? view.catalog : '',
      edge_group: view ? view.edge_group : '',
      key: (spec.key || []).slice(),
      values: (spec.values || []).map((v) => ({ agg: v.agg || '', column: v.column || '', as: v.as || '' })),
      group_by: (spec.group_by || []).slice(),
      order_by: (spec.order_by || []).map((o) => ({ field: o.field, dir: o.dir || 'asc' })),
      limit: spec.limit === undefined || spec.limit === null ? '' : String(spec.limit),
      shape: spec.shape || 'list',
      filter: (spec.filter || []).map((f) => ({ column: f.column, op: f.op, value: formatLiteral(f.value) })),
      protected: Boolean(spec.protected),
      limits: spec.limits || null,
    };
  }

  /** The spec from the form, which rows of each list made it in, and problems found locally. */
  function specFromModel(m) {
    const maps = { key: [], values: [], group_by: [], order_by: [], filter: [] };
    const local = [];
    const spec = { name: m.name.trim(), table: m.table.trim(), key: [], values: [] };
    m.key.forEach((k, i) => {
      if (k.trim()) {
        maps.key.push(i);
        spec.key.push(k.trim());
      }
    });
    m.values.forEach((v, i) => {
      if (!v.agg && !v.column.trim() && !v.as.trim()) return;
      maps.values.push(i);
      const out = {};
      if (v.agg) out.agg = v.agg;
      if (v.column.trim()) out.column = v.column.trim();
      if (v.as.trim()) out.as = v.as.trim();
      spec.values.push(out);
    });
    const groups = [];
    m.group_by.forEach((g, i) => {
      if (g.trim()) {
        maps.group_by.push(i);
        groups.push(g.trim());
      }
    });
    if (groups.length) spec.group_by = groups;
    const orders = [];
    m.order_by.forEach((o, i) => {
      if (o.field.trim()) {
        maps.order_by.push(i);
        orders.push({ field: o.field.trim(), dir: o.dir });
      }
    });
    if (orders.length) spec.order_by = orders;
    const limit = m.limit.trim();
    if (limit) {
      if (/^\d+$/.test(limit)) spec.limit = Number(limit);
      else local.push({ field: 'limit', message: 'a whole number of rows per key' });
    }
    spec.shape = m.shape;
    const filters = [];
    m.filter.forEach((f, i) => {
      if (!f.column.trim() && !f.value.trim()) return;
      maps.filter.push(i);
      const out = { column: f.column.trim(), op: f.op };
      if (f.op === 'in') {
        const t = f.value.trim();
        if (t.startsWith('[')) {
          let parsed = null;
          try {
            parsed = JSON.parse(t);
          } catch {
            parsed = null;
          }
          if (Array.isArray(parsed)) out.value = parsed;
          else local.push({ field: `filter[${i}].value`, message: 'not a JSON array: write a, b, c or ["a", "b"]' });
        } else {
          out.value = t ? t.split(',').map(parseLiteral) : [];
        }
      } else if (f.op !== 'is_null' && f.op !== 'not_null') {
        out.value = parseLiteral(f.value);
      }
      filters.push(out);
    });
    if (filters.length) spec.filter = filters;
    if (m.protected) spec.protected = true;
    if (m.limits && Object.keys(m.limits).length) spec.limits = m.limits;
    return { spec, maps, local };
  }

  /** A server field path (spec indices) as a form path (row indices). */
  function toFormPath(field, maps) {
    const m = field.match(/^(\w+)\[(\d+)\](.*)$/);
    if (!m || !maps[m[1]]) return field;
    const row = maps[m[1]][Number(m[2])];
    return row === undefined ? field : `${m[1]}[${row}]${m[3]}`;
  }

  async function viewApiForm(ctx, name, query) {
    const editing = Boolean(name);
    const [catalogs, existing, apis] = await Promise.all([
      cachedGet('/api/catalogs'),
      editing ? get(`/api/apis/${enc(name)}`, { signal: ctx.signal }) : null,
      editing ? [] : get('/api/apis', { signal: ctx.signal }),
    ]);
    const taken = new Set(apis.map((a) => a.name));
    const m = editing
      ? modelFromSpec(existing.spec, existing)
      : modelFromSpec({ table: query.get('table') || '', key: [''], values: [{}], shape: 'list' }, null);
    if (!editing) {
      m.catalog = query.get('catalog') || (catalogs[0] && catalogs[0].name) || '';
      m.values = [{ agg: '', column: '', as: '' }];
    }

    const touched = new Set();
    let showAll = false;
    let problems = [];
    let maps = {};
    let columns = [];
    let validateTimer = null;
    let validateSeq = 0;
    let validating = null;
    // Problems are stale from an edit until its validation answers: painting stale ones on blur
    // would shift the layout under the pointer and swallow the click that caused the blur.
    let stale = false;
    ctx.signal.addEventListener('abort', () => {
      clearTimeout(validateTimer);
      if (validating) validating.abort();
    }, { once: true });

    const form = h('form', { id: 'api-form', novalidate: true, 'aria-describedby': 'form-errors' });
    const formErrors = h('div', { id: 'form-errors', role: 'alert' });
    const status = h('div', { id: 'validation-status', class: 'status-line', 'aria-live': 'polite' });
    const summary = h('ul', { id: 'problem-list', class: 'small' });
    const viewer = specViewer('spec-preview');
    const columnsBox = h('div', { id: 'columns-box' });
    const columnsList = h('datalist', { id: 'columns-list' });
    const outputsList = h('datalist', { id: 'outputs-list' });
    const tablesList = h('datalist', { id: 'tables-list' });
    const knownTables = new Set();

    const errorSlot = (path) => h('p', { class: 'field-error', id: `err-${fieldId(path)}`, dataset: { errorFor: path } });

    function input(path, props) {
      return h('input', Object.assign({
        type: 'text', id: fieldId(path), name: path, dataset: { field: path }, autocomplete: 'off', spellcheck: 'false',
        'aria-describedby': `err-${fieldId(path)}`,
      }, props));
    }

    function bind(el, path, setter, eventName) {
      el.addEventListener(eventName || 'input', () => {
        setter(el.type === 'checkbox' ? el.checked : el.value);
        touched.add(path);
        changed();
      });
      el.addEventListener('blur', () => {
        if (el.value !== undefined && el.value !== '') {
          touched.add(path);
          if (!stale) paintProblems();
        }
      });
      return el;
    }

    function removeButton(list, i, label) {
      return h('button', {
        type: 'button', class: 'btn btn-quiet btn-icon', 'aria-label': `Remove ${label}`, title: `Remove ${label}`,
        dataset: { test: `remove-${list}-${i}` },
        onclick: () => {
          m[list].splice(i, 1);
          drawList(list);
          changed();
          $(`#add-${list}`).focus();
        },
      }, '×');
    }

    const containers = {};
    const rowRenderers = {
      key: (i) => {
        const path = `key[${i}]`;
        return h('div', { class: 'row cols-1', dataset: { row: path } },
          h('div', { class: 'cell' },
            h('label', { class: 'sr-only', for: fieldId(path) }, `Key column ${i + 1}`),
            bind(input(path, { value: m.key[i], list: 'columns-list', placeholder: 'column' }), path, (v) => { m.key[i] = v; }),
            errorSlot(path)),
          removeButton('key', i, `key column ${i + 1}`));
      },
      group_by: (i) => {
        const path = `group_by[${i}]`;
        return h('div', { class: 'row cols-1', dataset: { row: path } },
          h('div', { class: 'cell' },
            h('label', { class: 'sr-only', for: fieldId(path) }, `Group by column ${i + 1}`),
            bind(input(path, { value: m.group_by[i], list: 'columns-list', placeholder: 'column' }), path, (v) => { m.group_by[i] = v; }),
            errorSlot(path)),
          removeButton('group_by', i, `group-by column ${i + 1}`));
      },
      values: (i) => {
        const v = m.values[i];
        const path = `values[${i}]`;
        const agg = h('select', {
          id: fieldId(`${path}.agg`), name: `${path}.agg`, dataset: { field: `${path}.agg` }, 'aria-describedby': `err-${fieldId(`${path}.agg`)}`, value: v.agg,
        }, h('option', { value: '' }, 'column as is'), AGGS.map((a) => h('option', { value: a }, a)));
        bind(agg, `${path}.agg`, (x) => { v.agg = x; }, 'change');
        return h('div', { class: 'row cols-values', dataset: { row: path } },
          h('div', { class: 'cell' }, h('label', { class: 'sr-only', for: agg.id }, `Value ${i + 1} aggregate`), agg, errorSlot(`${path}.agg`)),
          h('div', { class: 'cell' },
            h('label', { class: 'sr-only', for: fieldId(`${path}.column`) }, `Value ${i + 1} column`),
            bind(input(`${path}.column`, { value: v.column, list: 'columns-list', placeholder: 'column' }), `${path}.column`, (x) => { v.column = x; }),
            errorSlot(`${path}.column`)),
          h('div', { class: 'cell' },
            h('label', { class: 'sr-only', for: fieldId(`${path}.as`) }, `Value ${i + 1} output name`),
            bind(input(`${path}.as`, { value: v.as, placeholder: v.agg ? 'output name (required)' : 'output name (optional)' }), `${path}.as`, (x) => { v.as = x; }),
            errorSlot(`${path}.as`)),
          removeButton('values', i, `value ${i + 1}`),
          h('div', { class: 'row-error' }, errorSlot(path)));
      },
      order_by: (i) => {
        const o = m.order_by[i];
        const path = `order_by[${i}]`;
        const dir = h('select', { id: fieldId(`${path}.dir`), name: `${path}.dir`, dataset: { field: `${path}.dir` }, value: o.dir },
          h('option', { value: 'desc' }, 'descending'), h('option', { value: 'asc' }, 'ascending'));
        bind(dir, `${path}.dir`, (x) => { o.dir = x; }, 'change');
        return h('div', { class: 'row cols-order', dataset: { row: path } },
          h('div', { class: 'cell' },
            h('label', { class: 'sr-only', for: fieldId(`${path}.field`) }, `Order ${i + 1} field`),
            bind(input(`${path}.field`, { value: o.field, list: 'outputs-list', placeholder: 'output field' }), `${path}.field`, (x) => { o.field = x; }),
            errorSlot(`${path}.field`)),
          h('div', { class: 'cell' }, h('label', { class: 'sr-only', for: dir.id }, `Order ${i + 1} direction`), dir),
          removeButton('order_by', i, `order ${i + 1}`),
          h('div', { class: 'row-error' }, errorSlot(path)));
      },
      filter: (i) => {
        const f = m.filter[i];
        const path = `filter[${i}]`;
        const value = input(`${path}.value`, { value: f.value, placeholder: f.op === 'in' ? 'a, b, c' : 'value', disabled: f.op === 'is_null' || f.op === 'not_null' });
        const op = h('select', { id: fieldId(`${path}.op`), name: `${path}.op`, dataset: { field: `${path}.op` }, value: f.op },
          OPS.map((o) => h('option', { value: o }, o.replace('_', ' '))));
        bind(op, `${path}.op`, (x) => {
          f.op = x;
          value.disabled = x === 'is_null' || x === 'not_null';
          value.placeholder = x === 'in' ? 'a, b, c' : 'value';
        }, 'change');
        return h('div', { class: 'row cols-filter', dataset: { row: path } },
          h('div', { class: 'cell' },
            h('label', { class: 'sr-only', for: fieldId(`${path}.column`) }, `Filter ${i + 1} column`),
            bind(input(`${path}.column`, { value: f.column, list: 'columns-list', placeholder: 'column' }), `${path}.column`, (x) => { f.column = x; }),
            errorSlot(`${path}.column`)),
          h('div', { class: 'cell' }, h('label', { class: 'sr-only', for: op.id }, `Filter ${i + 1} operator`), op, errorSlot(`${path}.op`)),
          h('div', { class: 'cell' },
            h('label', { class: 'sr-only', for: value.id }, `Filter ${i + 1} value`),
            bind(value, `${path}.value`, (x) => { f.value = x; }),
            errorSlot(`${path}.value`)),
          removeButton('filter', i, `filter ${i + 1}`),
          h('div', { class: 'row-error' }, errorSlot(path)));
      },
    };
    const blank = {
      key: () => '',
      group_by: () => '',
      values: () => ({ agg: '', column: '', as: '' }),
      order_by: () => ({ field: '', dir: 'desc' }),
      filter: () => ({ column: '', op: '=', value: '' }),
    };
    const heads = {
      values: h('div', { class: 'row-head cols-values row', 'aria-hidden': 'true' }, h('span', {}, 'Aggregate'), h('span', {}, 'Column'), h('span', {}, 'Output name'), h('span', {})),
      order_by: h('div', { class: 'row-head cols-order row', 'aria-hidden': 'true' }, h('span', {}, 'Field'), h('span', {}, 'Direction'), h('span', {})),
      filter: h('div', { class: 'row-head cols-filter row', 'aria-hidden': 'true' }, h('span', {}, 'Column'), h('span', {}, 'Operator'), h('span', {}, 'Value'), h('span', {})),
    };

    function drawList(list) {
      const box = containers[list];
      fill(box,
        m[list].length && heads[list] ? heads[list] : null,
        m[list].map((_, i) => rowRenderers[list](i)));
      paintProblems();
    }

    function listSection(list, legend, help, addLabel) {
      containers[list] = h('div', { class: 'rows', id: `${list}-rows` });
      const add = h('button', {
        type: 'button', class: 'btn btn-small add-row', id: `add-${list}`,
        onclick: () => {
          m[list].push(blank[list]());
          drawList(list);
          const rows = $$('[data-row]', containers[list]);
          const first = rows.length ? $('input, select', rows[rows.length - 1]) : null;
          if (first) first.focus();
        },
      }, `+ ${addLabel}`);
      const section = h('fieldset', { id: `fs-${list}` }, h('legend', {}, legend), help ? h('p', { class: 'help' }, help) : null,
        errorSlot(list), containers[list], add);
      drawList(list);
      return section;
    }

    // Basics
    const nameInput = bind(input('name', { value: m.name, readOnly: editing, placeholder: 'top_products_by_network', required: true }), 'name', (v) => { m.name = v; });
    const catalogSelect = h('select', { id: fieldId('catalog'), name: 'catalog', dataset: { field: 'catalog' }, value: m.catalog },
      catalogs.map((c) => h('option', { value: c.name }, `${c.name} — ${c.uri}`)));
    catalogSelect.value = m.catalog;
    bind(catalogSelect, 'catalog', (v) => {
      m.catalog = v;
      loadTables();
      loadColumns();
    }, 'change');
    const tableInput = bind(input('table', { value: m.table, list: 'tables-list', placeholder: 'db.table', required: true }), 'table', (v) => {
      m.table = v;
      loadColumns();
    });
    const edgeInput = bind(input('edge_group', { value: m.edge_group, placeholder: 'default' }), 'edge_group', (v) => { m.edge_group = v; });
    const limitInput = bind(input('limit', { value: m.limit, inputmode: 'numeric', placeholder: 'all rows' }), 'limit', (v) => { m.limit = v; });
    const shapeRadios = ['list', 'object'].map((s) => {
      const r = h('input', { type: 'radio', name: 'shape', value: s, id: `f-shape-${s}`, checked: m.shape === s, dataset: { field: 'shape' } });
      bind(r, 'shape', () => { m.shape = s; }, 'change');
      return h('label', { class: 'radio-card', for: r.id }, r,
        h('div', {}, h('strong', {}, s === 'list' ? 'List' : 'Object'),
          h('span', {}, s === 'list' ? 'An array of rows per key (top N, recent activity).' : 'One object per key (aggregates grouped by the key, or limit 1).')));
    });
    const protectedBox = h('input', { type: 'checkbox', id: fieldId('protected'), name: 'protected', checked: m.protected, dataset: { field: 'protected' } });
    bind(protectedBox, 'protected', (v) => { m.protected = v; }, 'change');

    const field = (path, label, control, help) => h('div', { class: 'field' },
      h('label', { for: fieldId(path) }, label), control, help ? h('p', { class: 'help' }, help) : null, errorSlot(path));

    const saveButton = h('button', { type: 'submit', class: 'btn btn-primary', id: 'save-api' }, editing ? 'Save revision' : 'Create API');
    append(form,
      formErrors,
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', {}, 'What to serve')),
        field('name', 'Name', nameInput, editing ? 'APIs are not renamed.' : 'Letters, digits, _ and -: it is the path in /v1/{name}/{key}.'),
        h('div', { class: 'grid-2' },
          field('catalog', 'Catalog', catalogSelect),
          field('table', 'Table', tableInput, 'db.table, as the catalog names it.')),
        listSection('key', 'Key columns', 'A lookup is GET /v1/{name}/{key…}: one path segment per key column. No key column: one global entry.', 'Add key column'),
        listSection('values', 'Values', 'Columns to return, or aggregates over them (each aggregate needs an output name).', 'Add value')),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', {}, 'Grouping, order and shape')),
        listSection('group_by', 'Group by', 'With aggregates: the groups within each key (the key columns are always grouped).', 'Add group-by column'),
        listSection('order_by', 'Order by', 'Ties are broken by the remaining fields in order, so every engine gives the same answer.', 'Add order'),
        field('limit', 'Limit per key', limitInput, 'Rows kept per key after ordering (e.g. 10 for a top 10).'),
        h('fieldset', { id: 'fs-shape' }, h('legend', {}, 'Shape'), h('div', { class: 'radio-cards' }, shapeRadios), errorSlot('shape'))),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', {}, 'Filter and access')),
        listSection('filter', 'Filters', 'Rows to keep. Values are typed: 5, true, or text; for `in`: a, b, c. Filters on partition keys skip whole partitions.', 'Add filter'),
        field('edge_group', 'Edge group', edgeInput, 'The group of edge caches to publish to (default: default).'),
        h('div', { class: 'field' }, h('label', { class: 'checkbox', for: protectedBox.id }, protectedBox, 'Protected: lookups need one of the API’s read tokens'), errorSlot('protected')),
        m.limits ? h('p', { class: 'help' }, `Guard limit overrides kept from the spec: ${JSON.stringify(m.limits)}`) : null),
      h('div', { class: 'inline-form' }, saveButton,
        h('a', { class: 'btn btn-quiet', href: editing ? `#/apis/${enc(name)}` : '#/apis' }, 'Cancel')),
      columnsList, outputsList, tablesList);

    const aside = h('aside', { class: 'sticky stack', 'aria-label': 'Validation and spec' },
      h('section', { class: 'card', 'aria-labelledby': 'check-h' },
        h('div', { class: 'card-head' }, h('h2', { id: 'check-h' }, 'Check')),
        status, summary),
      h('section', { class: 'card', 'aria-labelledby': 'spec-h' },
        h('div', { class: 'card-head' }, h('h2', { id: 'spec-h' }, 'Spec'), h('span', { class: 'hint' }, 'what will be saved')),
        viewer.el),
      h('section', { class: 'card', 'aria-labelledby': 'columns-h' },
        h('div', { class: 'card-head' }, h('h2', { id: 'columns-h' }, 'Columns')),
        columnsBox));

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      showAll = true;
      setBusy(saveButton, true);
      try {
        const result = await validateNow();
        if (!result) return;
        if (problems.length) {
          paintProblems();
          const first = $('[aria-invalid="true"]', form);
          if (first) first.focus();
          toast(`Fix ${problems.length} problem${problems.length === 1 ? '' : 's'} first`, 'bad');
          return;
        }
        const body = { spec: result.spec, catalog: m.catalog || undefined };
        if (m.edge_group.trim()) body.edge_group = m.edge_group.trim();
        const saved = editing ? await api('PUT', `/api/apis/${enc(name)}`, body) : await post('/api/apis', body);
        toast(`Saved ${saved.name}, revision ${saved.revision}`);
        go(`#/apis/${enc(saved.name)}`);
      } catch (e) {
        if (isAbort(e) || ctx.signal.aborted) return;
        if (e.fields && e.fields.length) {
          problems = e.fields;
          paintProblems();
        } else {
          fill(formErrors, errorNotice(e, 'The API was not saved'));
        }
      } finally {
        setBusy(saveButton, false);
      }
    });

    function outputsNow() {
      const names = [];
      for (const v of m.values) {
        const n = (v.as || (v.agg ? '' : v.column)).trim();
        if (n && !names.includes(n)) names.push(n);
      }
      fill(outputsList, ...names.map((n) => h('option', { value: n })));
    }

    function changed() {
      outputsNow();
      const built = specFromModel(m);
      viewer.set(built.spec);
      stale = true;
      clearTimeout(validateTimer);
      validateTimer = setTimeout(() => {
        validateNow();
      }, 350);
    }

    async function validateNow() {
      clearTimeout(validateTimer);
      const built = specFromModel(m);
      maps = built.maps;
      viewer.set(built.spec);
      const seq = ++validateSeq;
      if (validating) validating.abort();
      validating = new AbortController();
      fill(status, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Checking…');
      const body = { spec: built.spec, catalog: m.catalog || undefined };
      if (m.edge_group.trim()) body.edge_group = m.edge_group.trim();
      try {
        const result = await post('/api/apis/_validate', body, { signal: validating.signal });
        if (seq !== validateSeq) return null;
        const local = built.local.slice();
        if (!editing && built.spec.name && taken.has(built.spec.name)) {
          local.push({ field: 'name', message: `an API named ${built.spec.name} already exists: pick another name, or edit that one` });
        }
        problems = local.concat(result.problems.map((p) => ({ field: toFormPath(p.field, maps), message: p.message })));
        stale = false;
        paintProblems();
        return built;
      } catch (e) {
        if (isAbort(e) || seq !== validateSeq) return null;
        fill(status, pill('not checked', 'warn'), ` ${e.message}`);
        return null;
      }
    }

    function locate(path) {
      let p = path;
      for (;;) {
        const slot = form.querySelector(`[data-error-for="${CSS.escape(p)}"]`);
        if (slot) return slot;
        const up = p.match(/^(.*)(\.\w+|\[\d+\])$/);
        if (!up) return null;
        p = up[1];
      }
    }

    function paintProblems() {
      for (const slot of $$('[data-error-for]', form)) slot.textContent = '';
      for (const el of $$('[aria-invalid]', form)) el.removeAttribute('aria-invalid');
      const unplaced = [];
      const shown = new Set();
      for (const p of problems) {
        const slot = locate(p.field);
        const isTouched = showAll || touched.has(p.field) || [...touched].some((t) => p.field.startsWith(`${t}.`) || t.startsWith(`${p.field}.`) || t.startsWith(`${p.field}[`));
        if (!slot) {
          if (isTouched) unplaced.push(p);
          continue;
        }
        if (!isTouched) continue;
        const key = `${slot.dataset.errorFor}\n${p.message}`;
        if (shown.has(key)) continue;
        shown.add(key);
        slot.textContent = slot.textContent ? `${slot.textContent} · ${p.message}` : p.message;
        const control = document.getElementById(fieldId(slot.dataset.errorFor));
        if (control) control.setAttribute('aria-invalid', 'true');
      }
      fill(formErrors, unplaced.length ? h('div', { class: 'notice bad' },
        h('div', { class: 'title' }, 'The spec has problems'),
        h('ul', {}, unplaced.map((p) => h('li', {}, `${humanField(p.field)}: ${p.message}`)))) : '');
      fill(status, problems.length
        ? [pill(`${problems.length} problem${problems.length === 1 ? '' : 's'}`, 'bad', { dataset: { test: 'validation-problems' } }), ' to fix before saving']
        : [pill('valid', 'ok', { dataset: { test: 'validation-valid' } }), ' ready to save']);
      fill(summary, ...problems.map((p) => h('li', {},
        h('a', {
          href: `#${fieldId(p.field)}`,
          onclick: (e) => {
            e.preventDefault();
            const el = document.getElementById(fieldId(p.field)) || (locate(p.field) && locate(p.field).parentElement.querySelector('input, select'));
            if (el) {
              el.focus();
              el.scrollIntoView({ block: 'center' });
            }
          },
        }, humanField(p.field)), `: ${p.message}`)));
    }

    async function loadTables() {
      fill(tablesList);
      knownTables.clear();
      if (!m.catalog) return;
      await attempt(ctx, null, async () => {
        const dbs = await cachedGet(`/api/catalogs/${enc(m.catalog)}/databases`);
        const lists = await Promise.all(dbs.slice(0, 50).map((db) => cachedGet(`/api/catalogs/${enc(m.catalog)}/databases/${enc(db)}/tables`)));
        for (const t of lists.flat()) {
          knownTables.add(t.table);
          tablesList.append(h('option', { value: t.table }));
        }
        loadColumns();
      });
    }

    let columnsFor = null;
    async function loadColumns() {
      const table = m.table.trim();
      const key = `${m.catalog}/${table}`;
      if (key === columnsFor) return;
      if (!knownTables.has(table)) {
        columns = [];
        columnsFor = null;
        fill(columnsList);
        fill(columnsBox, h('p', { class: 'muted small' }, table ? `Pick a table of ${m.catalog} to see its columns.` : 'Pick a table to see its columns.'));
        return;
      }
      columnsFor = key;
      fill(columnsBox, loading('Reading the schema…'));
      await attempt(ctx, columnsBox, async () => {
        const t = await get(`/api/catalogs/${enc(m.catalog)}/tables/${enc(table)}?preview=0`, { signal: ctx.signal });
        if (columnsFor !== key) return;
        columns = t.columns;
        fill(columnsList, ...columns.filter((c) => c.scalar).map((c) => h('option', { value: c.name, label: c.type })));
        fill(columnsBox,
          h('p', { class: 'small muted' }, `${t.name}: ${fmtInt(t.stats.rows)} rows, ${fmtBytes(t.stats.bytes)}`),
          h('table', { class: 'data compact', id: 'columns-table' },
            h('tbody', {}, columns.map((c) => h('tr', {},
              h('td', { class: 'mono' }, c.name),
              h('td', { class: 'mono muted' }, c.type, c.partition_key ? ' · partition' : '', c.scalar ? '' : ' · not servable'))))));
      });
    }

    page(ctx, editing ? `Edit ${name}` : 'New API', 'apis',
      head({
        crumbs: [h('a', { href: '#/apis' }, 'APIs'), ' / ', editing ? h('a', { href: `#/apis/${enc(name)}` }, name) : 'new'],
        title: editing ? `Edit ${name}` : 'New API',
        subtitle: editing ? `Revision ${existing.revision}. Saving makes a new revision; publish it to serve it.` : 'Define a key → value lookup over a table. Problems show next to their fields as you type.',
      }),
      h('div', { class: 'form-layout' }, form, aside));

    outputsNow();
    viewer.set(specFromModel(m).spec);
    loadTables();
    if (editing) validateNow();
    else {
      fill(status, pill('not checked yet', ''), ' fill in the form');
      if (m.table) validateNow();
    }
    (editing ? tableInput : nameInput).focus();
  }

  // ── one API: overview, plan, publish, try it, versions, tokens ───────────────────────────

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
  const STEPS = ['plan', 'guards', 'engine', 'push', 'verify', 'snapshot', 'commit', 'gc'];
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

  function renderPlan(box, plan) {
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
        `${fmtInt(plan.partitions_selected)} of ${fmtInt(plan.partitions_total)} partitions`),
      guardsTable(plan.guards, true, 'guards-table'),
      plan.explain ? h('details', {}, h('summary', {}, 'Engine plan'), h('pre', { class: 'code' }, plan.explain)) : null);
  }

  /** Live progress of a publish or rollback job, fed with its events. */
  function progressView(kind, options) {
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
      if (e.state === 'succeeded') {
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

  async function viewApi(ctx, name) {
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
        h('dt', {}, 'Revision'), h('dd', {}, `${a.revision} by ${a.owner}, `, when(a.updated_at))));

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
      h('div', { class: 'card-head' }, h('h2', { id: 'publish-h' }, 'Publish'), publishRoute, publishButton),
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
                  : keptEverywhere(x.version)
                  ? h('button', {
                    type: 'button', class: 'btn btn-small', dataset: { test: `rollback-${x.version}` }, onclick: () => rollback(x.version),
                    title: `${v.serving && x.version > v.serving ? 'Roll forward' : 'Roll back'} to version ${x.version}`,
                  }, `Serve v${x.version}`)
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
      tokenForm, secretBox, tokensBox);

    async function refreshTokens() {
      await attempt(ctx, tokensBox, async () => {
        const list = await get(`/api/apis/${enc(name)}/tokens`, { signal: ctx.signal });
        fill(tokensBox, tokenTable(ctx, list, () => refreshTokens(), secretBox));
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
      const ok = await confirmDialog(`Delete ${name}?`, 'Its revisions and tokens go; queued jobs are cancelled. What the edges serve stays until their operators drop it.', 'Delete API', true);
      if (!ok) return;
      await attempt(ctx, null, async () => {
        await api('DELETE', `/api/apis/${enc(name)}`, undefined, { signal: ctx.signal });
        toast(`${name} deleted`);
        go('#/apis');
      });
    });

    page(ctx, name, 'apis',
      head({
        crumbs: [h('a', { href: '#/apis' }, 'APIs'), ' / '],
        title: name,
        id: 'page-title',
        subtitle: describeSpec(s),
        actions: [h('a', { class: 'btn', href: `#/apis/${enc(name)}/edit`, id: 'edit-api' }, 'Edit'), remove],
      }),
      h('div', { class: 'grid-2' },
        h('div', { class: 'stack' }, overview, planCard, publishCard),
        h('div', { class: 'stack' }, tryCard, versionsCard, tokensCard, specCard)));

    refreshVersions();
    refreshTokens();
    if (a.last_job && a.last_job.kind === 'publish') follow(a.last_job);
  }

  function secret(token, message) {
    return h('div', { class: 'stack' },
      h('p', { class: 'small' }, h('strong', {}, message)),
      h('div', { class: 'secret' }, h('code', { id: 'new-token-secret' }, token),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => copyText(token, 'Token') }, 'Copy')));
  }

  function pushResults(edges) {
    if (!edges || !edges.length) return null;
    const failed = edges.filter((e) => !e.ok);
    if (!failed.length) return h('p', { class: 'small muted' }, `Pushed to ${edges.length} edge${edges.length === 1 ? '' : 's'}.`);
    return h('div', { class: 'notice warn' }, h('div', { class: 'title' }, 'Some edges did not get the new token set (the next publish carries it):'),
      h('ul', {}, failed.map((e) => h('li', {}, h('code', {}, e.edge), `: ${e.error}`))));
  }

  function tokenTable(ctx, list, refresh, messages) {
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
          h('td', {}, t.revoked_at ? null : revoke));
      }))));
  }

  // ── jobs ─────────────────────────────────────────────────────────────────────────────────

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

  async function viewJobs(ctx, query) {
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

  async function viewJob(ctx, id) {
    const j = await get(`/api/jobs/${enc(id)}`, { signal: ctx.signal });
    const events = h('ol', { class: 'small events', id: 'job-events' });
    const progress = progressView(j.kind === 'publish' ? 'publish' : 'rollback', { onJobPage: true });
    const cancel = h('button', { type: 'button', class: 'btn btn-danger', id: 'cancel-job', hidden: j.state !== 'queued' && j.state !== 'running' }, 'Cancel job');
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

  // ── analysts' tokens ─────────────────────────────────────────────────────────────────────

  async function viewTokens(ctx) {
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

  // ── start ────────────────────────────────────────────────────────────────────────────────

  window.addEventListener('hashchange', () => route());
  $('#sign-out').addEventListener('click', () => signOut('Signed out.'));
  route.navigated = false;
  route();
})();
