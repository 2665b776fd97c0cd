// The wall screen (大屏): follows the hub's live websocket and draws the
// firing alerts and the open cases. Plain ES module, no build step, nothing
// loaded from outside the hub.

const TOKEN_KEY = 'cityhub.token';
const SUBPROTOCOL = 'cityhub.v1';
const CLOSE_TOKEN_EXPIRED = 4001;
const MAX_ALERT_ROWS = 120;
const MAX_CASE_ROWS = 120;
const MAX_TOMBSTONES = 20000;

const SEVERITIES = ['extreme', 'severe', 'moderate', 'minor'];
const SEVERITY_LABEL = { extreme: '特别严重', severe: '严重', moderate: '较重', minor: '一般' };
const OPEN_STATUSES = ['new', 'dispatched', 'accepted', 'handled'];
const STATUS_LABEL = {
  new: '待派遣', dispatched: '已派遣', accepted: '处置中', handled: '待核查', closed: '已结案', cancelled: '已作废',
};
const CONN_LABEL = { idle: '未连接', connecting: '连接中', connected: '已连接', reconnecting: '重连中', expired: '令牌过期' };

const $ = (id) => document.getElementById(id);

// takeToken moves a token from the address bar (#token=…) into session
// storage, so that it is neither bookmarked nor left on screen.
function takeToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash.trim());
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

// claims reads a token's payload for display only; the hub checks it.
function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

// Store keeps the open items of one stream by id, and the version of each
// item that has gone (resolved, closed), so that an older delta arriving
// late cannot bring it back. An item is replaced only by a higher version.
class Store {
  constructor(isOpen) {
    this.isOpen = isOpen;
    this.items = new Map();
    this.gone = new Map();
  }

  reset(items) {
    this.items.clear();
    this.gone.clear();
    for (const it of items) {
      if (it && it.id && this.isOpen(it)) this.items.set(it.id, it);
    }
  }

  apply(it) {
    if (!it || !it.id) return false;
    const have = this.items.get(it.id)?.version ?? this.gone.get(it.id) ?? -Infinity;
    if (it.version <= have) return false;
    if (this.isOpen(it)) {
      this.items.set(it.id, it);
      this.gone.delete(it.id);
    } else {
      this.items.delete(it.id);
      this.gone.set(it.id, it.version);
      if (this.gone.size > MAX_TOMBSTONES) this.gone.delete(this.gone.keys().next().value);
    }
    return true;
  }
}

const alerts = new Store((a) => a.state === 'firing');
const cases = new Store((c) => OPEN_STATUSES.includes(c.status));
const names = { districts: new Map(), departments: new Map() };
let centres = [];

// ---- connection -------------------------------------------------------

function setConn(state) {
  const el = $('conn');
  el.dataset.state = state;
  $('conn-label').textContent = CONN_LABEL[state] || state;
}

class Live {
  constructor(token) {
    this.token = token;
    this.ws = null;
    this.attempt = 0;
    this.everConnected = false;
    this.snapshots = new Set();
    this.timer = 0;
  }

  connect() {
    clearTimeout(this.timer);
    setConn(this.everConnected ? 'reconnecting' : 'connecting');
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/v1/live`, [SUBPROTOCOL, 'bearer.' + this.token]);
    } catch (err) {
      console.error('cannot open the live websocket', err);
      this.retry();
      return;
    }
    this.ws = ws;
    this.snapshots.clear();
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'subscribe', streams: ['alerts', 'cases'] }));
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === CLOSE_TOKEN_EXPIRED) {
        sessionStorage.removeItem(TOKEN_KEY);
        setConn('expired');
        show('expired');
        return;
      }
      this.retry();
    };
  }

  retry() {
    setConn(this.everConnected ? 'reconnecting' : 'connecting');
    // 1 s, 2 s, 4 s … up to 30 s, with jitter so that many screens do not
    // all come back in the same instant after a restart.
    const base = Math.min(30000, 1000 * 2 ** Math.min(this.attempt, 5));
    this.attempt++;
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    switch (msg.type) {
      case 'snapshot':
        (msg.stream === 'alerts' ? alerts : cases).reset(msg.items || []);
        this.snapshots.add(msg.stream);
        if (this.snapshots.has('alerts') && this.snapshots.has('cases')) {
          this.attempt = 0;
          this.everConnected = true;
          setConn('connected');
        }
        changed();
        break;
      case 'alert':
        if (alerts.apply(msg.data)) changed();
        break;
      case 'case':
        if (cases.apply(msg.data)) changed();
        break;
      case 'reset':
        // The hub closes the socket next; onclose reconnects and the new
        // snapshot replaces everything.
        break;
      case 'error':
        console.warn('live:', msg.message);
        break;
    }
  }
}

// ---- rendering ----------------------------------------------------------

let renderQueued = false;
function changed() {
  $('updated').textContent = timeOf(new Date());
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 50);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function timeOf(d) {
  return d.toLocaleTimeString('zh-CN', { hour12: false });
}

function shortTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const hm = d.toLocaleTimeString('zh-CN', { hour12: false, hour: '2-digit', minute: '2-digit' });
  return sameDay ? hm : `${d.getMonth() + 1}月${d.getDate()}日 ${hm}`;
}

function districtName(code) {
  return names.districts.get(code) || code || '—';
}

function deptName(code) {
  return names.departments.get(code) || code || '—';
}

// dueOf returns the deadline that runs now for a case, and what it is for.
function dueOf(c) {
  if (c.status === 'dispatched' && c.accept_due_at) return { at: new Date(c.accept_due_at), what: '签收' };
  if (c.status === 'accepted' && c.handle_due_at) return { at: new Date(c.handle_due_at), what: '处置' };
  return null;
}

function span(ms) {
  const m = Math.max(1, Math.round(Math.abs(ms) / 60000));
  if (m < 60) return `${m}分`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}时${m % 60 ? (m % 60) + '分' : ''}`;
  return `${Math.floor(h / 24)}天`;
}

const severityRank = (s) => {
  const i = SEVERITIES.indexOf(s);
  return i < 0 ? SEVERITIES.length : i;
};

function setCount(id, n) {
  const e = $(id);
  if (e.dataset.count !== String(n)) {
    e.dataset.count = String(n);
    e.textContent = String(n);
  }
}

function render() {
  const now = Date.now();
  const openAlerts = [...alerts.items.values()];
  const openCases = [...cases.items.values()];

  // Counters.
  setCount('alert-total', openAlerts.length);
  for (const s of SEVERITIES) setCount(`count-severity-${s}`, openAlerts.filter((a) => a.severity === s).length);
  setCount('case-total', openCases.length);
  for (const s of OPEN_STATUSES) setCount(`count-status-${s}`, openCases.filter((c) => c.status === s).length);
  setCount('count-overdue', openCases.filter((c) => {
    const due = dueOf(c);
    return due && due.at.getTime() < now;
  }).length);

  // Alerts: the most severe first, then the newest.
  openAlerts.sort((a, b) => severityRank(a.severity) - severityRank(b.severity)
    || String(b.starts_at || '').localeCompare(String(a.starts_at || '')));
  const feed = $('alerts');
  const rows = openAlerts.slice(0, MAX_ALERT_ROWS).map((a) => {
    const li = el('li', `alert sev-${a.severity || 'none'}`);
    li.dataset.alertId = a.id;
    li.dataset.severity = a.severity || '';
    li.dataset.version = String(a.version);
    li.append(
      el('span', 'badge', SEVERITY_LABEL[a.severity] || '未分级'),
      el('span', 'title', a.title || a.rule || a.id),
      el('span', 'where', districtName(a.district) + (a.location?.street ? ' · ' + a.location.street : '')),
      el('time', 'when', shortTime(a.starts_at || a.updated_at)),
    );
    if (a.event_count > 1) li.append(el('span', 'count', `×${a.event_count}`));
    return li;
  });
  feed.replaceChildren(...rows);
  $('alerts-empty').hidden = openAlerts.length > 0;

  // Cases: the nearest deadline first; cases with none after, newest first.
  openCases.sort((a, b) => {
    const da = dueOf(a)?.at.getTime() ?? Infinity;
    const db = dueOf(b)?.at.getTime() ?? Infinity;
    return da - db || String(b.created_at || '').localeCompare(String(a.created_at || ''));
  });
  const body = $('cases');
  const caseRows = openCases.slice(0, MAX_CASE_ROWS).map((c) => {
    const tr = el('tr', `case st-${c.status}`);
    tr.dataset.caseId = c.id;
    tr.dataset.status = c.status;
    tr.dataset.version = String(c.version);
    const due = dueOf(c);
    let dueText = '—';
    let dueClass = 'due';
    if (due && !Number.isNaN(due.at.getTime())) {
      const left = due.at.getTime() - now;
      dueText = left >= 0 ? `${due.what} 剩${span(left)}` : `${due.what} 超${span(left)}`;
      if (left < 0) dueClass += ' overdue';
      else if (left < 15 * 60000) dueClass += ' soon';
    }
    const id = el('td', 'id', c.id);
    id.title = c.id;
    tr.append(
      id,
      el('td', 'title', c.title || '—'),
      el('td', 'status', STATUS_LABEL[c.status] || c.status),
      el('td', 'lead', deptName(c.lead)),
      el('td', dueClass, dueText),
    );
    return tr;
  });
  body.replaceChildren(...caseRows);
  $('cases-empty').hidden = openCases.length > 0;

  renderMap(openAlerts, openCases);
}

// ---- the schematic map ---------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';
const mapNodes = new Map();

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// buildMap places one circle per district at its centre, in a plain
// equirectangular projection scaled to the panel: a schematic, not a map.
function buildMap() {
  const map = $('map');
  map.replaceChildren();
  mapNodes.clear();
  if (centres.length === 0) return;
  const W = 1000, H = 700, pad = 90;
  const lats = centres.map((d) => d.centre.lat);
  const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
  const k = Math.cos(midLat * Math.PI / 180);
  const xs = centres.map((d) => d.centre.lon * k);
  const minX = Math.min(...xs), maxX = Math.max(...xs);
  const minY = Math.min(...lats), maxY = Math.max(...lats);
  const scale = Math.min((W - 2 * pad) / ((maxX - minX) || 1), (H - 2 * pad) / ((maxY - minY) || 1));
  const offX = (W - (maxX - minX) * scale) / 2;
  const offY = (H - (maxY - minY) * scale) / 2;
  for (const d of centres) {
    const x = offX + (d.centre.lon * k - minX) * scale;
    const y = H - (offY + (d.centre.lat - minY) * scale);
    const g = svg('g', { class: 'district', 'data-district': d.code, transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})` });
    const ring = svg('circle', { class: 'ring', r: 22 });
    const label = svg('text', { class: 'name', y: 48, 'text-anchor': 'middle' });
    label.textContent = d.name || d.code;
    const count = svg('text', { class: 'num', y: 8, 'text-anchor': 'middle' });
    g.append(ring, count, label);
    map.append(g);
    mapNodes.set(d.code, { g, ring, count });
  }
}

function renderMap(openAlerts, openCases) {
  if (mapNodes.size === 0) return;
  const per = new Map();
  for (const code of mapNodes.keys()) per.set(code, { alerts: 0, cases: 0, worst: SEVERITIES.length });
  for (const a of openAlerts) {
    const p = per.get(a.district);
    if (!p) continue;
    p.alerts++;
    p.worst = Math.min(p.worst, severityRank(a.severity));
  }
  for (const c of openCases) {
    const p = per.get(c.district);
    if (p) p.cases++;
  }
  for (const [code, n] of mapNodes) {
    const p = per.get(code);
    const level = p.alerts ? SEVERITIES[p.worst] || 'none' : 'calm';
    n.g.setAttribute('class', `district level-${level}`);
    n.g.dataset.alerts = String(p.alerts);
    n.g.dataset.cases = String(p.cases);
    n.ring.setAttribute('r', String(22 + Math.min(48, Math.sqrt(p.alerts + p.cases) * 9)));
    n.count.textContent = p.alerts || p.cases ? `${p.alerts}/${p.cases}` : '';
  }
}

async function loadCatalog(token) {
  try {
    const resp = await fetch('/v1/catalog', { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
    if (!resp.ok) return;
    const cat = await resp.json();
    for (const d of cat.districts || []) names.districts.set(d.code, d.name);
    for (const d of cat.departments || []) names.departments.set(d.code, d.name);
    centres = (cat.districts || []).filter((d) => d.centre && Number.isFinite(d.centre.lon) && Number.isFinite(d.centre.lat));
    buildMap();
    changed();
  } catch (err) {
    console.warn('catalog unavailable', err);
  }
}

// ---- start -----------------------------------------------------------------

function show(which) {
  $('board').hidden = which !== 'board';
  $('no-token').hidden = which !== 'no-token';
  $('expired').hidden = which !== 'expired';
}

function tick() {
  $('clock').textContent = timeOf(new Date());
}

function start() {
  tick();
  setInterval(tick, 1000);
  const token = takeToken();
  if (!token) {
    show('no-token');
    setConn('idle');
    return;
  }
  const c = claims(token);
  const districts = Array.isArray(c.districts) && c.districts.length ? c.districts.join('、') : '全部';
  $('scope').textContent = `${c.sub || ''} · 角色 ${c.role || '?'}${c.dept ? ' · 部门 ' + c.dept : ''} · 区域 ${districts}`;
  show('board');
  loadCatalog(token);
  new Live(token).connect();
  // Deadlines move even when nothing else does.
  setInterval(render, 15000);
}

start();
