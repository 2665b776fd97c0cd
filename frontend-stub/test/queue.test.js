// The console's queue: which cases the filters let through, in what order,
// and what it asks the gateway and the API for.

import test from 'node:test';
import assert from 'node:assert/strict';
import { STATUS_FILTERS, involves, matches, queueOrder, selectQueue, liveFilter, listQuery } from '../console/queue.js';
import { CASE_STATUSES } from '../enums.js';

const NOW = Date.parse('2025-07-01T08:00:00Z');
const at = (minutes) => new Date(NOW + minutes * 60000).toISOString();

// kase makes a case; due is the minutes to its running accept deadline
// (negative: overdue), or null for none.
function kase(id, status, { district = 'xuhui', lead = 'water-affairs', assist = [], due = null, created = 0 } = {}) {
  const parts = [{ department: lead, lead: true, status }];
  if (due !== null) parts[0].accept_deadline = { due_at: at(due), state: 'running' };
  for (const a of assist) parts.push({ department: a, lead: false, status });
  return { id, version: 1, status, district, lead, assist, parts, created_at: at(created) };
}

const all = { status: 'any', district: '', department: '', overdue: false };

test('the status filter offers every status of the proto, all open ones and any', () => {
  assert.deepEqual(STATUS_FILTERS, ['open', ...CASE_STATUSES, 'any']);
  assert.ok(!STATUS_FILTERS.includes('suspended'));
});

test('the open filter keeps the open cases only', () => {
  const cases = ['new', 'dispatched', 'accepted', 'handled', 'closed', 'cancelled'].map((s) => kase(s, s));
  assert.deepEqual(cases.filter((c) => matches(c, { ...all, status: 'open' }, NOW)).map((c) => c.id), ['new', 'dispatched', 'accepted', 'handled']);
  assert.deepEqual(cases.filter((c) => matches(c, { ...all, status: 'closed' }, NOW)).map((c) => c.id), ['closed']);
  assert.equal(cases.filter((c) => matches(c, all, NOW)).length, cases.length);
});

test('district, department and overdue narrow the queue', () => {
  const c = kase('c', 'dispatched', { district: 'pudong', lead: 'drainage', assist: ['traffic-police'], due: -1 });
  assert.ok(matches(c, { ...all, district: 'pudong' }, NOW));
  assert.ok(!matches(c, { ...all, district: 'xuhui' }, NOW));
  assert.ok(matches(c, { ...all, department: 'traffic-police' }, NOW), 'an assisting department is involved');
  assert.ok(involves(c, 'drainage'));
  assert.ok(!matches(c, { ...all, department: 'gas' }, NOW));
  assert.ok(matches(c, { ...all, overdue: true }, NOW));
  assert.ok(!matches(c, { ...all, overdue: true }, NOW - 2 * 60000), 'not yet overdue then');
  assert.ok(!matches(kase('d', 'new'), { ...all, overdue: true }, NOW), 'no deadline, never overdue');
});

test('the queue lists open cases first, the most urgent first', () => {
  const cases = [
    kase('closed', 'closed', { created: 9 }),
    kase('later', 'dispatched', { due: 60 }),
    kase('new', 'new', { created: 1 }),
    kase('overdue', 'dispatched', { due: -3 }),
    kase('soon', 'dispatched', { due: 5 }),
    kase('cancelled', 'cancelled', { created: 2 }),
  ];
  assert.deepEqual(selectQueue(cases, all, NOW).map((c) => c.id), ['overdue', 'soon', 'later', 'new', 'closed', 'cancelled']);
  assert.deepEqual(selectQueue(cases, { ...all, status: 'open' }, NOW).map((c) => c.id), ['overdue', 'soon', 'later', 'new']);
  assert.equal(queueOrder(cases[1], cases[1]), 0);
});

test('the gateway filters by district and department', () => {
  assert.deepEqual(liveFilter(all), { districts: [], departments: [] });
  assert.deepEqual(liveFilter({ ...all, district: 'xuhui', department: 'gas' }), { districts: ['xuhui'], departments: ['gas'] });
});

test('closed and cancelled cases are read from the API; open ones come live', () => {
  assert.equal(listQuery({ ...all, status: 'open' }), '');
  assert.equal(listQuery({ ...all, status: 'accepted' }), '');
  assert.equal(listQuery({ ...all, status: 'closed', district: 'xuhui' }), 'limit=100&status=closed&district=xuhui');
  assert.equal(listQuery({ ...all, department: 'gas' }, 20), 'limit=20&department=gas');
});
