// Session and REST client: the token in sessionStorage, shared mutable state (`state`),
// fetch wrapper for /api with ApiError, cached GETs, and following a job's event stream.

import { enc } from './dom.js';
import { go } from './nav.js';

const TOKEN_KEY = 'tablecast.token';
export const NEXT_KEY = 'tablecast.next';
export const store = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  },
  set token(t) {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};
export const state = { me: null, signOutReason: '', cache: new Map(), expanded: new Set() };

export function signOut(reason) {
  store.token = '';
  state.me = null;
  state.cache.clear();
  state.signOutReason = reason || '';
  go('#/login');
}

// ── REST client ──────────────────────────────────────────────────────────────────────────

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = e.code || `http_${status}`;
    this.fields = e.fields || [];
  }
}

export const isAbort = (e) => e && (e.name === 'AbortError' || e.name === 'Aborted');

export async function api(method, path, body, opts = {}) {
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

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body, opts);

/** GETs once per session (catalog listings), sharing in-flight requests. */
export function cachedGet(path) {
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
export async function followJob(ctx, id, onEvent) {
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
    } catch {
      if (ctx.signal.aborted) return null;
      failures += 1;
    }
    if (ctx.signal.aborted) return null;
    await sleep(ctx, Math.min(300 * 2 ** failures, 5000));
  }
  return null;
}
