// The wall screen (大屏): follows the hub's live websocket and draws the
// firing alerts, the open cases and their deadlines, for a room to read
// from across it. Plain ES module, no build step, nothing from outside the hub.

import * as i18n from './i18n.js';
import { t } from './i18n.js';
import { takeToken, forget, claims, expired, api } from './session.js';
import { Store, Feed, showConnection } from './live.js';
import { OPEN_STATUSES, SEVERITIES } from './enums.js';
import { SOON_MS, isOpen, dueOf, byUrgency, caseFlags, signedParts, muted, dueCell, tick } from './cases.js';
import { DistrictMap } from './map.js';
import { matcherLine, mutedBecause, unknownSilence } from './silences.js';
import { $, el } from './dom.js';

const TOKEN_KEY = 'cityhub.wall.token';
const MAX_ALERT_ROWS = 60;
const MAX_CASE_ROWS = 60;

const alerts = new Store((a) => a.state === 'firing');
const cases = new Store(isOpen);
const map = new DistrictMap($('map'));
let feed = null;

function setCount(id, n) {
  const e = $(id);
  if (e.dataset.count !== String(n)) {
    e.dataset.count = String(n);
    e.textContent = String(n);
  }
}

// ---- rendering ----------------------------------------------------------

let renderQueued = false;

function changed() {
  $('updated').textContent = i18n.clock(new Date());
  if (renderQueued) return;
  renderQueued = true;
  // Coalesce a burst of deltas into one drawing.
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 50);
}

function alertTime(a) {
  return String(a.starts_at || a.updated_at || '');
}

function render() {
  const now = Date.now();
  const openAlerts = alerts.values();
  const openCases = cases.values();

  // Counters: muted alerts (silenced, inhibited, shadow) ask nothing of the
  // room, so they are counted apart.
  const loud = openAlerts.filter((a) => !muted(a));
  setCount('alert-total', loud.length);
  for (const s of SEVERITIES) setCount(`count-severity-${s}`, loud.filter((a) => a.severity === s).length);
  const quiet = openAlerts.length - loud.length;
  if (quiet && unknownSilence(openAlerts, silences)) silencesSoon();
  $('alert-muted').hidden = quiet === 0;
  $('alert-muted').textContent = quiet ? t('wall.muted', { n: quiet }) : '';
  setCount('case-total', openCases.length);
  for (const s of OPEN_STATUSES) setCount(`count-status-${s}`, openCases.filter((c) => c.status === s).length);
  countDeadlines(openCases, now);

  // The feed: newest first.
  openAlerts.sort((a, b) => alertTime(b).localeCompare(alertTime(a)));
  const rows = openAlerts.slice(0, MAX_ALERT_ROWS).map(alertRow);
  $('alerts').replaceChildren(...rows);
  $('alerts-empty').hidden = openAlerts.length > 0;

  // The deadline watch: overdue first, then the nearest deadline.
  openCases.sort(byUrgency);
  $('cases').replaceChildren(...openCases.slice(0, MAX_CASE_ROWS).map(caseRow));
  $('cases-empty').hidden = openCases.length > 0;

  // The map.
  const per = new Map();
  const at = (code) => {
    if (!per.has(code)) per.set(code, { alerts: [], cases: 0, overdue: 0 });
    return per.get(code);
  };
  for (const a of loud) at(a.district).alerts.push(a.severity);
  for (const c of openCases) {
    const p = at(c.district);
    p.cases++;
    const due = dueOf(c);
    if (due && due.at < now) p.overdue++;
  }
  map.update(per, SEVERITIES, (n) => t('wall.map.overdue', { n }));
}

function countDeadlines(openCases, now) {
  let overdue = 0;
  let soon = 0;
  for (const c of openCases) {
    const due = dueOf(c);
    if (!due) continue;
    if (due.at < now) overdue++;
    else if (due.at - now < SOON_MS) soon++;
  }
  setCount('count-overdue', overdue);
  setCount('count-soon', soon);
}

function alertRow(a) {
  const why = muted(a);
  const li = el('li', `alert sev-${a.severity || 'none'}${why ? ' muted' : ''}`);
  li.dataset.alertId = a.id;
  li.dataset.severity = a.severity || '';
  li.dataset.version = String(a.version);
  if (why) li.dataset.muted = why;
  if (a.silenced_by?.length) {
    li.dataset.silencedBy = a.silenced_by.join(' ');
    li.title = mutedBecause(a, silences);
  }
  const where = i18n.districtName(a.district) + (a.location?.street ? ' · ' + a.location.street : '');
  li.append(
    el('span', 'badge', i18n.severityName(a.severity)),
    el('span', 'title', a.title || a.rule || a.id),
    el('span', 'where', where),
    el('time', 'when', i18n.when(a.starts_at || a.updated_at)),
  );
  const tail = el('span', 'count');
  if (why) tail.append(el('span', 'flag', t(`flag.${why}`)));
  if (a.event_count > 1) tail.append(document.createTextNode(` ×${a.event_count}`));
  li.append(tail);
  return li;
}

function caseRow(c) {
  const tr = el('tr', `case st-${c.status}`);
  tr.dataset.caseId = c.id;
  tr.dataset.status = c.status;
  tr.dataset.version = String(c.version);
  const due = el('td', 'due');
  due.append(el('div', 'what'), el('div', 't'));
  dueCell(due, c);
  const title = el('td', 'title');
  const line = el('div', 'line');
  line.append(el('span', 'sev-mark sev-' + (c.severity || 'none')), document.createTextNode(c.title || c.id));
  for (const f of caseFlags(c)) line.append(el('span', `flag flag-${f.key}`, f.text));
  title.title = c.id;
  let sub = `${i18n.districtName(c.district)} · ${i18n.deptName(c.lead)}`;
  const signed = c.status === 'dispatched' ? signedParts(c) : null;
  if (signed) {
    tr.dataset.signed = `${signed.signed}/${signed.total}`;
    sub += ' · ' + t('wall.signed', signed);
  }
  title.append(line, el('div', 'sub', sub));
  tr.append(due, title, el('td', 'status', i18n.statusName(c.status)));
  return tr;
}

// Countdowns tick every second without a redraw; a case that crosses into
// "due soon" or "overdue" redraws the board so that it moves up and the
// counters follow.
function everySecond() {
  $('clock').textContent = i18n.clock(new Date());
  if (feed) showConnection($('conn'), feed.status(), t);
  if (tick($('cases'))) changed();
}

// ---- start ---------------------------------------------------------------

function show(which) {
  $('board').hidden = which !== 'board';
  $('no-token').hidden = which !== 'no-token';
  $('expired').hidden = which !== 'expired';
}

function showScope(token) {
  const c = claims(token);
  const districts = Array.isArray(c.districts) && c.districts.length
    ? c.districts.map(i18n.districtName).join(i18n.language() === 'en' ? ', ' : '、')
    : t('wall.scope.all');
  $('scope').textContent = t('wall.scope', { sub: c.sub || '', role: i18n.roleName(c.role || '?'), districts });
}

// The sources: who is speaking, at what rate, and what was refused —
// read every SOURCES_MS from GET /v1/sources, the busiest few shown.
const SOURCES_MS = 15000;
const SOURCES_SHOWN = 3;

async function loadSources(token) {
  try {
    const list = await api('GET', '/v1/sources', { token });
    showSources(list?.items || []);
  } catch (err) {
    console.warn('sources unavailable:', err.message);
  }
}

function showSources(items) {
  setCount('source-total', items.filter((s) => s.recent > 0).length);
  $('sources').replaceChildren(...items.slice(0, SOURCES_SHOWN).map((s) => {
    const li = el('li', `tile source${s.recent > 0 ? '' : ' quiet'}`);
    li.dataset.source = s.source;
    li.dataset.rejected = String(s.rejected);
    li.append(el('span', 'n', String(s.recent)), el('span', 'l', s.source));
    if (s.rejected > 0) li.append(el('span', 'r', t('wall.sources.rejected', { n: s.rejected })));
    return li;
  }));
}

// The silences that mute alerts now: how many, and the comment behind
// each silenced alert (its row's title). Read every SILENCES_MS from
// GET /v1/silences?state=active, and sooner when an alert names one set
// since, but not again within SILENCES_SOONEST_MS.
const SILENCES_MS = 30000;
const SILENCES_SOONEST_MS = 5000;
let silences = new Map(); // the active ones by id
let silencesToken = '';
let silencesReadAt = 0;
let silencesReading = false;

async function loadSilences() {
  if (!silencesToken || silencesReading) return;
  silencesReading = true;
  silencesReadAt = Date.now();
  try {
    const list = await api('GET', '/v1/silences?state=active', { token: silencesToken });
    const items = (list?.items || []).filter((s) => s.state === 'active');
    silences = new Map(items.map((s) => [s.id, s]));
    showSilences(items, null);
    changed();
  } catch (err) {
    console.warn('silences unavailable:', err.message);
    showSilences([], err);
  } finally {
    silencesReading = false;
  }
}

// silencesSoon reads the silences again unless they were read just now.
function silencesSoon() {
  if (Date.now() - silencesReadAt >= SILENCES_SOONEST_MS) loadSilences();
}

// showSilences draws how many silences are active (items), with what each
// mutes and why on hover, or that they could not be read (err).
function showSilences(items, err) {
  const note = $('silences-active');
  note.classList.toggle('failed', !!err);
  if (err) {
    note.dataset.failed = err.message;
  } else {
    delete note.dataset.failed;
    note.dataset.count = String(items.length);
    note.title = items.map((s) => matcherLine(s.matchers) + (s.comment ? ' — ' + s.comment : '')).join('\n');
  }
  relabelSilences();
}

function relabelSilences() {
  const note = $('silences-active');
  const failed = note.dataset.failed;
  const n = Number(note.dataset.count) || 0;
  note.textContent = failed !== undefined ? t('wall.silences.failed') : t('wall.silences', { n });
  if (failed !== undefined) note.title = failed;
  note.hidden = failed === undefined && n === 0;
}

async function loadCatalog(token) {
  try {
    const cat = await api('GET', '/v1/catalog', { token });
    i18n.learnCatalog(cat);
    map.build(cat?.districts || [], i18n.districtName);
    changed();
  } catch (err) {
    console.warn('catalog unavailable:', err.message);
  }
}

function start() {
  i18n.bindToggle($('lang'));
  everySecond();
  setInterval(everySecond, 1000);
  const token = takeToken(TOKEN_KEY);
  if (!token) {
    show('no-token');
    return;
  }
  i18n.onChange(() => {
    showScope(token);
    map.relabel(i18n.districtName);
    relabelSilences();
    render();
  });
  showScope(token);
  show('board');
  loadCatalog(token);
  loadSources(token);
  setInterval(() => loadSources(token), SOURCES_MS);
  silencesToken = token;
  loadSilences();
  setInterval(loadSilences, SILENCES_MS);
  feed = new Feed({
    token,
    streams: ['alerts', 'cases'],
    stores: { alerts, cases },
    tokenExpired: () => expired(token),
    onChange: changed,
    onState: (status) => {
      showConnection($('conn'), status, t);
      if (status.state === 'expired') {
        forget(TOKEN_KEY);
        show('expired');
      }
    },
  });
  feed.start();
}

start();
