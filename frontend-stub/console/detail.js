// The console's open case: its facts, each part's deadlines with their
// escalation state, the parts, the history, and (drawn by the actions) what
// the caller may do now. It is read whole from GET /v1/cases/{id}, which
// carries the history and allowed_actions that the live deltas do not, and
// read again when a delta says it changed.

import * as i18n from '../i18n.js';
import { t } from '../i18n.js';
import { isOpen, dueOf, caseFlags, tick } from '../cases.js';
import { $, el } from '../dom.js';

// A burst of changes to the open case costs one read.
const REFRESH_DELAY_MS = 150;

/** caseInHash returns the id of the case the address names (#case=…). */
export function caseInHash(hash) {
  return new URLSearchParams(hash.replace(/^#/, '')).get('case') || '';
}

/** hashWithCase returns the address fragment naming case id, keeping the
 * rest of hash. */
export function hashWithCase(hash, id) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  params.set('case', id);
  return '#' + params;
}

/** needsRefresh reports whether a change of the live feed ({snapshot},
 * {removed: id} or {item}) makes the open case id, shown at version, worth
 * reading again: a new snapshot, its removal, or a newer version of it. */
export function needsRefresh(change, id, version) {
  if (!id) return false;
  if (change.snapshot || change.removed === id) return true;
  return change.item?.id === id && change.item.version > version;
}

/** clockRuns reports whether part p's deadline for what ("accept" or
 * "handle") is running: the case is open, the part not suspended, and it
 * waits for that step. */
export function clockRuns(c, p, what) {
  if (!isOpen(c) || p.suspended) return false;
  return (what === 'accept' && p.status === 'dispatched') || (what === 'handle' && p.status === 'accepted');
}

/** newestFirst returns a case's history, the latest change first. */
export function newestFirst(history) {
  return [...(history || [])].sort((a, b) => b.version - a.version);
}

/** attemptSummary is what one delivery attempt of a case's notification
 * says: its outcome (sent, retrying, failed_over, dead) as a class, and the
 * facts worth a line — receiver, person, the change it told of, the attempt
 * number and why it failed. */
export function attemptSummary(a) {
  const facts = [a.receiver];
  if (a.person) facts.push(a.person);
  if (a.department) facts.push(i18n.deptName(a.department));
  if (a.change) facts.push(i18n.has(`notify.change.${a.change}`) ? t(`notify.change.${a.change}`) : a.change);
  if (a.attempt > 1) facts.push(t('notify.attempt', { n: a.attempt }));
  const why = [];
  if (a.status) why.push(String(a.status));
  if (a.error) why.push(a.error);
  if (a.fallback_to) why.push(t('notify.fallback', { to: a.fallback_to }));
  if (a.retry_in_seconds) why.push(t('notify.retry_in', { s: Math.round(a.retry_in_seconds) }));
  const outcome = i18n.has(`notify.outcome.${a.outcome}`) ? t(`notify.outcome.${a.outcome}`) : a.outcome;
  return { cls: `outcome-${a.outcome}`, outcome, facts: facts.join(' · '), why: why.join(' · ') };
}

/** Detail shows one case at a time.
 *
 * Options: cases (the desk's Store, which takes every case read),
 * call(method, path) (the API with the token), authFailed(err) → whether err
 * signed the caller out, actions (the Actions that draw its buttons),
 * onLoaded() after a read changed the store. */
export class Detail {
  constructor({ cases, call, authFailed, actions, onLoaded }) {
    Object.assign(this, { cases, call, authFailed, actions, onLoaded });
    this.id = '';
    this.data = null; // the last answer of GET /v1/cases/{id}
    this.attempts = null; // of GET /v1/cases/{id}/notifications; null: none to show
    this.seq = 0;
    this.timer = 0;
  }

  /** open shows case id, read afresh. */
  async open(id) {
    if (!id) return;
    if (this.id !== id) {
      this.id = id;
      this.data = null;
      this.attempts = null;
      this.actions.reset();
      history.replaceState(null, '', location.pathname + location.search + hashWithCase(location.hash, id));
    }
    await this.refresh();
  }

  /** refresh reads the open case again and redraws it, returning it (null
   * when the read failed or was overtaken). Answers that arrive out of
   * order are dropped: only the latest request draws. */
  async refresh() {
    const id = this.id;
    if (!id) return null;
    const seq = ++this.seq;
    try {
      const c = await this.call('GET', '/v1/cases/' + encodeURIComponent(id));
      if (seq !== this.seq || id !== this.id) return null;
      // Who was told, through what, and whether it arrived. A hub without
      // notifications answers 404: the section stays hidden.
      let attempts = null;
      try {
        attempts = (await this.call('GET', '/v1/cases/' + encodeURIComponent(id) + '/notifications')).items || [];
      } catch (err) {
        if (this.authFailed(err)) return null;
      }
      if (seq !== this.seq || id !== this.id) return null;
      this.data = c;
      this.attempts = attempts;
      this.cases.apply(c);
      this.render();
      this.onLoaded();
      return c;
    } catch (err) {
      if (seq !== this.seq || id !== this.id) return null;
      if (this.authFailed(err)) return null;
      this.data = null;
      this.render(err.status === 404 ? t('detail.gone') : t('notice.network', { msg: err.message }));
      return null;
    }
  }

  /** follow takes a change of the live feed; one that touches the open
   * case brings a fresh read of it (with its history and what may be done
   * now) a moment later. */
  follow(change) {
    if (!needsRefresh(change, this.id, this.data?.version ?? 0)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), REFRESH_DELAY_MS);
  }

  stop() {
    clearTimeout(this.timer);
    this.id = '';
  }

  tick() {
    tick($('d-deadlines'));
  }

  /** render draws the open case, or problem (or a hint) without one. */
  render(problem) {
    const c = this.data;
    const section = $('detail');
    $('detail-body').hidden = !c;
    $('detail-empty').hidden = !!c;
    this.actions.render(c);
    if (!c) {
      delete section.dataset.caseId;
      delete section.dataset.version;
      delete section.dataset.status;
      $('detail-empty').textContent = problem || t(this.id ? 'detail.loading' : 'detail.empty');
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
    // A case a rule opened can have the rule's alert silenced from here.
    $('d-silence').hidden = !c.rule;

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
    renderHistory(c);
    renderNotifications(this.attempts);
  }
}

function fact(dl, key, value) {
  if (value === undefined || value === null || value === '') return;
  dl.append(el('dt', '', t(key)), el('dd', '', value));
}

// The deadlines: each part's accept and handle deadline (due time, its
// state on the escalation ladder, and its clock), or the case's own
// *_due_at where the parts carry none.
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
  const bits = [];
  if (d.state && i18n.has(`deadline.state.${d.state}`)) bits.push(t(`deadline.state.${d.state}`));
  if (d.allowed) bits.push(d.allowed + (d.in && i18n.has(`deadline.in.${d.in}`) ? ' ' + t(`deadline.in.${d.in}`) : ''));
  const label = `${i18n.deptName(p.department)} · ${deadlineLabel(what + '_due_at')}`;
  return deadlineItem(label, d.due_at, clockRuns(c, p, what) ? what : '', { text: bits.join(' · '), cls: `st-${d.state || ''}` });
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
      flags.append(el('span', 'flag flag-extension', t(`extension.${ext.state}`, { span })));
    }
    const note = [p.note, p.suspend_reason, p.rework_note].filter(Boolean).join(' · ');
    tr.append(who, el('td', `status st-${p.status}`, i18n.statusName(p.status)), el('td', 'when', when.join(' · ')), flags, el('td', 'note', note));
    return tr;
  });
  $('d-parts').replaceChildren(...rows);
}

function renderHistory(c) {
  const items = newestFirst(c.history).map((e) => {
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
    if (e.via) li.append(el('p', 'via', t('detail.history.via', { via: viaName(e.via) })));
    if (e.note) li.append(el('p', 'note', e.note));
    if (e.effect) li.append(el('p', 'effect', e.effect));
    return li;
  });
  if (items.length === 0) items.push(el('li', 'none', t('detail.history.empty')));
  $('d-history').replaceChildren(...items);
}

// viaName names the channel an action came through: notify:<receiver> is
// an acknowledgement link in a message of that receiver.
function viaName(via) {
  const [kind, rest] = String(via).split(':');
  return kind === 'notify' && rest ? t('detail.history.via.link', { receiver: rest }) : via;
}

function renderNotifications(attempts) {
  const section = $('d-notify');
  section.hidden = attempts === null;
  if (attempts === null) return;
  const items = [...attempts].reverse().map((a) => {
    const s = attemptSummary(a);
    const li = el('li', `attempt ${s.cls}`);
    li.dataset.outcome = a.outcome;
    li.dataset.receiver = a.receiver;
    li.append(el('time', 'at', i18n.full(a.at)), el('span', `outcome ${s.cls}`, s.outcome), el('span', 'facts', s.facts));
    if (s.why) li.append(el('p', 'why', s.why));
    return li;
  });
  if (items.length === 0) items.push(el('li', 'none', t('notify.none')));
  $('d-notifications').replaceChildren(...items);
}
