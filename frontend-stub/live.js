// The client of the hub's live websocket (GET /v1/live), shared by the wall
// screen and the console: it subscribes, keeps every item at the highest
// version it has seen, reconnects with backoff, and re-snapshots after every
// reconnect, so that a page never shows a gap or an old version.

const SUBPROTOCOL = 'cityhub.v1';
const TOKEN_PROTOCOL = 'bearer.';
const CLOSE_TOKEN_EXPIRED = 4001;
const CLOSE_TRY_AGAIN = 1013;
const MAX_TOMBSTONES = 20000;
const MAX_BACKOFF_MS = 30000;
// After this many failed attempts in a row the page says "offline" rather
// than "reconnecting": about a minute without the hub.
const OFFLINE_AFTER = 6;

const FRAME_STREAM = { alert: 'alerts', case: 'cases' };

/** backoff returns how long (ms) to wait before the next try after
 * attempt failures in a row: 1 s, 2 s, 4 s … up to 30 s, each between half
 * and all of that at random, so that a room of screens does not come back
 * in the same instant after the hub restarts. soon (a gateway that shed a
 * slow client and asks it back) waits about a quarter of a second.
 * random is Math.random but for tests. */
export function backoff(attempt, soon = false, random = Math.random) {
  const base = soon ? 250 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempt, 5));
  return base / 2 + random() * (base / 2);
}

/** Store keeps the items of one stream by id. An item is replaced only by a
 * higher version; an item that leaves (resolved, closed, out of scope)
 * leaves a tombstone with its version, so that an older delta arriving late
 * cannot bring it back. */
export class Store {
  /** keep(item) says whether an item stays (e.g. the wall keeps only open
   * cases); one that does not is dropped and remembered as gone. */
  constructor(keep = () => true) {
    this.keep = keep;
    this.items = new Map();
    this.gone = new Map();
  }

  /** version is the highest version seen of id; 0 when none. */
  version(id) {
    return this.items.get(id)?.version ?? this.gone.get(id) ?? 0;
  }

  get(id) {
    return this.items.get(id);
  }

  values() {
    return [...this.items.values()];
  }

  /** replace takes a snapshot: it is the truth now. Items the snapshot
   * cannot hold (a console's closed cases, which a snapshot of open ones
   * never lists) survive when survives(item) says so. */
  replace(items, survives = () => false) {
    const kept = new Map();
    for (const [id, it] of this.items) if (survives(it)) kept.set(id, it);
    this.items = kept;
    this.gone.clear();
    for (const it of items) this.apply(it);
  }

  /** apply takes an item if it is newer than what the store has; it
   * returns whether anything changed. */
  apply(it) {
    if (!it || typeof it.id !== 'string' || typeof it.version !== 'number') return false;
    if (it.version <= this.version(it.id)) return false;
    if (this.keep(it)) {
      this.items.set(it.id, it);
      this.gone.delete(it.id);
    } else {
      const had = this.items.delete(it.id);
      this.bury(it.id, it.version);
      return had;
    }
    return true;
  }

  /** remove drops id, which left the subscriber's scope or filter at
   * version; it returns whether the store had it. */
  remove(id, version) {
    if (typeof id !== 'string') return false;
    const v = typeof version === 'number' ? version : this.version(id);
    if (v < this.version(id)) return false;
    const had = this.items.delete(id);
    this.bury(id, v);
    return had;
  }

  bury(id, version) {
    this.gone.delete(id);
    this.gone.set(id, version);
    if (this.gone.size > MAX_TOMBSTONES) this.gone.delete(this.gone.keys().next().value);
  }
}

/** Feed is one live connection, kept up until stop().
 *
 * Options: token, streams (["alerts", "cases"]), filter (the subscribe
 * frame's filter), stores ({alerts: Store, cases: Store}), survives
 * ({cases: item => bool}: what a snapshot does not replace), onChange(stream,
 * change) after the stores changed, onState(status) when the connection's
 * state changes, tokenExpired() → bool to stop retrying with a dead token.
 *
 * status = {state, attempt, retryAt, snapshots}, state one of connecting,
 * connected, reconnecting, offline, expired. */
export class Feed {
  constructor(opts) {
    this.opts = opts;
    this.ws = null;
    this.attempt = 0;
    this.everConnected = false;
    this.pending = new Set();
    this.snapshots = 0;
    this.retryAt = 0;
    this.timer = 0;
    this.stopped = false;
    this.state = 'idle';
    this.onOnline = () => {
      if (this.ws === null && !this.stopped && this.state !== 'expired') this.connect();
    };
    this.onOffline = () => {
      if (this.state !== 'connected' && this.state !== 'expired') this.setState('offline');
    };
  }

  start() {
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'page closed the feed');
    }
  }

  /** resubscribe replaces the filter; the gateway answers with fresh
   * snapshots. */
  resubscribe(filter) {
    this.opts.filter = filter;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.pending = new Set(this.opts.streams);
      this.ws.send(JSON.stringify(this.subscribeFrame()));
    }
  }

  subscribeFrame() {
    const f = { type: 'subscribe', streams: this.opts.streams };
    const filter = this.opts.filter;
    if (filter && Object.values(filter).some((v) => (Array.isArray(v) ? v.length : v))) f.filter = filter;
    return f;
  }

  status() {
    return { state: this.state, attempt: this.attempt, retryAt: this.retryAt, snapshots: this.snapshots };
  }

  setState(state) {
    this.state = state;
    this.opts.onState?.(this.status());
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.opts.tokenExpired?.()) {
      this.setState('expired');
      return;
    }
    this.retryAt = 0;
    this.setState(this.everConnected ? 'reconnecting' : 'connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/live`, [SUBPROTOCOL, TOKEN_PROTOCOL + this.opts.token]);
    } catch (err) {
      console.error('cannot open the live websocket', err);
      this.retry();
      return;
    }
    this.ws = ws;
    this.pending = new Set(this.opts.streams);
    ws.onopen = () => ws.send(JSON.stringify(this.subscribeFrame()));
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.receive(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === CLOSE_TOKEN_EXPIRED || this.opts.tokenExpired?.()) {
        this.setState('expired');
        return;
      }
      // A gateway that shed a slow client asks it to come back at once;
      // everything else backs off.
      this.retry(ev.code === CLOSE_TRY_AGAIN);
    };
  }

  retry(soon = false) {
    if (this.stopped) return;
    const delay = backoff(this.attempt, soon);
    this.attempt++;
    this.retryAt = Date.now() + delay;
    const offline = navigator.onLine === false || this.attempt >= OFFLINE_AFTER;
    this.setState(offline ? 'offline' : this.everConnected ? 'reconnecting' : 'connecting');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    const stores = this.opts.stores;
    switch (msg.type) {
      case 'snapshot': {
        const store = stores[msg.stream];
        if (!store) return;
        store.replace(Array.isArray(msg.items) ? msg.items : [], this.opts.survives?.[msg.stream]);
        this.pending.delete(msg.stream);
        if (this.pending.size === 0 && this.state !== 'connected') {
          this.attempt = 0;
          this.everConnected = true;
          this.snapshots++;
          this.setState('connected');
        }
        this.opts.onChange?.(msg.stream, { snapshot: true });
        break;
      }
      case 'alert':
      case 'case': {
        const stream = FRAME_STREAM[msg.type];
        const store = stores[stream];
        if (store && store.apply(msg.data)) this.opts.onChange?.(stream, { item: msg.data });
        break;
      }
      case 'removed': {
        const store = stores[msg.stream];
        if (store && store.remove(msg.id, msg.version)) this.opts.onChange?.(msg.stream, { removed: msg.id });
        break;
      }
      case 'reset':
        // The gateway closes the socket next; onclose reconnects and the
        // new snapshot replaces everything.
        break;
      case 'error':
        console.warn('live:', msg.message);
        break;
    }
  }
}

/** showConnection draws a status on a connection indicator: an element
 * with a .label child; data-state carries the state for styles and tests,
 * data-snapshots how many times the page has been (re)synchronised. */
export function showConnection(el, status, t) {
  el.dataset.state = status.state;
  el.dataset.snapshots = String(status.snapshots);
  const label = el.querySelector('.label');
  const secs = status.retryAt ? Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000)) : 0;
  let text = t(`conn.${status.state}`);
  if ((status.state === 'reconnecting' || status.state === 'offline') && secs > 0) {
    text = t(`conn.${status.state}.in`, { s: secs });
  }
  if (label.textContent !== text) label.textContent = text;
}
