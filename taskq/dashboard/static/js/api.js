// The HTTP API, with the key the operator entered. The key lives in sessionStorage (this tab,
// until it closes) and travels only in the X-API-Key header: never in a URL, so it reaches no
// access log, history or Referer. A header a page of another site cannot set without a CORS
// preflight (which the API does not grant) is also what makes the POSTs CSRF-proof.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? '';

export const BASE = new URL(meta('taskq-api') || '../', document.baseURI);
export const AUTH_DISABLED = meta('taskq-auth') === 'off';
const STORE = `taskq-key:${BASE.pathname}`;

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

export function getKey() {
  return sessionStorage.getItem(STORE);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(STORE, key);
  else sessionStorage.removeItem(STORE);
}

export function url(path, params = {}) {
  const u = new URL(path.replace(/^\//, ''), BASE);
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') u.searchParams.set(k, v);
  }
  return u;
}

export function headers(extra = {}) {
  const out = { Accept: 'application/json', ...extra };
  const key = getKey();
  if (key) out['X-API-Key'] = key;
  return out;
}

async function call(method, path, { params, body, signal, key } = {}) {
  const init = { method, signal, credentials: 'omit', cache: 'no-store', headers: headers() };
  if (key !== undefined) init.headers['X-API-Key'] = key;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url(path, params), init);
  let data = null;
  const text = await r.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!r.ok) {
    const detail = data && data.detail !== undefined ? data.detail : (data || r.statusText);
    const err = new ApiError(r.status, detail);
    if (r.status === 401) window.dispatchEvent(new CustomEvent('taskq:unauthorized'));
    throw err;
  }
  return { data, headers: r.headers };
}

export async function get(path, params, signal) {
  return (await call('GET', path, { params, signal })).data;
}

export async function getWithHeaders(path, params, signal) {
  return call('GET', path, { params, signal });
}

export async function post(path, body) {
  return (await call('POST', path, { body })).data;
}

export async function whoami(key) {
  return (await call('GET', 'whoami', { key })).data;
}

export function message(err) {
  if (err instanceof ApiError) {
    if (err.status === 403) return 'This API key is read-only: an admin key is needed.';
    const d = err.detail;
    if (Array.isArray(d)) return d.map((e) => e.msg || JSON.stringify(e)).join('; ');
    return `${err.status}: ${typeof d === 'string' ? d : JSON.stringify(d)}`;
  }
  return String(err && err.message ? err.message : err);
}
