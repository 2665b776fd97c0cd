// The console's actions on the open case: a button for exactly each entry
// of the case's allowed_actions — the hub decides who may do what, the page
// only draws it — the note and the other fields an action needs, and the
// request. Every request carries the version the page showed and a fresh
// request id; when someone else changed the case first the hub answers 409,
// and the page reads the case again and says so.

import * as i18n from '../i18n.js';
import { t } from '../i18n.js';
import { requestID } from '../session.js';
import { $, el, option, showError } from '../dom.js';

// The form fields an action may ask for in its needs, beyond the note.
const FIELDS = ['lead', 'assist', 'case_class', 'sla', 'into', 'extend_by', 'until'];

/** offered returns the well-formed entries of a case's allowed_actions,
 * or null when the hub did not say what is allowed: such a case gets no
 * buttons rather than buttons that may be refused. */
export function offered(allowed) {
  if (!Array.isArray(allowed)) return null;
  return allowed.filter((opt) => opt && typeof opt.action === 'string');
}

/** optionKey names one entry of allowed_actions. */
export function optionKey(opt) {
  return [opt.action, opt.outcome || '', opt.department || ''].join('/');
}

/** isDanger reports whether an action undoes or refuses work, for a
 * button that looks the part. */
export function isDanger(opt) {
  return opt.action === 'cancel' || opt.outcome === 'fail' || opt.action === 'return' || opt.action === 'refuse_extension';
}

/** actionLabel names opt among allowed for the caller me. The department
 * is named when the caller could mistake whose part the action is on: the
 * same action is offered for several parts, or the caller is not that
 * department. */
export function actionLabel(opt, allowed, me) {
  const name = i18n.actionName(opt.action, opt.outcome);
  const same = (allowed || []).filter((o) => o.action === opt.action && (o.outcome || '') === (opt.outcome || ''));
  return opt.department && (same.length > 1 || me.role !== 'department') && me.dept !== opt.department
    ? t('action.for', { action: name, dept: i18n.deptName(opt.department) })
    : name;
}

/** actionFields checks the form f ({note, lead, assist, caseClass,
 * slaAccept, slaHandle, into, extendBy, until}, as typed) against what opt
 * needs and returns the fields of the request, or throws an Error saying
 * what is missing. label names the action in that message. */
export function actionFields(opt, f, label) {
  const body = {};
  const needs = new Set(opt.needs || []);
  const note = (f.note || '').trim();
  if (opt.needs_note && !note) throw new Error(t('field.note.required', { action: label }));
  if (note) body.note = note;
  if (needs.has('lead')) {
    body.lead = f.lead || '';
    if (!body.lead) throw new Error(t('field.required', { field: t('field.lead') }));
  }
  if (needs.has('assist')) {
    const assist = (f.assist || []).filter((d) => d !== body.lead);
    if (assist.length) body.assist = assist;
  }
  if (needs.has('case_class') && f.caseClass) body.case_class = f.caseClass;
  if (needs.has('sla')) {
    const accept = (f.slaAccept || '').trim();
    const handle = (f.slaHandle || '').trim();
    if (accept || handle) body.sla = { ...(accept && { accept }), ...(handle && { handle }) };
  }
  if (needs.has('into')) {
    body.into = (f.into || '').trim();
    if (!body.into) throw new Error(t('field.required', { field: t('field.into') }));
  }
  if (needs.has('extend_by') || needs.has('until')) {
    const by = (f.extendBy || '').trim();
    if (by) body.extend_by = by;
    else if (f.until) body.until = new Date(f.until).toISOString();
    else throw new Error(t('field.extension.required'));
  }
  return body;
}

/** actionRequest is the body of POST /v1/cases/{id}/actions for opt on
 * case c as shown: the version the page showed and a fresh request id, so
 * that the hub refuses it if the case moved on and never applies it twice. */
export function actionRequest(opt, c, fields, requestId) {
  const body = { action: opt.action, expected_version: c.version, request_id: requestId, ...fields };
  if (opt.department) body.department = opt.department;
  if (opt.outcome === 'pass' || opt.outcome === 'fail') body.pass = opt.outcome === 'pass';
  return body;
}

/** refusalNotice says how a refusal err of an action on version shown
 * went, now that the case is at version now: {kind, text}. */
export function refusalNotice(err, shown, now) {
  if (err.status === 409) {
    return {
      kind: 'conflict',
      text: err.code === 'version_conflict'
        ? t('notice.conflict', { old: shown, new: now })
        : t('notice.conflict.transition', { msg: err.message, new: now }),
    };
  }
  if (err.status === 0) return { kind: 'error', text: t('notice.network', { msg: err.message }) };
  return { kind: 'error', text: t('notice.error', { status: err.status, msg: err.message }) };
}

/** Actions draws the buttons of the open case and sends what is clicked.
 *
 * Options: me (the token's claims), catalog ({departments, case_classes}),
 * cases (the desk's Store), call(method, path, body) (the API with the
 * token), authFailed(err) → whether err signed the caller out, reload() →
 * the case read again (or null), signal (an AbortSignal that removes the
 * listeners). */
export class Actions {
  constructor({ me, catalog, cases, call, authFailed, reload, signal }) {
    Object.assign(this, { me, catalog, cases, call, authFailed, reload });
    this.current = null; // the case the buttons are for
    this.byKey = new Map(); // its offered actions by optionKey
    this.busy = false;
    // The action whose extra fields are showing, waiting for a second
    // click to confirm.
    this.armed = '';
    $('act-form').addEventListener('submit', (ev) => ev.preventDefault(), { signal });
    // One listener for every button, so that a button kept across a redraw
    // acts on the case as now shown.
    $('actions').addEventListener('click', (ev) => {
      const opt = this.byKey.get(ev.target.closest('button[data-key]')?.dataset.key);
      if (opt) this.act(opt);
    }, { signal });
    $('act-cancel').addEventListener('click', () => this.disarm(), { signal });
    $('notice-close').addEventListener('click', () => hideNotice(), { signal });
  }

  /** reset forgets what was typed and said about another case. */
  reset() {
    this.current = null;
    this.armed = '';
    $('note').value = '';
    hideNotice();
    showError($('act-error'), '');
  }

  label(opt) {
    return actionLabel(opt, this.current?.allowed_actions, this.me);
  }

  // Actions that need more than a note (dispatch: lead and assist; merge:
  // the target; an extension: how long) take two clicks: the first shows
  // their fields, the second sends. Only the fields of the armed action
  // show.
  render(c) {
    this.current = c;
    if (!c) return;
    const opts = offered(c.allowed_actions);
    const none = $('actions-none');
    const buttons = [];
    let armed = null;
    this.byKey = new Map();
    for (const opt of opts || []) {
      const key = optionKey(opt);
      const isArmed = this.armed === key;
      if (isArmed) armed = opt;
      this.byKey.set(key, opt);
      const label = isArmed ? t('act.confirm', { action: this.label(opt) }) : this.label(opt);
      const b = el('button', `${isDanger(opt) ? 'danger' : 'primary'}${isArmed ? ' armed' : ''}`, label);
      b.type = 'button';
      b.dataset.key = key;
      b.dataset.action = opt.action;
      if (opt.outcome) b.dataset.outcome = opt.outcome;
      if (opt.department) b.dataset.department = opt.department;
      if (opt.needs_note) b.dataset.needsNote = 'true';
      if (opt.needs?.length) b.dataset.needs = opt.needs.join(' ');
      b.disabled = this.busy;
      buttons.push(b);
    }
    none.textContent = t(opts ? 'detail.actions.none' : 'detail.actions.unknown');
    none.hidden = !!opts && buttons.length > 0;
    if (!armed) this.armed = '';
    // A fresh read of the case that offers the same buttons keeps the ones
    // on the page: one being clicked or focused is not swapped for its twin.
    const shown = $('actions').children;
    if (buttons.length !== shown.length || buttons.some((b, i) => !b.isEqualNode(shown[i]))) {
      $('actions').replaceChildren(...buttons);
    }
    $('act-form').querySelector('[data-field="note"]').hidden = buttons.length === 0;
    const needed = new Set(armed?.needs || []);
    for (const f of FIELDS) {
      const box = $('act-form').querySelector(`[data-field="${f}"]`);
      if (box) box.hidden = !needed.has(f);
    }
    if (needed.has('lead') || needed.has('assist')) this.fillDepartments(c);
    if (needed.has('case_class')) this.fillClasses();
    $('act-cancel').hidden = !armed;
  }

  fillDepartments(c) {
    const departments = this.catalog.departments;
    const lead = $('a-lead').value || c.lead || '';
    $('a-lead').replaceChildren(option('', '—'), ...departments.map((d) => option(d.code, i18n.deptName(d.code), d.code === lead)));
    const chosen = new Set([...$('a-assist').querySelectorAll('input:checked')].map((i) => i.value));
    if (chosen.size === 0) for (const a of c.assist || []) chosen.add(a);
    $('a-assist').replaceChildren(...departments.map((d) => {
      const label = el('label', 'check');
      const box = el('input');
      box.type = 'checkbox';
      box.value = d.code;
      box.checked = chosen.has(d.code);
      label.append(box, document.createTextNode(' ' + i18n.deptName(d.code)));
      return label;
    }));
  }

  fillClasses() {
    const have = $('a-class').value;
    const names = Object.keys(this.catalog.case_classes || {}).sort();
    $('a-class').replaceChildren(option('', t('field.case_class.default')), ...names.map((n) => option(n, n, n === have)));
  }

  disarm() {
    this.armed = '';
    showError($('act-error'), '');
    if (this.current) this.render(this.current);
  }

  setBusy(busy) {
    this.busy = busy;
    for (const b of $('actions').querySelectorAll('button')) b.disabled = busy;
  }

  async act(opt) {
    const c = this.current;
    if (!c || this.busy) return;
    showError($('act-error'), '');
    if (opt.needs?.length && this.armed !== optionKey(opt)) {
      this.armed = optionKey(opt);
      this.render(c);
      $('act-form').querySelector('.field:not([hidden]):not([data-field="note"]) input, .field:not([hidden]):not([data-field="note"]) select')?.focus();
      return;
    }
    const label = this.label(opt);
    let fields;
    try {
      fields = actionFields(opt, readForm(), label);
    } catch (err) {
      showError($('act-error'), err.message);
      if (opt.needs_note && !$('note').value.trim()) $('note').focus();
      return;
    }
    this.setBusy(true);
    try {
      const after = await this.call('POST', `/v1/cases/${encodeURIComponent(c.id)}/actions`, actionRequest(opt, c, fields, requestID()));
      if (after) this.cases.apply(after);
      this.armed = '';
      $('note').value = '';
      showNotice('done', t('notice.done', { action: label, n: after?.version ?? '?' }));
      await this.reload();
    } catch (err) {
      if (this.authFailed(err)) return;
      // Someone was faster, or the case moved on: read it again and say so
      // rather than leave the page showing what is no longer true.
      const fresh = err.status === 409 ? await this.reload() : null;
      const { kind, text } = refusalNotice(err, c.version, fresh?.version ?? '?');
      showNotice(kind, text);
    } finally {
      this.setBusy(false);
    }
  }
}

// readForm reads the action form as typed.
function readForm() {
  return {
    note: $('note').value,
    lead: $('a-lead').value,
    assist: [...$('a-assist').querySelectorAll('input:checked')].map((i) => i.value),
    caseClass: $('a-class').value,
    slaAccept: $('a-sla-accept').value,
    slaHandle: $('a-sla-handle').value,
    into: $('a-into').value,
    extendBy: $('a-extend-by').value,
    until: $('a-until').value,
  };
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
