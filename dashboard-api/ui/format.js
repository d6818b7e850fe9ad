// Formatting: numbers, bytes, durations, relative times, status pills and table cells.

import { h } from './dom.js';

const numberFormat = new Intl.NumberFormat('en-US');
export const fmtInt = (n) => (n === null || n === undefined ? '—' : numberFormat.format(n));

export function fmtBytes(n) {
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

export function fmtMs(ms) {
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

/** An age in seconds, coarsely: 45 s, 12 min, 5.2 h, 26 d. */
export function fmtAge(s) {
  if (s === null || s === undefined) return '—';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** Freshness as a cell: the age, with a stale badge past the API's objective. */
export function freshnessBadge(f) {
  if (!f || f.age_s === undefined) return f && f.stale ? pill('stale: nothing served', 'bad') : h('span', { class: 'muted' }, '—');
  const title = [f.data_time ? `data time ${f.data_time}` : 'data time unknown: age since publishing', f.objective_h ? `objective ${f.objective_h} h` : 'no objective'].join(', ');
  return h('span', { title }, fmtAge(f.age_s), f.stale ? [' ', pill('stale', 'bad', { dataset: { test: 'stale' } })] : null);
}

export function when(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const t = Date.parse(iso);
  return h('time', { datetime: iso, title: Number.isNaN(t) ? iso : new Date(t).toLocaleString() }, relTime(iso));
}

export function durationBetween(a, b) {
  const s = Date.parse(a);
  const e = Date.parse(b);
  return Number.isNaN(s) || Number.isNaN(e) ? null : e - s;
}

export const HUGE = 2 ** 63;

export function pill(text, kind, extra) {
  return h('span', Object.assign({ class: `pill ${kind || ''}` }, extra || {}), text);
}

export function cell(value) {
  if (value === null || value === undefined) return h('span', { class: 'null' }, 'null');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export const pretty = (v) => JSON.stringify(v, null, 2);
