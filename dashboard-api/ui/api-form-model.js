// The API form's model: spec ⇄ form model, literals, field ids and names, and mapping
// server problem paths (spec indices) to form rows.

export const AGGS = ['count', 'sum', 'min', 'max', 'avg', 'count_distinct'];
export const OPS = ['=', '!=', '<', '<=', '>', '>=', 'in', 'is_null', 'not_null'];
export const fieldId = (path) => `f-${path.replace(/[[\].]+/g, '-').replace(/-$/, '')}`;

export function humanField(path) {
  const m = path.match(/^(\w+)(?:\[(\d+)\])?(?:\.(\w+))?$/);
  if (!m) return path;
  const names = { key: 'Key column', values: 'Value', group_by: 'Group by', order_by: 'Order', filter: 'Filter', name: 'Name', table: 'Table', limit: 'Limit', shape: 'Shape', catalog: 'Catalog', edge_group: 'Edge group', protected: 'Access', body: 'Spec', latest_partitions: 'Latest partitions', refresh: 'Refresh', gates: 'Quality gates' };
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

export function modelFromSpec(spec, view) {
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
    gates: spec.gates || null,
    canary: spec.canary || null,
    latest_partitions: spec.latest_partitions ? String(spec.latest_partitions) : '',
    refresh: refreshModel(spec.refresh || {}),
  };
}

function refreshModel(r) {
  const text = (v) => (v === undefined || v === null ? '' : String(v));
  return {
    on_table_change: Boolean(r.on_table_change),
    settle_s: text(r.settle_s),
    require_success_marker: Boolean(r.require_success_marker),
    schedule: text(r.schedule),
    timezone: text(r.timezone),
    freshness_objective_h: text(r.freshness_objective_h),
  };
}

/** The `refresh` section from the form (absent when empty), with local problems. */
function refreshFromModel(r, local) {
  const out = {};
  const number = (key, what, whole) => {
    const t = r[key].trim();
    if (!t) return;
    const ok = whole ? /^\d+$/.test(t) : /^\d+(\.\d+)?$/.test(t);
    if (ok) out[key] = Number(t);
    else local.push({ field: `refresh.${key}`, message: what });
  };
  if (r.on_table_change) out.on_table_change = true;
  number('settle_s', 'a whole number of seconds', true);
  if (r.require_success_marker) out.require_success_marker = true;
  if (r.schedule.trim()) out.schedule = r.schedule.trim();
  if (r.timezone.trim()) out.timezone = r.timezone.trim();
  number('freshness_objective_h', 'a number of hours', false);
  return Object.keys(out).length ? out : null;
}

/** The spec from the form, which rows of each list made it in, and problems found locally. */
export function specFromModel(m) {
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
  const latest = m.latest_partitions.trim();
  if (latest) {
    if (/^\d+$/.test(latest)) spec.latest_partitions = Number(latest);
    else local.push({ field: 'latest_partitions', message: 'a whole number of partitions' });
  }
  const refresh = refreshFromModel(m.refresh, local);
  if (refresh) spec.refresh = refresh;
  if (m.gates && Object.keys(m.gates).length) spec.gates = m.gates;
  if (m.canary) spec.canary = m.canary;
  return { spec, maps, local };
}

/** A server field path (spec indices) as a form path (row indices). */
export function toFormPath(field, maps) {
  const m = field.match(/^(\w+)\[(\d+)\](.*)$/);
  if (!m || !maps[m[1]]) return field;
  const row = maps[m[1]][Number(m[2])];
  return row === undefined ? field : `${m[1]}[${row}]${m[3]}`;
}
