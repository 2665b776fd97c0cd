// The console's queue: the cases the signed-in caller may see that the
// filters let through, open ones first and the nearest deadline first. The
// live snapshot holds the open cases; closed or cancelled ones are read from
// the API when the status filter asks for them.

import * as i18n from '../i18n.js';
import { t } from '../i18n.js';
import { CASE_STATUSES, OPEN_STATUSES } from '../enums.js';
import { isOpen, dueOf, byUrgency, caseFlags, dueCell, tick } from '../cases.js';
import { $, el, option } from '../dom.js';

const MAX_ROWS = 200;
const LIST_LIMIT = 100;

/** STATUS_FILTERS are the choices of the status filter: every open case,
 * each status by itself, or any case. */
export const STATUS_FILTERS = Object.freeze(['open', ...CASE_STATUSES, 'any']);

/** involves reports whether dept has a part in case c. */
export function involves(c, dept) {
  return c.lead === dept || (c.assist || []).includes(dept) || (c.parts || []).some((p) => p.department === dept);
}

/** matches reports whether case c passes the filters f ({status, district,
 * department, overdue}) at now (ms). */
export function matches(c, f, now) {
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

/** queueOrder sorts open cases before the others, each by urgency. */
export function queueOrder(a, b) {
  return isOpen(a) === isOpen(b) ? byUrgency(a, b) : isOpen(a) ? -1 : 1;
}

/** selectQueue returns the cases that pass f at now, in queue order. */
export function selectQueue(cases, f, now) {
  return cases.filter((c) => matches(c, f, now)).sort(queueOrder);
}

/** liveFilter is the part of f the gateway applies; statuses and
 * "overdue" are applied here. */
export function liveFilter(f) {
  return { districts: f.district ? [f.district] : [], departments: f.department ? [f.department] : [] };
}

/** listQuery returns the query of GET /v1/cases for the closed or
 * cancelled cases f asks for, or "" when the live snapshot, which holds
 * only open cases, has them all. */
export function listQuery(f, limit = LIST_LIMIT) {
  if (f.status === 'open' || OPEN_STATUSES.includes(f.status)) return '';
  const q = new URLSearchParams({ limit: String(limit) });
  if (f.status !== 'any') q.set('status', f.status);
  if (f.district) q.set('district', f.district);
  if (f.department) q.set('department', f.department);
  return q.toString();
}

/** Queue draws the queue and its filters for one signed-in caller.
 *
 * Options: me (the token's claims), catalog ({districts, departments}),
 * cases (the desk's Store), call(method, path) (the API with the token),
 * authFailed(err) → whether err signed the caller out, onOpen(id) when a
 * row is picked, onFilters(f) after the filters changed, signal (an
 * AbortSignal that removes the listeners). */
export class Queue {
  constructor({ me, catalog, cases, call, authFailed, onOpen, onFilters, signal }) {
    Object.assign(this, { me, catalog, cases, call, authFailed });
    this.selected = '';
    this.fetchSeq = 0;
    this.queued = false;
    for (const id of ['f-status', 'f-district', 'f-department', 'f-overdue']) {
      $(id).addEventListener('change', () => {
        const f = this.filters();
        onFilters(f);
        this.fetchClosed(f);
        this.render();
      }, { signal });
    }
    $('queue').addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr[data-case-id]');
      if (tr) onOpen(tr.dataset.caseId);
    }, { signal });
    $('queue').addEventListener('keydown', (ev) => {
      const tr = ev.target.closest('tr[data-case-id]');
      if (tr && (ev.key === 'Enter' || ev.key === ' ')) {
        ev.preventDefault();
        onOpen(tr.dataset.caseId);
      }
    }, { signal });
  }

  /** fillFilters draws the filters' choices, keeping what is chosen. */
  fillFilters() {
    const { me, catalog } = this;
    const status = $('f-status').value || 'open';
    $('f-status').replaceChildren(...STATUS_FILTERS.map((s) => option(s, s === 'open' ? t('filter.open') : s === 'any' ? t('filter.any') : i18n.statusName(s), s === status)));

    // The district choices follow the token's districts, for display only:
    // the hub decides what the caller sees.
    const district = $('f-district').value;
    const scoped = Array.isArray(me.districts) && me.districts.length && me.role !== 'department' && me.role !== 'commander';
    const districts = catalog.districts.filter((d) => !scoped || me.districts.includes(d.code));
    $('f-district').replaceChildren(option('', t('filter.any')), ...districts.map((d) => option(d.code, i18n.districtName(d.code), d.code === district)));

    if (me.role === 'department') {
      // A department sees its own cases only; the hub narrows, the page says so.
      $('f-department').replaceChildren(option(me.dept, i18n.deptName(me.dept), true));
      $('f-department').disabled = true;
    } else {
      const dept = $('f-department').value;
      $('f-department').replaceChildren(option('', t('filter.any')), ...catalog.departments.map((d) => option(d.code, i18n.deptName(d.code), d.code === dept)));
    }
  }

  /** filters reads the filters: {status, district, department, overdue}. */
  filters() {
    return {
      status: $('f-status').value || 'open',
      district: $('f-district').value,
      department: this.me.role === 'department' ? '' : $('f-department').value,
      overdue: $('f-overdue').checked,
    };
  }

  /** fetchClosed reads the closed or cancelled cases f asks for into the
   * store. Only the latest request draws. */
  async fetchClosed(f) {
    const query = listQuery(f);
    if (!query) return;
    const seq = ++this.fetchSeq;
    try {
      const page = await this.call('GET', '/v1/cases?' + query);
      if (seq !== this.fetchSeq) return;
      for (const c of page?.items || []) this.cases.apply(c);
      this.render();
    } catch (err) {
      if (!this.authFailed(err)) console.warn('cannot list cases:', err.message);
    }
  }

  /** changed redraws the queue a moment later, so that a burst of live
   * changes costs one drawing. */
  changed() {
    if (this.queued) return;
    this.queued = true;
    setTimeout(() => {
      this.queued = false;
      this.render();
    }, 50);
  }

  render() {
    const list = selectQueue(this.cases.values(), this.filters(), Date.now());
    $('queue').replaceChildren(...list.slice(0, MAX_ROWS).map((c) => this.row(c)));
    $('queue-count').textContent = t('queue.count', { n: list.length });
    $('queue-empty').hidden = list.length > 0;
    $('queue-more').hidden = list.length <= MAX_ROWS;
    $('queue-more').textContent = t('queue.more', { n: MAX_ROWS });
  }

  row(c) {
    const tr = el('tr', `case st-${c.status}${c.id === this.selected ? ' selected' : ''}`);
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

  /** select marks the row of the open case. */
  select(id) {
    if (id === this.selected) return;
    this.selected = id;
    for (const tr of $('queue').querySelectorAll('tr.selected')) tr.classList.remove('selected');
    $('queue').querySelector(`tr[data-case-id="${CSS.escape(id)}"]`)?.classList.add('selected');
  }

  /** tick runs the countdowns; a case that crosses into "overdue" under
   * the overdue filter redraws the queue. */
  tick() {
    if (tick($('queue')) && $('f-overdue').checked) this.render();
  }
}
