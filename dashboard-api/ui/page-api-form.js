// Pages #/apis/new and #/apis/{name}/edit: the API editor with live validation.

import { $, $$, append, enc, fill, h, setBusy } from './dom.js';
import { fmtBytes, fmtInt, pill } from './format.js';
import { go } from './nav.js';
import { api, cachedGet, get, isAbort, post, state } from './api.js';
import { attempt, errorNotice, head, loading, page, toast } from './chrome.js';
import { specViewer } from './spec.js';
import {
  AGGS,
  fieldId,
  humanField,
  modelFromSpec,
  OPS,
  specFromModel,
  toFormPath,
} from './api-form-model.js';

export async function viewApiForm(ctx, name, query) {
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
  // Freshness: which partitions, when the API publishes itself, how old it may grow.
  const latestInput = bind(input('latest_partitions', { value: m.latest_partitions, inputmode: 'numeric', placeholder: 'all partitions' }), 'latest_partitions', (v) => { m.latest_partitions = v; });
  const checkbox = (key, label) => {
    const path = `refresh.${key}`;
    const box = h('input', { type: 'checkbox', id: fieldId(path), name: path, checked: m.refresh[key], dataset: { field: path } });
    bind(box, path, (v) => { m.refresh[key] = v; }, 'change');
    return h('div', { class: 'field' }, h('label', { class: 'checkbox', for: box.id }, box, label), errorSlot(path));
  };
  const refreshInput = (key, props) => bind(input(`refresh.${key}`, Object.assign({ value: m.refresh[key] }, props)), `refresh.${key}`, (v) => { m.refresh[key] = v; });
  const settleInput = refreshInput('settle_s', { inputmode: 'numeric', placeholder: 'server default' });
  const scheduleInput = refreshInput('schedule', { placeholder: 'e.g. 30 4 * * * (04:30 daily)' });
  const timezoneInput = refreshInput('timezone', { placeholder: 'UTC' });
  const objectiveInput = refreshInput('freshness_objective_h', { inputmode: 'decimal', placeholder: 'none' });
  // Who else may change the API: named by its owner (or an administrator) only.
  const mayName = !editing || state.me.admin || existing.owner === state.me.name;
  const editorsInput = h('input', {
    type: 'text', id: fieldId('editors'), name: 'editors', autocomplete: 'off', placeholder: 'analyst names, comma-separated',
    value: editing ? existing.editors.join(', ') : '', readOnly: !mayName, dataset: { field: 'editors' },
  });
  const editorsOf = () => editorsInput.value.split(',').map((e) => e.trim()).filter(Boolean);

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
      field('editors', 'Editors', editorsInput, mayName
        ? 'Analysts who may change, publish and delete it besides you (its owner) and administrators.'
        : `Named by its owner, ${existing.owner}, or an administrator.`),
      m.limits ? h('p', { class: 'help' }, `Guard limit overrides kept from the spec: ${JSON.stringify(m.limits)}`) : null),
    h('section', { class: 'card', id: 'refresh-card' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Keeping it fresh')),
      field('latest_partitions', 'Latest partitions', latestInput, 'Read only the newest N partitions (by the first partition column, e.g. the last dt). Empty: every partition.'),
      checkbox('on_table_change', 'Publish when the table changes (a new partition, new statistics)'),
      h('div', { class: 'grid-2' },
        field('refresh.settle_s', 'Settle time (s)', settleInput, 'Quiet time after the last change before publishing.'),
        checkbox('require_success_marker', 'Only once the newest partition has a _SUCCESS file')),
      h('div', { class: 'grid-2' },
        field('refresh.schedule', 'Schedule (cron)', scheduleInput, 'minute hour day month weekday; a publish that finds the table unchanged makes no version.'),
        field('refresh.timezone', 'Time zone', timezoneInput, 'IANA name, e.g. Europe/Prague.')),
      field('refresh.freshness_objective_h', 'Freshness objective (hours)', objectiveInput, 'Older data than this marks the API stale on its page, in the list and in metrics.'),
      m.gates ? h('p', { class: 'help' }, `Quality gates kept from the spec: ${JSON.stringify(m.gates)}`) : null,
      m.canary ? h('p', { class: 'help' }, `Canary kept from the spec: ${JSON.stringify(m.canary)}`) : null),
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
      if (mayName) body.editors = editorsOf();
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
