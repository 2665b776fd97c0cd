// What both pages read off a case: the deadline that runs now, the order of
// urgency, the flags, and how a countdown reads.

import test from 'node:test';
import assert from 'node:assert/strict';
import { dueOf, byUrgency, suspended, caseFlags, signedParts, muted, urgency, dueText, SOON_MS } from '../cases.js';
import { countdown, setLanguage } from '../i18n.js';

const T0 = Date.parse('2025-07-01T08:00:00Z');
const at = (minutes) => new Date(T0 + minutes * 60000).toISOString();
const part = (department, status, more = {}) => ({ department, status, ...more });
const deadline = (minutes) => ({ due_at: at(minutes), state: 'running', in: 'working' });

test('the running deadline is the earliest of the parts waiting for a step', () => {
  const c = {
    status: 'accepted',
    parts: [
      part('water-affairs', 'accepted', { handle_deadline: deadline(90), accept_deadline: deadline(5) }),
      part('traffic-police', 'dispatched', { accept_deadline: deadline(30) }),
      part('drainage', 'handled', { handle_deadline: deadline(1) }),
    ],
  };
  assert.deepEqual(dueOf(c), { at: T0 + 30 * 60000, what: 'accept', department: 'traffic-police' });
});

test('a suspended part stops its clock; all suspended stops the case', () => {
  const c = {
    status: 'accepted',
    parts: [
      part('water-affairs', 'accepted', { suspended: true, handle_deadline: deadline(10) }),
      part('traffic-police', 'accepted', { handle_deadline: deadline(60) }),
    ],
  };
  assert.equal(suspended(c), false);
  assert.equal(dueOf(c).department, 'traffic-police');
  c.parts[1].suspended = true;
  assert.equal(suspended(c), true);
  assert.equal(dueOf(c), null);
  assert.deepEqual(caseFlags(c).map((f) => f.key), ['suspended']);
});

test('suspension is a flag of a part, never a status of a case', () => {
  // A status the hub never sends must not stop a clock.
  assert.equal(suspended({ status: 'suspended', parts: [] }), false);
  assert.deepEqual(caseFlags(part('gas', 'accepted', { suspended: true })).map((f) => f.key), ['suspended']);
});

test('without deadlines of their own, the case\'s deadline runs', () => {
  assert.deepEqual(dueOf({ status: 'dispatched', accept_due_at: at(15) }), { at: T0 + 15 * 60000, what: 'accept', department: undefined });
  assert.equal(dueOf({ status: 'handled', handle_due_at: at(15) }), null);
  assert.equal(dueOf({ status: 'closed', parts: [part('gas', 'accepted', { handle_deadline: deadline(5) })] }), null);
  // Parts that carry deadlines, none of them running: the case's own do not count.
  assert.equal(dueOf({ status: 'dispatched', accept_due_at: at(15), parts: [part('gas', 'handled', { handle_deadline: deadline(5) })] }), null);
});

test('urgency: overdue first, then the nearest deadline, then the newest without one', () => {
  const c = (id, minutes, created) => ({
    id,
    status: minutes === null ? 'new' : 'dispatched',
    created_at: at(created),
    parts: minutes === null ? [] : [part('gas', 'dispatched', { accept_deadline: deadline(minutes) })],
  });
  const list = [c('later', 60, 0), c('none-old', null, 1), c('overdue', -5, 2), c('sooner', 10, 3), c('none-new', null, 4)];
  assert.deepEqual(list.sort(byUrgency).map((x) => x.id), ['overdue', 'sooner', 'later', 'none-new', 'none-old']);
});

test('countdowns read M:SS, H:MM:SS, then days and hours', () => {
  assert.equal(countdown(0), '0:00');
  assert.equal(countdown(59_999), '0:59');
  assert.equal(countdown(9 * 60000 + 59_000), '9:59');
  assert.equal(countdown(-(61_000)), '1:01', 'overdue by as much');
  assert.equal(countdown(3600_000 + 5 * 60000 + 7000), '1:05:07');
  assert.equal(countdown(26 * 3600_000 + 59 * 60000), '1天2时');
  setLanguage('en');
  try {
    assert.equal(countdown(26 * 3600_000), '1d 2h');
  } finally {
    setLanguage('zh');
  }
});

test('a deadline reads as time left, then as time over', () => {
  assert.deepEqual(dueText('accept', 9 * 60000 + 59_000), { line: '签收 剩 9:59', label: '签收剩余', time: '9:59' });
  assert.deepEqual(dueText('handle', -61_000), { line: '处置 超 1:01', label: '处置超时', time: '1:01' });
  setLanguage('en');
  try {
    assert.equal(dueText('accept', 30_000).line, 'accept in 0:30');
    assert.equal(dueText('handle', -30_000).label, 'handle overdue by');
  } finally {
    setLanguage('zh');
  }
});

test('a deadline is due soon within 15 minutes', () => {
  assert.equal(urgency(-1), 'overdue');
  assert.equal(urgency(0), 'soon');
  assert.equal(urgency(SOON_MS - 1), 'soon');
  assert.equal(urgency(SOON_MS), 'ok');
});

test('the flags of a case', () => {
  const c = {
    status: 'accepted',
    warned: true,
    escalation_level: 2,
    arbitration: true,
    rework_count: 1,
    merged_into: 'xuhui-02',
    parts: [part('gas', 'accepted', { extension: { state: 'pending' } })],
  };
  assert.deepEqual(caseFlags(c).map((f) => [f.key, f.text]), [
    ['warned', '已预警'],
    ['escalated', '已升级 L2'],
    ['arbitration', '争议仲裁'],
    ['extension', '延期申请中'],
    ['rework', '返工 1'],
    ['merged', '已并入 xuhui-02'],
  ]);
});

test('a linked street case names its district case, which counts its linked parts', () => {
  assert.deepEqual(caseFlags({ status: 'dispatched', linked_into: 'xuhui-9' }).map((f) => [f.key, f.text]), [
    ['linked', '关联于区域案件 xuhui-9'],
  ]);
  assert.deepEqual(caseFlags({ status: 'dispatched', linked: ['xuhui-1', 'xuhui-2'] }).map((f) => [f.key, f.text]), [
    ['linked-parts', '关联 2 件'],
  ]);
});

test('an alert is dimmed when silenced, inhibited or on trial', () => {
  assert.equal(muted({ state: 'firing' }), '');
  assert.equal(muted({ state: 'firing', silenced_by: ['maintenance'] }), 'silenced');
  assert.equal(muted({ state: 'firing', inhibited_by: ['a-1'] }), 'inhibited');
  assert.equal(muted({ state: 'firing', shadow: true }), 'shadow');
  assert.equal(muted({ state: 'firing', silenced_by: [], inhibited_by: [] }), '');
});

test('the wall counts the parts signed for while a case waits for the rest', () => {
  assert.equal(signedParts({ parts: [{ status: 'dispatched' }] }), null, 'one part: its status says it all');
  assert.equal(signedParts({}), null);
  assert.deepEqual(signedParts({ parts: [{ status: 'accepted' }, { status: 'dispatched' }, { status: 'handled' }] }), { signed: 2, total: 3 });
  assert.deepEqual(signedParts({ parts: [{ status: 'dispatched' }, { status: 'new' }] }), { signed: 0, total: 2 });
});
