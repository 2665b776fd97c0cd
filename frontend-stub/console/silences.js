// The console's silences (静默): the ones that mute alerts now or will,
// a button to end each one set at run time, and a form to set one —
// roadworks on a street, a gauge under repair, a rule too noisy tonight.
// The hub checks every request (what may be matched, who may silence
// what, the end, the comment) and names the field it refuses; the page
// builds the request, shows each refusal beside its field, and never
// decides by itself what the hub would allow.

import * as i18n from '../i18n.js';
import { t } from '../i18n.js';
import { live, describeMatchers } from '../silences.js';
import { $, el, option, showError } from '../dom.js';

/** DURATIONS are the lengths the form offers, in hours; "until" takes an
 * end time instead. */
export const DURATIONS = Object.freeze([1, 2, 4, 8, 24]);
const DEFAULT_HOURS = 2;

// How often the list is read again while the console is open: a silence
// someone else set or ended shows within this.
const REFRESH_MS = 30000;

/** FIELDS are the form's fields that a refusal may point at. */
export const FIELDS = Object.freeze(['rule', 'district', 'street', 'duration', 'comment']);

// list splits what was typed into a matcher's values: one, or several
// separated by commas or spaces.
function list(s) {
  return String(s || '').split(/[\s,，、]+/).filter(Boolean);
}

/** silenceRequest turns the form as typed ({rule, district, street,
 * duration, until, comment}) into the body of POST /v1/silences, ending
 * duration hours after now (ms), or at until (a datetime-local value) when
 * duration is "until". Empty fields are left out and nothing is refused
 * here: the hub names what is missing. */
export function silenceRequest(f, now) {
  const matchers = {};
  for (const name of ['rule', 'district', 'street']) {
    const values = list(f[name]);
    if (values.length) matchers[name] = values;
  }
  const body = { matchers };
  let end = NaN;
  if (f.duration === 'until') end = f.until ? new Date(f.until).getTime() : NaN;
  else if (Number(f.duration) > 0) end = now + Number(f.duration) * 3600 * 1000;
  if (Number.isFinite(end)) body.ends_at = new Date(end).toISOString();
  body.comment = String(f.comment || '').trim();
  return body;
}

/** problemField returns the form field an API problem's field names
 * ("matchers.rule", "ends_at", "comment"…), or "" for one the form has
 * no field for. */
export function problemField(field) {
  switch (field) {
    case 'matchers.rule': return 'rule';
    case 'matchers.district': return 'district';
    case 'matchers.street': return 'street';
    case 'ends_at': case 'starts_at': return 'duration';
    case 'comment': return 'comment';
  }
  return '';
}

/** refusal words a failed request err (an ApiError) with the label key,
 * which takes {status, msg}. */
export function refusal(err, key) {
  if (err.status === 0) return t('silences.network', { msg: err.message });
  return t(key, { status: err.status, msg: err.message });
}

/** problemText says one problem of a refusal's details in the reader's
 * language, by its reason; a reason this page does not know is said in
 * the hub's own words. */
export function problemText(d) {
  const key = `silences.problem.${d.reason}`;
  if (typeof d.reason !== 'string' || !i18n.has(key)) return d.message;
  return t(key, { value: d.value ?? '', limit: d.limit ?? '' });
}

/** formProblems sorts the refusal err of POST /v1/silences onto the form:
 * {fields: {name: text}, general: text}. A 400 lists each problem by
 * field; those the form has no field for, and every other refusal (403,
 * 503, no hub), go to the general line with the hub's own message. */
export function formProblems(err) {
  const fields = {};
  const general = [];
  const details = Array.isArray(err.details) ? err.details.filter((d) => d && typeof d.message === 'string') : [];
  if (err.status === 400 && details.length) {
    for (const d of details) {
      const f = problemField(d.field);
      const text = problemText(d);
      if (f) fields[f] = fields[f] ? `${fields[f]}${t('silences.problem.sep')}${text}` : text;
      else general.push(d.field ? `${d.field}: ${text}` : text);
    }
    if (general.length) general.unshift(t('silences.refused.some'));
  } else {
    general.push(refusal(err, 'silences.refused'));
  }
  return { fields, general: general.join(' ') };
}

/** mayExpire reports whether a silence gets an expire button: one set at
 * run time that has not ended. A pack's own silence ends only with the
 * pack. Whether the caller may end it is the hub's to say. */
export function mayExpire(s) {
  return s.source === 'api' && s.state !== 'expired';
}

/** districtChoices returns the districts the form offers me ({role,
 * districts}) out of the catalog's codes: a dispatcher of some districts
 * only those, and must name one (any: false); anyone else every district,
 * or none (any: true). */
export function districtChoices(me, codes) {
  const mine = Array.isArray(me.districts) ? me.districts : [];
  if (me.role === 'dispatcher' && mine.length) {
    return { any: false, codes: [...codes.filter((c) => mine.includes(c)), ...mine.filter((c) => !codes.includes(c))] };
  }
  return { any: true, codes: [...codes] };
}

/** formFromCase is the form prefilled from a case to silence the alert
 * behind it: its rule, district and street. */
export function formFromCase(c) {
  return { rule: c.rule || '', district: c.district || '', street: c.location?.street || '' };
}

/** knownRules returns the rules the form suggests, sorted: those of the
 * cases the console holds and those the silences name. No API lists the
 * rules that run; the hub refuses a rule that does not. */
export function knownRules(cases, silences) {
  const rules = new Set();
  for (const c of cases || []) if (c?.rule) rules.add(c.rule);
  for (const s of silences || []) for (const r of [].concat(s?.matchers?.rule ?? [])) rules.add(r);
  return [...rules].sort();
}

const pad = (n) => String(n).padStart(2, '0');

/** localInput formats ms as a datetime-local input's value, to the minute. */
export function localInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Silences draws the console's silences section.
 *
 * Options: me (the token's claims), catalog ({districts}), cases (the
 * desk's Store, whose rules the form suggests), call(method, path, body)
 * (the API with the token), authFailed(err) → whether err signed the
 * caller out, onCount(n) with the number of silences active now after
 * each read, signal (an AbortSignal that removes the listeners). */
export class Silences {
  constructor({ me, catalog, cases, call, authFailed, onCount, signal }) {
    Object.assign(this, { me, catalog, cases, call, authFailed, onCount });
    this.items = []; // the last answer of GET /v1/silences
    this.loaded = false;
    this.busy = false;
    this.seq = 0;
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    $('sil-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    }, { signal });
    $('sil-duration').addEventListener('change', () => this.showUntil(), { signal });
    $('sil-reset').addEventListener('click', () => this.clear(), { signal });
    $('sil-list').addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-expire]');
      if (b) this.expire(b.dataset.expire, b);
    }, { signal });
  }

  /** stop ends the reading; a read under way draws nothing. */
  stop() {
    clearInterval(this.timer);
    this.seq++;
  }

  /** fill draws the form's choices, keeping what is chosen. */
  fill() {
    const choice = districtChoices(this.me, this.catalog.districts.map((d) => d.code));
    const district = $('sil-district').value || (choice.any ? '' : choice.codes[0]);
    const codes = district && !choice.codes.includes(district) ? [...choice.codes, district] : choice.codes;
    $('sil-district').replaceChildren(
      ...(choice.any ? [option('', t('silences.district.any'))] : []),
      ...codes.map((c) => option(c, i18n.districtName(c), c === district)),
    );
    const duration = $('sil-duration').value || String(DEFAULT_HOURS);
    $('sil-duration').replaceChildren(
      ...DURATIONS.map((h) => option(String(h), t('silences.hours', { n: h }), String(h) === duration)),
      option('until', t('silences.until'), duration === 'until'),
    );
    $('sil-rules').replaceChildren(...knownRules(this.cases.values(), this.items).map((r) => option(r, r)));
    this.showUntil();
  }

  showUntil() {
    const until = $('sil-duration').value === 'until';
    $('sil-until').hidden = !until;
    if (until && !$('sil-until').value) $('sil-until').value = localInput(Date.now() + DEFAULT_HOURS * 3600 * 1000);
  }

  /** prefill puts f ({rule, district, street}) into the form and asks for
   * the comment. */
  prefill(f) {
    this.clear();
    hideNotice();
    $('sil-rule').value = f.rule || '';
    $('sil-street').value = f.street || '';
    if (f.district) {
      $('sil-district').value = f.district;
      if ($('sil-district').value !== f.district) {
        $('sil-district').append(option(f.district, i18n.districtName(f.district), true));
      }
    }
    $('sil-comment').focus();
  }

  /** clear empties the form and what was said about it. */
  clear() {
    for (const id of ['sil-rule', 'sil-street', 'sil-comment', 'sil-until']) $(id).value = '';
    $('sil-district').value = '';
    $('sil-duration').value = String(DEFAULT_HOURS);
    this.fill();
    this.showProblems({ fields: {}, general: '' });
  }

  showProblems({ fields, general }) {
    for (const f of FIELDS) {
      const box = $('sil-form').querySelector(`[data-field="${f}"]`);
      showError(box.querySelector('[data-error-for]'), fields[f] || '');
      box.classList.toggle('invalid', !!fields[f]);
      for (const c of box.querySelectorAll('input, select, textarea')) {
        if (fields[f]) c.setAttribute('aria-invalid', 'true');
        else c.removeAttribute('aria-invalid');
      }
    }
    showError($('sil-error'), general);
  }

  /** refresh reads the silences again and redraws them; only the latest
   * read draws. */
  async refresh() {
    const seq = ++this.seq;
    try {
      const answer = await this.call('GET', '/v1/silences');
      if (seq !== this.seq) return;
      this.items = Array.isArray(answer?.items) ? answer.items : [];
      this.loaded = true;
      showError($('sil-list-error'), '');
      this.render();
    } catch (err) {
      if (seq !== this.seq || this.authFailed(err)) return;
      showError($('sil-list-error'), refusal(err, 'silences.load.failed'));
    }
  }

  render() {
    const shown = live(this.items);
    const active = shown.filter((s) => s.state === 'active').length;
    this.onCount(active);
    $('sil-count').textContent = t('silences.count', { n: active });
    $('sil-list').replaceChildren(...shown.map((s) => this.row(s)));
    $('sil-empty').hidden = !this.loaded || shown.length > 0;
    $('sil-rules').replaceChildren(...knownRules(this.cases.values(), this.items).map((r) => option(r, r)));
  }

  row(s) {
    const li = el('li', `silence st-${s.state} src-${s.source}`);
    li.dataset.silenceId = s.id;
    li.dataset.state = s.state;
    li.dataset.source = s.source;
    const head = el('div', 'head');
    head.append(el('span', `state st-${s.state}`, t(`silences.state.${s.state}`)));
    const what = el('span', 'what');
    const parts = describeMatchers(s.matchers);
    if (parts.length === 0) what.append(el('span', 'm all', t('silence.all')));
    for (const p of parts) {
      const m = el('span', `m m-${p.name}`);
      m.dataset.matcher = p.name;
      m.append(el('span', 'k', p.label), document.createTextNode(' ' + p.text));
      what.append(m);
    }
    head.append(what);
    li.append(head);
    if (s.comment) li.append(el('p', 'comment', s.comment));

    const meta = el('div', 'meta');
    meta.append(el('span', 'span', s.state === 'pending'
      ? t('silences.from.until', { from: i18n.when(s.starts_at), until: i18n.when(s.ends_at) })
      : t('silences.until.at', { t: i18n.when(s.ends_at) })));
    meta.lastChild.title = `${i18n.full(s.starts_at)} → ${i18n.full(s.ends_at)}`;
    const who = [s.created_by, s.creator_role ? i18n.roleName(s.creator_role) : '', s.creator_department ? i18n.deptName(s.creator_department) : ''].filter(Boolean).join(' · ');
    if (who) meta.append(el('span', 'by', t('silences.by', { who })));
    if (s.source === 'pack') {
      const flag = el('span', 'flag flag-pack', t('silences.pack', { pack: s.pack || '?' }));
      flag.title = t('silences.pack.title');
      meta.append(flag);
    }
    if (s.forced) meta.append(el('span', 'flag flag-forced', t('silence.all')));
    meta.append(el('code', 'id', s.id));
    li.append(meta);

    if (mayExpire(s)) {
      const b = el('button', 'danger expire', t('silences.expire'));
      b.type = 'button';
      b.dataset.expire = s.id;
      li.append(b);
    }
    const error = el('p', 'error', '');
    error.hidden = true;
    error.setAttribute('role', 'alert');
    li.append(error);
    return li;
  }

  readForm() {
    return {
      rule: $('sil-rule').value,
      district: $('sil-district').value,
      street: $('sil-street').value,
      duration: $('sil-duration').value,
      until: $('sil-until').value,
      comment: $('sil-comment').value,
    };
  }

  async submit() {
    if (this.busy) return;
    this.showProblems({ fields: {}, general: '' });
    hideNotice();
    this.busy = true;
    $('sil-submit').disabled = true;
    try {
      const s = await this.call('POST', '/v1/silences', silenceRequest(this.readForm(), Date.now()));
      showNotice(t('silences.created', { id: s?.id ?? '?', until: i18n.when(s?.ends_at) }));
      this.clear();
      await this.refresh();
    } catch (err) {
      if (this.authFailed(err)) return;
      const problems = formProblems(err);
      this.showProblems(problems);
      const first = FIELDS.find((f) => problems.fields[f]);
      if (first) $('sil-form').querySelector(`[data-field="${first}"]`).querySelector('input:not([hidden]), select, textarea')?.focus();
    } finally {
      this.busy = false;
      $('sil-submit').disabled = false;
    }
  }

  async expire(id, button) {
    const row = button.closest('li');
    const line = row.querySelector('p.error');
    showError(line, '');
    hideNotice();
    button.disabled = true;
    try {
      await this.call('POST', `/v1/silences/${encodeURIComponent(id)}/expire`, {});
      showNotice(t('silences.expired', { id }));
      await this.refresh();
    } catch (err) {
      if (this.authFailed(err)) return;
      const text = refusal(err, 'silences.expire.failed');
      if (err.status === 409 || err.status === 404) {
        // Already ended, or out of sight: the list was out of date, and
        // the row goes with the next read.
        showNotice(text, 'error');
        await this.refresh();
        return;
      }
      button.disabled = false;
      showError(line, text);
    }
  }
}

function showNotice(text, kind = 'done') {
  $('sil-notice').dataset.kind = kind;
  $('sil-notice-text').textContent = text;
  $('sil-notice').hidden = false;
}

function hideNotice() {
  $('sil-notice').hidden = true;
}
