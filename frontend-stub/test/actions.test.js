// The console's actions: the buttons come from allowed_actions alone, the
// form is checked against what an action needs, and every request carries
// the version shown and a fresh request id.

import test from 'node:test';
import assert from 'node:assert/strict';
import { offered, optionKey, isDanger, actionLabel, actionFields, actionRequest, refusalNotice } from '../console/actions.js';
import { requestID } from '../session.js';

test('the buttons are exactly the well-formed entries of allowed_actions', () => {
  const allowed = [{ action: 'accept', department: 'gas' }, null, { outcome: 'pass' }, { action: 'comment', needs_note: true }];
  assert.deepEqual(offered(allowed), [allowed[0], allowed[3]]);
  assert.deepEqual(offered([]), []);
  assert.equal(offered(undefined), null, 'a hub that does not say gets no buttons');
  assert.equal(offered({ accept: true }), null);
});

test('each entry has its own key', () => {
  const keys = [
    { action: 'verify', outcome: 'pass' },
    { action: 'verify', outcome: 'fail' },
    { action: 'accept', department: 'gas' },
    { action: 'accept', department: 'drainage' },
  ].map(optionKey);
  assert.equal(new Set(keys).size, keys.length);
});

test('undoing or refusing looks dangerous', () => {
  assert.deepEqual(
    [{ action: 'cancel' }, { action: 'verify', outcome: 'fail' }, { action: 'return' }, { action: 'refuse_extension' }, { action: 'accept' }, { action: 'verify', outcome: 'pass' }].map(isDanger),
    [true, true, true, true, false, false],
  );
});

test('a label names the department only where it could be mistaken', () => {
  const gas = { action: 'accept', department: 'gas' };
  const drainage = { action: 'accept', department: 'drainage' };
  assert.equal(actionLabel(gas, [gas], { role: 'department', dept: 'gas' }), '签收');
  assert.equal(actionLabel(gas, [gas, drainage], { role: 'department', dept: 'drainage' }), '签收（gas）');
  assert.equal(actionLabel(gas, [gas], { role: 'dispatcher' }), '签收（gas）');
  assert.equal(actionLabel({ action: 'verify', outcome: 'pass' }, [], { role: 'dispatcher' }), '核查通过');
});

test('an action that needs a reason is refused without one', () => {
  const comment = { action: 'comment', needs_note: true };
  assert.throws(() => actionFields(comment, { note: '  ' }, '备注'), /“备注”需要填写原因/);
  assert.deepEqual(actionFields(comment, { note: ' 已到场 ' }, '备注'), { note: '已到场' });
  assert.deepEqual(actionFields({ action: 'accept' }, { note: '' }, '签收'), {});
});

test('the fields an action needs, and only those', () => {
  const dispatch = { action: 'dispatch', needs: ['lead', 'assist', 'case_class', 'sla'] };
  assert.throws(() => actionFields(dispatch, { lead: '' }, '派遣'), /主办部门/);
  assert.deepEqual(
    actionFields(dispatch, { lead: 'drainage', assist: ['drainage', 'traffic-police'], caseClass: 'urgent', slaAccept: ' 30m ', slaHandle: '', into: 'ignored' }, '派遣'),
    { lead: 'drainage', assist: ['traffic-police'], case_class: 'urgent', sla: { accept: '30m' } },
  );
  const merge = { action: 'merge', needs: ['into'], needs_note: true };
  assert.throws(() => actionFields(merge, { note: 'dup', into: ' ' }, '合并'), /并入案件编号/);
  assert.deepEqual(actionFields(merge, { note: 'dup', into: 'xuhui-07' }, '合并'), { note: 'dup', into: 'xuhui-07' });
  const extension = { action: 'request_extension', needs: ['extend_by', 'until'] };
  assert.throws(() => actionFields(extension, {}, '申请延期'), /延长时长/);
  assert.deepEqual(actionFields(extension, { extendBy: '2h', until: '2025-07-01T10:00' }, ''), { extend_by: '2h' });
  assert.equal(actionFields(extension, { until: '2025-07-01T10:00' }, '').until, new Date('2025-07-01T10:00').toISOString());
});

test('a request carries the version shown and a fresh request id', () => {
  const c = { id: 'xuhui-01', version: 7 };
  const ids = new Set();
  for (let i = 0; i < 100; i++) ids.add(requestID());
  assert.equal(ids.size, 100);
  assert.match(requestID(), /^console-[0-9a-f]{24}$/);
  assert.deepEqual(actionRequest({ action: 'accept', department: 'gas' }, c, {}, 'r-1'), { action: 'accept', expected_version: 7, request_id: 'r-1', department: 'gas' });
  assert.deepEqual(actionRequest({ action: 'verify', outcome: 'fail' }, c, { note: 'no' }, 'r-2'), { action: 'verify', expected_version: 7, request_id: 'r-2', note: 'no', pass: false });
  assert.equal(actionRequest({ action: 'verify', outcome: 'pass' }, c, {}, 'r-3').pass, true);
});

test('a 409 says the case was reloaded, naming the version the page had', () => {
  const conflict = refusalNotice({ status: 409, code: 'version_conflict', message: 'stale' }, 3, 4);
  assert.equal(conflict.kind, 'conflict');
  assert.match(conflict.text, /v3 → v4/);
  const moved = refusalNotice({ status: 409, code: 'invalid_transition', message: 'already accepted' }, 3, 4);
  assert.equal(moved.kind, 'conflict');
  assert.match(moved.text, /already accepted.*v4/);
  assert.deepEqual(refusalNotice({ status: 0, message: 'down' }, 3, '?'), { kind: 'error', text: '无法连接 hub：down' });
  assert.equal(refusalNotice({ status: 403, message: 'not yours' }, 3, '?').text, '操作失败（HTTP 403）：not yours');
});
