// What both pages read off a case or an alert: the deadline that runs now,
// the flags worth a badge, and live countdowns that tick once a second
// without redrawing the page.

import { t, countdown } from './i18n.js';
import { OPEN_STATUSES, SEVERITIES } from './enums.js';

/** A deadline closer than this is "due soon". */
export const SOON_MS = 15 * 60 * 1000;

export const isOpen = (c) => OPEN_STATUSES.includes(c.status);

export function severityRank(s) {
  const i = SEVERITIES.indexOf(s);
  return i < 0 ? SEVERITIES.length : i;
}

function time(iso) {
  if (!iso) return NaN;
  return new Date(iso).getTime();
}

/** suspended reports whether a case's clock stands still: every open
 * part of it is suspended. Suspension belongs to a part (its suspended
 * flag), never to the case: there is no "suspended" case status. */
export function suspended(c) {
  const open = (c.parts || []).filter((p) => p.status !== 'handled');
  return open.length > 0 && open.every((p) => p.suspended);
}

// partDue returns the due time (ms) of a part's deadline for what, from
// its accept_deadline / handle_deadline, or NaN.
function partDue(p, what) {
  return time(p[`${what}_deadline`]?.due_at ?? p[`${what}_due_at`]);
}

/** dueOf returns the deadline that runs now for a case — {at (ms), what
 * ("accept" or "handle"), department} — the earliest of its parts' running
 * deadlines when the parts carry their own, else the case's; null when
 * none runs. */
export function dueOf(c) {
  if (!isOpen(c) || suspended(c)) return null;
  let best = null;
  let partsHaveDeadlines = false;
  const consider = (at, what, department) => {
    if (Number.isFinite(at) && (best === null || at < best.at)) best = { at, what, department };
  };
  for (const p of c.parts || []) {
    if (p.accept_deadline || p.handle_deadline) partsHaveDeadlines = true;
    if (p.suspended) continue;
    if (p.status === 'dispatched') consider(partDue(p, 'accept'), 'accept', p.department);
    else if (p.status === 'accepted') consider(partDue(p, 'handle'), 'handle', p.department);
  }
  if (best || partsHaveDeadlines) return best;
  if (c.status === 'dispatched') consider(time(c.accept_due_at), 'accept');
  if (c.status === 'accepted') consider(time(c.handle_due_at), 'handle');
  return best;
}

/** byUrgency sorts cases: overdue first (the latest first), then by the
 * nearest deadline, then those without one. */
export function byUrgency(a, b) {
  const da = dueOf(a)?.at ?? Infinity;
  const db = dueOf(b)?.at ?? Infinity;
  return da - db || String(b.created_at || '').localeCompare(String(a.created_at || ''));
}

/** escalation returns a case's escalation level, 0 when none. */
export function escalation(c) {
  const n = c.escalation_level ?? c.escalation?.level;
  return typeof n === 'number' ? n : 0;
}

/** caseFlags lists the badges of a case or of one part: [{key, text}]. */
/** signedParts counts the parts of a dispatched case that their
 * departments signed for (accepted, or already further), out of all: a case
 * moves on to "accepted" only once every part is, and until then the wall
 * shows how far it got. Null for a case of one part or none. */
export function signedParts(c) {
  const parts = c.parts || [];
  if (parts.length < 2) return null;
  const signed = parts.filter((p) => p.status && p.status !== 'new' && p.status !== 'dispatched').length;
  return { signed, total: parts.length };
}

export function caseFlags(c) {
  const flags = [];
  const parts = c.parts || [];
  if (suspended(c) || c.suspended) flags.push({ key: 'suspended', text: t('flag.suspended') });
  if (c.warned) flags.push({ key: 'warned', text: t('flag.warned') });
  const lvl = escalation(c);
  if (lvl > 0) flags.push({ key: 'escalated', text: t('flag.escalated', { n: lvl }) });
  if (c.arbitration) flags.push({ key: 'arbitration', text: t('flag.arbitration') });
  if (c.extension?.state === 'pending' || parts.some((p) => p.extension?.state === 'pending')) {
    flags.push({ key: 'extension', text: t('flag.extension') });
  }
  if (c.rework_count > 0) flags.push({ key: 'rework', text: t('flag.rework', { n: c.rework_count }) });
  if (c.merged_into) flags.push({ key: 'merged', text: t('flag.merged', { id: c.merged_into }) });
  if (c.linked_into) flags.push({ key: 'linked', text: t('flag.linked', { id: c.linked_into }) });
  if (c.linked?.length) flags.push({ key: 'linked-parts', text: t('flag.linked_parts', { n: c.linked.length }) });
  return flags;
}

/** muted says why an alert is shown dimmed: "silenced", "inhibited",
 * "shadow" or "" when it is not. */
export function muted(a) {
  if (a.silenced_by?.length) return 'silenced';
  if (a.inhibited_by?.length) return 'inhibited';
  if (a.shadow) return 'shadow';
  return '';
}

/** dueCell fills el with a case's running deadline and marks it for
 * tick(); it returns the deadline. */
export function dueCell(el, c) {
  const due = dueOf(c);
  if (due) {
    el.dataset.due = String(due.at);
    el.dataset.what = due.what;
  } else {
    delete el.dataset.due;
    delete el.dataset.what;
    delete el.dataset.urgency;
    el.classList.remove('overdue', 'soon');
    const text = suspended(c) ? t('due.suspended') : t('due.none');
    if (el.childElementCount === 2) {
      el.children[0].textContent = '';
      el.children[1].textContent = text;
    } else {
      el.textContent = text;
    }
  }
  tickOne(el, Date.now());
  return due;
}

/** urgency grades a deadline by the time left (ms): "overdue", "soon"
 * (within SOON_MS) or "ok". */
export function urgency(left) {
  return left < 0 ? 'overdue' : left < SOON_MS ? 'soon' : 'ok';
}

/** dueText words the deadline for what ("accept" or "handle") with left
 * ms to go (negative: overdue by that much): line is the one-line form
 * ("签收 剩 9:59"), label and time the two-line one ("签收剩余" above
 * "9:59"). */
export function dueText(what, left) {
  const w = t(`due.${what}`);
  const time = countdown(left);
  return {
    line: t(left >= 0 ? 'due.left' : 'due.over', { what: w, t: time }),
    label: t(left >= 0 ? 'due.label.left' : 'due.label.over', { what: w }),
    time,
  };
}

// A countdown is one line, or two when the element has two children: the
// label above and the time below.
function tickOne(el, now) {
  if (!el.dataset.due) return false;
  const left = Number(el.dataset.due) - now;
  const text = dueText(el.dataset.what, left);
  if (el.childElementCount === 2) {
    const [label, time] = el.children;
    if (label.textContent !== text.label) label.textContent = text.label;
    if (time.textContent !== text.time) time.textContent = text.time;
  } else if (el.textContent !== text.line) {
    el.textContent = text.line;
  }
  const state = urgency(left);
  const was = el.dataset.urgency;
  el.dataset.urgency = state;
  el.classList.toggle('overdue', state === 'overdue');
  el.classList.toggle('soon', state === 'soon');
  return was !== undefined && was !== state;
}

/** tick updates every countdown under root; it returns whether one of
 * them crossed into "soon" or "overdue", so that the page can re-sort. */
export function tick(root = document) {
  const now = Date.now();
  let crossed = false;
  for (const el of root.querySelectorAll('[data-due]')) crossed = tickOne(el, now) || crossed;
  return crossed;
}
