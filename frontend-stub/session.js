// The token a page works with, and calls to the hub's JSON API with it.
// A token lives in sessionStorage: one browser tab, gone when it closes.

/** takeToken moves a token from the address (#token=…) into storage under
 * key, so that it is neither bookmarked nor left on screen, and returns the
 * stored token ("" when there is none). */
export function takeToken(key) {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get('token');
  if (fromHash) {
    store(key, fromHash.trim());
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  return load(key);
}

export function load(key) {
  try {
    return sessionStorage.getItem(key) || '';
  } catch {
    return '';
  }
}

export function store(key, token) {
  try {
    sessionStorage.setItem(key, token);
  } catch {
    // storage off: the page works until it is reloaded
  }
}

export function forget(key) {
  try {
    sessionStorage.removeItem(key);
  } catch {
    // nothing stored
  }
}

/** claims reads a token's payload for display only; the hub checks it. */
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    const c = JSON.parse(new TextDecoder().decode(bytes));
    return c && typeof c === 'object' ? c : {};
  } catch {
    return {};
  }
}

/** expired reports whether a token's exp claim has passed. */
export function expired(token) {
  const exp = claims(token).exp;
  return typeof exp === 'number' && exp * 1000 <= Date.now();
}

/** ApiError is a refusal of the hub: status, the stable code and the
 * server's message. status 0 means the hub could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const MAX_ERROR_TEXT = 500;

/** api sends one request and returns the decoded JSON answer, or throws an
 * ApiError with the server's own message. */
export async function api(method, path, { token, body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin',
      signal,
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', String(err?.message || err));
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const e = data?.error;
    const message = typeof e?.message === 'string' ? e.message : text.slice(0, MAX_ERROR_TEXT) || resp.statusText;
    throw new ApiError(resp.status, typeof e?.code === 'string' ? e.code : 'http_' + resp.status, message, e?.details);
  }
  return data;
}

/** requestID returns a fresh id for an action, unique enough that a retry
 * with a new click is never mistaken for the old one. */
export function requestID(prefix = 'console') {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return `${prefix}-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}
