// API specs in words (describeSpec) and as TOML, and the JSON/TOML spec viewer.

import { h } from './dom.js';
import { pretty } from './format.js';

export function valueLabel(v) {
  const base = v.agg ? `${v.agg}(${v.column || '*'})` : v.column;
  return v.as && v.as !== v.column ? `${base} as ${v.as}` : base;
}

export function filterLabel(f) {
  if (f.op === 'is_null') return `${f.column} is null`;
  if (f.op === 'not_null') return `${f.column} is not null`;
  return `${f.column} ${f.op} ${JSON.stringify(f.value)}`;
}

export function describeSpec(s) {
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
export function specViewer(id) {
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
