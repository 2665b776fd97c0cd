// The dispatcher console (派遣台): a department's or a dispatcher's queue,
// one case in detail with its deadlines and history, and the actions the hub
// says the signed-in caller may take on it now (allowed_actions). Every
// action carries the version the page showed and a fresh request id; when
// someone else changed the case first the hub answers 409, and the page
// refreshes the case and says so. The queue and the open case follow the
// live websocket.

import * as i18n from './i18n.js';
import { t } from './i18n.js';
import { takeToken, store as storeToken, forget, claims, expired, api, requestID } from './session.js';
import { Store, Feed, showConnection } from './live.js';
import { OPEN_STATUSES, isOpen, dueOf, byUrgency, caseFlags, dueCell, tick } from './cases.js';

const TOKEN_KEY = 'cityhub.console.token';
const MAX_QUEUE_ROWS = 200;
const LIST_LIMIT = 100;
const STATUS_FILTERS = ['open', ...OPEN_STATUSES, 'closed', 'cancelled', 'any'];

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function option(value, text, selected = false) {
  const o = el('option', '', text);
  o.value = value;
  o.selected = selected;
  return o;
}

// ---- state ---------------------------------------------------------------

let token = '';
let me = {};
let catalog = { districts: [], departments: [], case_classes: {} };
let feed = null;
// Every case the page knows: the live snapshot of open ones, their deltas,
// and closed or cancelled ones fetched for the status filter.
const cases = new Store();
const keepClosed = (c) => !isOpen(c);

// The open case: its id, the full answer of GET /v1/cases/{id}, and whether
// an action is in flight.
// armed is the action whose extra fields are showing, waiting for a second
// click to confirm.
const open = { id: '', data: null, busy: false, refreshTimer: 0, seq: 0, armed: '' };

// ---- sign-in ---------------------------------------------------------------

function showSignedIn(yes) {
  $('signin').hidden = yes;
  $('desk').hidden = !yes;
  $('signout').hidden = !yes;
  $('who').hidden = !yes;
}

function fail(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

async function signInWith(tok) {
  // The catalog needs a valid token: reading it checks the token too.
  const cat = await api('GET', '/v1/catalog', { token: tok });
  storeToken(TOKEN_KEY, tok);
  startDesk(tok, cat);
}

function bindSignIn() {
  $('token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tok = $('token-input').value.replace(/\s+/g, '');
    fail($('token-error'), '');
    if (!tok) return;
    $('token-submit').disabled = true;
    try {
      await signInWith(tok);
    } catch (err) {
      fail($('token-error'), t('signin.bad', { msg: err.message }));
    } finally {
      $('token-submit').disabled = false;
    }
  });
  $('dev-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fail($('dev-error'), '');
    const body = { role: $('dev-role').value };
    if ($('dev-dept').value) body.dept = $('dev-dept').value;
    const districts = [...$('dev-districts').selectedOptions].map((o) => o.value);
    if (districts.length) body.districts = districts;
    $('dev-submit').disabled = true;
    try {
      const answer = await api('POST', '/dev/signin', { body });
      await signInWith(answer.token);
    } catch (err) {
      fail($('dev-error'), t('signin.failed', { msg: err.message }));
    } finally {
      $('dev-submit').disabled = false;
    }
  });
}

// offerDevSignIn shows the dev sign-in when this hub offers it to this page.
async function offerDevSignIn() {
  let st;
  try {
    st = await api('GET', '/dev/signin');
  } catch {
    return; // a hub without it, or a gateway alone
  }
  if (!st?.enabled) return;
  i18n.learnCatalog({ districts: st.districts, departments: st.departments });
  const fill = () => {
    const role = $('dev-role').value || 'department';
    $('dev-role').replaceChildren(...(st.roles || []).map((r) => option(r, i18n.roleName(r), r === role)));
    const dept = $('dev-dept').value;
    $('dev-dept').replaceChildren(option('', t('signin.dept.none')), ...(st.departments || []).map((d) => option(d.code, `${i18n.deptName(d.code)} · ${d.code}`, d.code === dept)));
    const chosen = new Set([...$('dev-districts').selectedOptions].map((o) => o.value));
    $('dev-districts').replaceChildren(...(st.districts || []).map((d) => option(d.code, i18n.districtName(d.code), chosen.has(d.code))));
    $('dev-hint').textContent = t('signin.dev.hint', { ttl: st.ttl || '1h' });
  };
  fill();
  i18n.onChange(fill);
  $('dev-form').hidden = false;
}

function signOut() {
  forget(TOKEN_KEY);
  feed?.stop();
  location.hash = '';
  location.reload();
}

// ---- the desk ----------------------------------------------------------------

function showWho() {
  const dept = me.dept ? ` · ${i18n.deptName(me.dept)}` : '';
  const districts = Array.isArray(me.districts) && me.districts.length
    ? ` · ${me.districts.map(i18n.districtName).join(i18n.language() === 'en' ? ', ' : '、')}`
    : '';
  $('who').textContent = t('signin.as', { sub: me.sub || '?', role: i18n.roleName(me.role || '?'), dept, districts });
}

function fillFilters() {
  const keep = (id) => $(id).value;
  const status = keep('f-status') || 'open';
  $('f-status').replaceChildren(...STATUS_FILTERS.map((s) => option(s, s === 'open' ? t('filter.open') : s === 'any' ? t('filter.any') : i18n.statusName(s), s === status)));

  const district = keep('f-district');
  const scoped = Array.isArray(me.districts) && me.districts.length && me.role !== 'department' && me.role !== 'commander';
  const districts = catalog.districts.filter((d) => !scoped || me.districts.includes(d.code));
  $('f-district').replaceChildren(option('', t('filter.any')), ...districts.map((d) => option(d.code, i18n.districtName(d.code), d.code === district)));

  if (me.role === 'department') {
    // A department sees its own cases only; the hub narrows, the page says so.
    $('f-department').replaceChildren(option(me.dept, i18n.deptName(me.dept), true));
    $('f-department').disabled = true;
  } else {
    const dept = keep('f-department');
    $('f-department').replaceChildren(option('', t('filter.any')), ...catalog.departments.map((d) => option(d.code, i18n.deptName(d.code), d.code === dept)));
  }
}

function filters() {
  return {
    status: $('f-status').value || 'open',
    district: $('f-district').value,
    department: me.role === 'department' ? '' : $('f-department').value,
    overdue: $('f-overdue').checked,
  };
}

// liveFilter asks the gateway for what the filters name; statuses and
// "overdue" are applied here.
function liveFilter(f) {
  return { districts: f.district ? [f.district] : [], departments: f.department ? [f.department] : [] };
}

function involves(c, dept) {
  return c.lead === dept || (c.assist || []).includes(dept) || (c.parts || []).some((p) => p.department === dept);
}

function matches(c, f, now) {
  if (f.status === 'open' && !isOpen(c)) return false;
  if (f.status !== 'open' && f.status !== 'any' && c.status !== f.status) return false;
  if (f.district && c.district !== f.district) return false;
  if (f.department && !involves(c, f.department)) return false;
  if (f.overdue) {
    const due = dueOf(c);
    if (!due || due.at >= now) return false;
  }
  return true;
}

// fetchClosed reads the closed or cancelled cases the filters ask for: the
// live snapshot holds only open ones.
let fetchSeq = 0;
async function fetchClosed(f) {
  if (f.status === 'open' || OPEN_STATUSES.includes(f.status)) return;
  const seq = ++fetchSeq;
  const q = new URLSearchParams({ limit: String(LIST_LIMIT) });
  if (f.status !== 'any') q.set('status', f.status);
  if (f.district) q.set('district', f.district);
  if (f.department) q.set('department', f.department);
  try {
    const page = await api('GET', '/v1/cases?' + q, { token });
    if (seq !== fetchSeq) return;
    for (const c of page?.items || []) cases.apply(c);
    renderQueue();
  } catch (err) {
    handleAuthError(err);
    console.warn('cannot list cases:', err.message);
  }
}

function filtersChanged() {
  const f = filters();
  feed?.resubscribe(liveFilter(f));
  fetchClosed(f);
  renderQueue();
}

let queueQueued = false;
function queueChanged() {
  if (queueQueued) return;
  queueQueued = true;
  setTimeout(() => {
    queueQueued = false;
    renderQueue();
  }, 50);
}

function renderQueue() {
  const f = filters();
  const now = Date.now();
  const list = cases.values().filter((c) => matches(c, f, now));
  list.sort((a, b) => (isOpen(a) === isOpen(b) ? byUrgency(a, b) : isOpen(a) ? -1 : 1));
  const rows = list.slice(0, MAX_QUEUE_ROWS).map((c) => queueRow(c));
  $('queue').replaceChildren(...rows);
  $('queue-count').textContent = t('queue.count', { n: list.length });
  $('queue-empty').hidden = list.length > 0;
  $('queue-more').hidden = list.length <= MAX_QUEUE_ROWS;
  $('queue-more').textContent = t('queue.more', { n: MAX_QUEUE_ROWS });
}

function queueRow(c) {
  const tr = el('tr', `case st-${c.status}${c.id === open.id ? ' selected' : ''}`);
  tr.dataset.caseId = c.id;
  tr.dataset.status = c.status;
  tr.dataset.version = String(c.version);
  tr.tabIndex = 0;
  const main = el('td', 'main');
  const title = el('div', 'title');
  title.append(el('span', 'sev-mark sev-' + (c.severity || 'none')), document.createTextNode(c.title || c.id));
  for (const f of caseFlags(c)) title.append(el('span', `flag flag-${f.key}`, f.text));
  const sub = el('div', 'sub', `${i18n.districtName(c.district)} · ${i18n.deptName(c.lead)} · ${c.id}`);
  main.append(title, sub);
  const side = el('td', 'side');
  const due = el('div', 'due');
  dueCell(due, c);
  side.append(el('div', `status st-${c.status}`, i18n.statusName(c.status)), due);
  tr.append(main, side);
  return tr;
}

// ---- one case ----------------------------------------------------------------

function caseFromHash() {
  return new URLSearchParams(location.hash.slice(1)).get('case') || '';
}

async function openCase(id) {
  if (!id) return;
  if (open.id !== id) {
    open.id = id;
    open.data = null;
    open.armed = '';
    $('note').value = '';
    hideNotice();
    fail($('act-error'), '');
    const params = new URLSearchParams(location.hash.slice(1));
    params.set('case', id);
    history.replaceState(null, '', location.pathname + location.search + '#' + params);
    for (const tr of $('queue').querySelectorAll('tr.selected')) tr.classList.remove('selected');
    $('queue').querySelector(`tr[data-case-id="${CSS.escape(id)}"]`)?.classList.add('selected');
  }
  await refresh();
}

// refresh reads the open case again and redraws it. Answers that arrive
// out of order are dropped: only the latest request draws.
async function refresh() {
  const id = open.id;
  if (!id) return null;
  const seq = ++open.seq;
  try {
    const c = await api('GET', '/v1/cases/' + encodeURIComponent(id), { token });
    if (seq !== open.seq || id !== open.id) return null;
    open.data = c;
    cases.apply(c);
    renderDetail();
    queueChanged();
    return c;
  } catch (err) {
    if (seq !== open.seq || id !== open.id) return null;
    if (handleAuthError(err)) return null;
    open.data = null;
    renderDetail(err.status === 404 ? t('detail.gone') : t('notice.network', { msg: err.message }));
    return null;
  }
}

// A delta newer than the open case brings a fresh read of it (with its
// history and what may be done now), a moment later so that a burst of
// changes costs one read.
function refreshSoon() {
  clearTimeout(open.refreshTimer);
  open.refreshTimer = setTimeout(refresh, 150);
}

function fact(dl, key, value) {
  if (value === undefined || value === null || value === '') return;
  dl.append(el('dt', '', t(key)), el('dd', '', value));
}

function renderDetail(problem) {
  const c = open.data;
  const section = $('detail');
  $('detail-body').hidden = !c;
  $('detail-empty').hidden = !!c;
  if (!c) {
    delete section.dataset.caseId;
    delete section.dataset.version;
    delete section.dataset.status;
    $('detail-empty').textContent = problem || t(open.id ? 'detail.loading' : 'detail.empty');
    return;
  }
  section.dataset.caseId = c.id;
  section.dataset.version = String(c.version);
  section.dataset.status = c.status;

  $('d-title').textContent = c.title || c.id;
  $('d-status').textContent = i18n.statusName(c.status);
  $('d-status').className = `status-badge st-${c.status}`;
  $('d-severity').className = `sev-text sev-${c.severity || 'none'}`;
  $('d-severity').textContent = i18n.severityName(c.severity);
  $('d-flags').replaceChildren(...caseFlags(c).map((f) => el('span', `flag flag-${f.key}`, f.text)));
  $('d-id').textContent = c.id;
  $('d-version').textContent = t('detail.version', { n: c.version });

  const dl = $('d-facts');
  dl.replaceChildren();
  fact(dl, 'detail.district', i18n.districtName(c.district));
  const loc = c.location;
  if (loc) fact(dl, 'detail.location', [loc.street, loc.address, loc.grid].filter(Boolean).join(' · ') || null);
  fact(dl, 'detail.origin', [c.origin, c.event_type ? i18n.typeName(c.event_type) : ''].filter(Boolean).join(' · '));
  fact(dl, 'detail.rule', c.rule);
  fact(dl, 'detail.created', i18n.full(c.created_at));
  fact(dl, 'detail.dispatched', c.dispatched_at ? i18n.full(c.dispatched_at) : null);

  renderDeadlines(c);
  renderParts(c);
  renderActions(c);
  renderHistory(c);
}

// The deadlines: each part's accept and handle deadline (due, warning and
// final times, its state on the escalation ladder, and its clock), or the
// case's own *_due_at where the parts carry none.
function dueKeys(obj) {
  return Object.keys(obj || {}).filter((k) => k.endsWith('_due_at') && obj[k]);
}

function deadlineLabel(key) {
  return i18n.has(`detail.deadline.${key}`) ? t(`detail.deadline.${key}`) : key.replace(/_/g, ' ');
}

function deadlineItem(label, iso, running, extra) {
  const li = el('li', running ? 'running' : '');
  li.append(el('span', 'what', label), el('span', 'at', i18n.full(iso)));
  if (extra) li.append(el('span', `state ${extra.cls || ''}`, extra.text));
  if (running) {
    const d = el('span', 'due');
    d.dataset.due = String(new Date(iso).getTime());
    d.dataset.what = running;
    li.append(d);
  }
  return li;
}

function partDeadline(c, p, what) {
  const d = p[`${what}_deadline`];
  if (!d?.due_at) return null;
  const runs = isOpen(c) && !p.suspended && ((what === 'accept' && p.status === 'dispatched') || (what === 'handle' && p.status === 'accepted'));
  const bits = [];
  if (d.state && i18n.has(`deadline.state.${d.state}`)) bits.push(t(`deadline.state.${d.state}`));
  if (d.allowed) bits.push(d.allowed + (d.in && i18n.has(`deadline.in.${d.in}`) ? ' ' + t(`deadline.in.${d.in}`) : ''));
  const label = `${i18n.deptName(p.department)} · ${deadlineLabel(what + '_due_at')}`;
  return deadlineItem(label, d.due_at, runs ? what : '', { text: bits.join(' · '), cls: `st-${d.state || ''}` });
}

function renderDeadlines(c) {
  const ul = $('d-deadlines');
  const items = [];
  for (const p of c.parts || []) {
    for (const what of ['accept', 'handle']) {
      const li = partDeadline(c, p, what);
      if (li) items.push(li);
    }
  }
  if (items.length === 0) {
    const due = dueOf(c);
    for (const key of dueKeys(c)) {
      const what = key.replace(/_due_at$/, '');
      items.push(deadlineItem(deadlineLabel(key), c[key], due && due.what === what ? what : ''));
    }
  }
  if (c.escalated_to) items.push(deadlineItem(t('detail.escalated_to'), null, '', { text: i18n.deptName(c.escalated_to), cls: 'st-missed' }));
  if (items.length === 0) items.push(el('li', 'none', t('due.none')));
  ul.replaceChildren(...items);
  tick(ul);
}

function renderParts(c) {
  const rows = (c.parts || []).map((p) => {
    const tr = el('tr', `part st-${p.status}`);
    tr.dataset.department = p.department;
    tr.dataset.status = p.status;
    const who = el('td', 'dept', i18n.deptName(p.department));
    who.append(el('span', 'role', t(p.lead ? 'detail.part.lead' : 'detail.part.assist')));
    const when = [];
    if (p.accepted_at) when.push(t('detail.part.accepted', { t: i18n.when(p.accepted_at) }));
    if (p.handled_at) when.push(t('detail.part.handled', { t: i18n.when(p.handled_at) }));
    const flags = el('td', 'flags');
    for (const f of caseFlags(p)) flags.append(el('span', `flag flag-${f.key}`, f.text));
    const ext = p.extension;
    if (ext?.state && i18n.has(`extension.${ext.state}`)) {
      const span = ext.extend_by || (ext.until ? i18n.when(ext.until) : '');
      flags.append(el('span', `flag flag-extension`, t(`extension.${ext.state}`, { span })));
    }
    const note = [p.note, p.suspend_reason, p.rework_note].filter(Boolean).join(' · ');
    tr.append(who, el('td', `status st-${p.status}`, i18n.statusName(p.status)), el('td', 'when', when.join(' · ')), flags, el('td', 'note', note));
    return tr;
  });
  $('d-parts').replaceChildren(...rows);
}

function renderHistory(c) {
  const entries = [...(c.history || [])].sort((a, b) => b.version - a.version);
  const items = entries.map((e) => {
    const li = el('li', 'entry');
    li.dataset.version = String(e.version);
    li.dataset.action = e.action;
    const [action, detail] = String(e.action || '').split(':');
    const head = el('div', 'head');
    head.append(
      el('span', 'v', `v${e.version}`),
      el('time', 'at', i18n.full(e.at)),
      el('strong', 'what', i18n.actionName(action, detail) + (detail && !i18n.has(`action.${action}.${detail}`) ? ` · ${detail}` : '')),
    );
    if (e.from && e.to && e.from !== e.to) head.append(el('span', 'move', `${i18n.statusName(e.from)} → ${i18n.statusName(e.to)}`));
    const by = [e.actor, e.role ? i18n.roleName(e.role) : '', e.department ? i18n.deptName(e.department) : ''].filter(Boolean).join(' · ');
    head.append(el('span', 'by', by));
    li.append(head);
    if (e.note) li.append(el('p', 'note', e.note));
    if (e.effect) li.append(el('p', 'effect', e.effect));
    return li;
  });
  if (items.length === 0) items.push(el('li', 'none', t('detail.history.empty')));
  $('d-history').replaceChildren(...items);
}

// ---- actions ---------------------------------------------------------------

// The form fields an action may need, beyond the note.
const FIELDS = ['lead', 'assist', 'case_class', 'sla', 'into', 'extend_by', 'until'];

function actionLabel(opt) {
  const name = i18n.actionName(opt.action, opt.outcome);
  const multi = (open.data?.allowed_actions || []).filter((o) => o.action === opt.action && (o.outcome || '') === (opt.outcome || '')).length > 1;
  return opt.department && (multi || me.role !== 'department') && me.dept !== opt.department
    ? t('action.for', { action: name, dept: i18n.deptName(opt.department) })
    : name;
}

function optionKey(opt) {
  return [opt.action, opt.outcome || '', opt.department || ''].join('/');
}

// Actions that need more than a note (dispatch: lead and assist; merge:
// the target; an extension: how long) take two clicks: the first shows
// their fields, the second sends. Only the fields of the armed action show.
function renderActions(c) {
  const allowed = c.allowed_actions;
  const none = $('actions-none');
  const buttons = [];
  let armed = null;
  if (Array.isArray(allowed)) {
    for (const opt of allowed) {
      if (!opt || typeof opt.action !== 'string') continue;
      const isArmed = open.armed === optionKey(opt);
      if (isArmed) armed = opt;
      const danger = opt.action === 'cancel' || opt.outcome === 'fail' || opt.action === 'return' || opt.action === 'refuse_extension';
      const label = isArmed ? t('act.confirm', { action: actionLabel(opt) }) : actionLabel(opt);
      const b = el('button', `${danger ? 'danger' : 'primary'}${isArmed ? ' armed' : ''}`, label);
      b.type = 'button';
      b.dataset.action = opt.action;
      if (opt.outcome) b.dataset.outcome = opt.outcome;
      if (opt.department) b.dataset.department = opt.department;
      if (opt.needs_note) b.dataset.needsNote = 'true';
      if (opt.needs?.length) b.dataset.needs = opt.needs.join(' ');
      b.disabled = open.busy;
      b.addEventListener('click', () => act(opt, b));
      buttons.push(b);
    }
    none.textContent = t('detail.actions.none');
    none.hidden = buttons.length > 0;
  } else {
    // A hub that does not say what is allowed gets no buttons rather
    // than buttons that may be refused.
    none.textContent = t('detail.actions.unknown');
    none.hidden = false;
  }
  if (!armed) open.armed = '';
  $('actions').replaceChildren(...buttons);
  $('act-form').querySelector('[data-field="note"]').hidden = buttons.length === 0;
  const needed = new Set(armed?.needs || []);
  for (const f of FIELDS) {
    const box = $('act-form').querySelector(`[data-field="${f}"]`);
    if (box) box.hidden = !needed.has(f);
  }
  if (needed.has('lead') || needed.has('assist')) fillDepartmentPickers(c);
  if (needed.has('case_class')) fillClasses();
  $('act-cancel').hidden = !armed;
}

function fillDepartmentPickers(c) {
  const lead = $('a-lead').value || c.lead || '';
  $('a-lead').replaceChildren(option('', '—'), ...catalog.departments.map((d) => option(d.code, i18n.deptName(d.code), d.code === lead)));
  const chosen = new Set([...$('a-assist').querySelectorAll('input:checked')].map((i) => i.value));
  if (chosen.size === 0) for (const a of c.assist || []) chosen.add(a);
  $('a-assist').replaceChildren(...catalog.departments.map((d) => {
    const label = el('label', 'check');
    const box = el('input');
    box.type = 'checkbox';
    box.value = d.code;
    box.checked = chosen.has(d.code);
    label.append(box, document.createTextNode(' ' + i18n.deptName(d.code)));
    return label;
  }));
}

function fillClasses() {
  const have = $('a-class').value;
  const names = Object.keys(catalog.case_classes || {}).sort();
  $('a-class').replaceChildren(option('', t('field.case_class.default')), ...names.map((n) => option(n, n, n === have)));
}

// formFields gathers what opt needs, or throws with what is missing.
function formFields(opt) {
  const body = {};
  const needs = new Set(opt.needs || []);
  const note = $('note').value.trim();
  if (opt.needs_note && !note) throw new Error(t('field.note.required', { action: actionLabel(opt) }));
  if (note) body.note = note;
  if (needs.has('lead')) {
    body.lead = $('a-lead').value;
    if (!body.lead) throw new Error(t('field.required', { field: t('field.lead') }));
  }
  if (needs.has('assist')) {
    const assist = [...$('a-assist').querySelectorAll('input:checked')].map((i) => i.value).filter((d) => d !== body.lead);
    if (assist.length) body.assist = assist;
  }
  if (needs.has('case_class') && $('a-class').value) body.case_class = $('a-class').value;
  if (needs.has('sla')) {
    const accept = $('a-sla-accept').value.trim();
    const handle = $('a-sla-handle').value.trim();
    if (accept || handle) body.sla = { ...(accept && { accept }), ...(handle && { handle }) };
  }
  if (needs.has('into')) {
    body.into = $('a-into').value.trim();
    if (!body.into) throw new Error(t('field.required', { field: t('field.into') }));
  }
  if (needs.has('extend_by') || needs.has('until')) {
    const by = $('a-extend-by').value.trim();
    const until = $('a-until').value;
    if (by) body.extend_by = by;
    else if (until) body.until = new Date(until).toISOString();
    else throw new Error(t('field.extension.required'));
  }
  return body;
}

function setBusy(busy) {
  open.busy = busy;
  for (const b of $('actions').querySelectorAll('button')) b.disabled = busy;
}

function disarm() {
  open.armed = '';
  fail($('act-error'), '');
  if (open.data) renderActions(open.data);
}

async function act(opt, button) {
  const c = open.data;
  if (!c || open.busy) return;
  fail($('act-error'), '');
  if (opt.needs?.length && open.armed !== optionKey(opt)) {
    open.armed = optionKey(opt);
    renderActions(c);
    const first = $('act-form').querySelector('.field:not([hidden]):not([data-field="note"]) input, .field:not([hidden]):not([data-field="note"]) select');
    first?.focus();
    return;
  }
  let fields;
  try {
    fields = formFields(opt);
  } catch (err) {
    fail($('act-error'), err.message);
    if (opt.needs_note && !$('note').value.trim()) $('note').focus();
    return;
  }
  const body = { action: opt.action, expected_version: c.version, request_id: requestID(), ...fields };
  if (opt.department) body.department = opt.department;
  if (opt.outcome === 'pass' || opt.outcome === 'fail') body.pass = opt.outcome === 'pass';
  const label = actionLabel(opt);
  setBusy(true);
  try {
    const after = await api('POST', `/v1/cases/${encodeURIComponent(c.id)}/actions`, { token, body });
    if (after) cases.apply(after);
    open.armed = '';
    $('note').value = '';
    showNotice('done', t('notice.done', { action: label, n: after?.version ?? '?' }));
    await refresh();
  } catch (err) {
    if (handleAuthError(err)) return;
    if (err.status === 409) {
      // Someone was faster, or the case moved on: read it again and say so
      // rather than leave the page showing what is no longer true.
      const fresh = await refresh();
      const now = fresh?.version ?? '?';
      showNotice('conflict', err.code === 'version_conflict'
        ? t('notice.conflict', { old: c.version, new: now })
        : t('notice.conflict.transition', { msg: err.message, new: now }));
    } else if (err.status === 0) {
      showNotice('error', t('notice.network', { msg: err.message }));
    } else {
      showNotice('error', t('notice.error', { status: err.status, msg: err.message }));
    }
  } finally {
    setBusy(false);
  }
}

function showNotice(kind, text) {
  const n = $('notice');
  n.dataset.kind = kind;
  $('notice-text').textContent = text;
  n.hidden = false;
}

function hideNotice() {
  $('notice').hidden = true;
  delete $('notice').dataset.kind;
}

// handleAuthError signs out on a token the hub no longer takes.
function handleAuthError(err) {
  if (err?.status !== 401) return false;
  forget(TOKEN_KEY);
  feed?.stop();
  feed = null;
  showSignedIn(false);
  fail($('token-error'), t('signin.bad', { msg: err.message }));
  offerDevSignIn();
  return true;
}

// ---- start -----------------------------------------------------------------

function everySecond() {
  if (feed) showConnection($('conn'), feed.status(), t);
  const crossed = tick($('queue'));
  tick($('d-deadlines'));
  if (crossed && $('f-overdue').checked) renderQueue();
}

function startDesk(tok, cat) {
  token = tok;
  me = claims(tok);
  catalog = {
    districts: cat?.districts || [],
    departments: cat?.departments || [],
    case_classes: cat?.case_classes || {},
  };
  i18n.learnCatalog(cat);
  showSignedIn(true);
  showWho();
  fillFilters();
  for (const id of ['f-status', 'f-district', 'f-department', 'f-overdue']) $(id).addEventListener('change', filtersChanged);
  $('queue').addEventListener('click', (ev) => {
    const tr = ev.target.closest('tr[data-case-id]');
    if (tr) openCase(tr.dataset.caseId);
  });
  $('queue').addEventListener('keydown', (ev) => {
    const tr = ev.target.closest('tr[data-case-id]');
    if (tr && (ev.key === 'Enter' || ev.key === ' ')) {
      ev.preventDefault();
      openCase(tr.dataset.caseId);
    }
  });
  i18n.onChange(() => {
    showWho();
    fillFilters();
    renderQueue();
    if (open.data) renderDetail();
  });
  feed = new Feed({
    token: tok,
    streams: ['cases'],
    filter: liveFilter(filters()),
    stores: { cases },
    survives: { cases: keepClosed },
    tokenExpired: () => expired(tok),
    onState: (status) => {
      showConnection($('conn'), status, t);
      if (status.state === 'expired') handleAuthError({ status: 401, message: t('conn.expired') });
    },
    onChange: (stream, change) => {
      queueChanged();
      if (!open.id) return;
      if (change.snapshot || change.removed === open.id) refreshSoon();
      else if (change.item?.id === open.id && change.item.version > (open.data?.version ?? 0)) refreshSoon();
    },
  });
  feed.start();
  renderQueue();
  renderDetail();
  const id = caseFromHash();
  if (id) openCase(id);
}

function start() {
  i18n.bindToggle($('lang'));
  $('signout').addEventListener('click', signOut);
  $('notice-close').addEventListener('click', hideNotice);
  $('act-form').addEventListener('submit', (ev) => ev.preventDefault());
  $('act-cancel').addEventListener('click', disarm);
  bindSignIn();
  setInterval(everySecond, 1000);
  const tok = takeToken(TOKEN_KEY);
  if (tok && !expired(tok)) {
    signInWith(tok).catch((err) => {
      if (!handleAuthError(err)) {
        showSignedIn(false);
        fail($('token-error'), t('signin.bad', { msg: err.message }));
        offerDevSignIn();
      }
    });
    return;
  }
  if (tok) forget(TOKEN_KEY);
  showSignedIn(false);
  offerDevSignIn();
}

start();
