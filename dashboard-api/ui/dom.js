// DOM helpers: h() builds elements (textContent only, never HTML strings, so table data and
// error messages can never inject markup), append/fill children, $/$$ queries.

const BOOL_PROPS = new Set(['checked', 'disabled', 'hidden', 'selected', 'required', 'readOnly', 'multiple', 'open']);

/** Creates an element: h('a', {href, class, text, onclick, dataset}, ...children). */
export function h(tag, props, ...children) {
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

export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces an element's children (arrays flattened, null and false skipped). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
export const enc = encodeURIComponent;

export function setBusy(button, busy) {
  button.disabled = busy;
  button.classList.toggle('busy', busy);
  button.setAttribute('aria-busy', busy ? 'true' : 'false');
}
