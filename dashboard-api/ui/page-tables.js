// Page #/tables/{catalog}/{db}/{table}: the catalog browser and a table's schema,
// statistics, partitions and preview.

import { $, enc, fill, h } from './dom.js';
import { cell, fmtBytes, fmtInt, pill } from './format.js';
import { go } from './nav.js';
import { cachedGet, get, state } from './api.js';
import { attempt, head, loading, page } from './chrome.js';

export async function viewTables(ctx, catalogName, dbName, tableName) {
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
