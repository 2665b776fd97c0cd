// The console's open case: when a live change is worth reading it again,
// which clocks run, and the address that names it.

import test from 'node:test';
import assert from 'node:assert/strict';
import { needsRefresh, clockRuns, caseInHash, hashWithCase, newestFirst, attemptSummary } from '../console/detail.js';

test('the open case is read again on a snapshot, its removal or a newer version', () => {
  assert.equal(needsRefresh({ snapshot: true }, 'a', 3), true);
  assert.equal(needsRefresh({ removed: 'a' }, 'a', 3), true);
  assert.equal(needsRefresh({ removed: 'b' }, 'a', 3), false);
  assert.equal(needsRefresh({ item: { id: 'a', version: 4 } }, 'a', 3), true);
  assert.equal(needsRefresh({ item: { id: 'a', version: 3 } }, 'a', 3), false, 'the version shown');
  assert.equal(needsRefresh({ item: { id: 'b', version: 9 } }, 'a', 3), false);
  assert.equal(needsRefresh({ snapshot: true }, '', 0), false, 'no case open');
});

test('a part\'s clock runs while the open case waits for its step', () => {
  const open = { status: 'accepted' };
  assert.equal(clockRuns(open, { status: 'dispatched' }, 'accept'), true);
  assert.equal(clockRuns(open, { status: 'dispatched' }, 'handle'), false);
  assert.equal(clockRuns(open, { status: 'accepted' }, 'handle'), true);
  assert.equal(clockRuns(open, { status: 'accepted', suspended: true }, 'handle'), false);
  assert.equal(clockRuns(open, { status: 'handled' }, 'handle'), false);
  assert.equal(clockRuns({ status: 'closed' }, { status: 'accepted' }, 'handle'), false);
});

test('the address names the open case and keeps the rest', () => {
  assert.equal(caseInHash(''), '');
  assert.equal(caseInHash('#case=xuhui-01'), 'xuhui-01');
  assert.equal(hashWithCase('', 'xuhui-01'), '#case=xuhui-01');
  assert.equal(hashWithCase('#lang=en&case=old', 'new'), '#lang=en&case=new');
  assert.equal(caseInHash(hashWithCase('#x=1', 'a b')), 'a b');
});

test('the history reads newest first', () => {
  assert.deepEqual(newestFirst([{ version: 1 }, { version: 3 }, { version: 2 }]).map((e) => e.version), [3, 2, 1]);
  assert.deepEqual(newestFirst(undefined), []);
});

test('a delivery attempt says how it went, to whom, and why it failed', () => {
  const sent = attemptSummary({ receiver: 'sms', person: '张伟', department: 'gas', change: 'dispatched', outcome: 'sent', attempt: 1 });
  assert.equal(sent.cls, 'outcome-sent');
  assert.match(sent.facts, /^sms · 张伟 · .+ · /);
  assert.equal(sent.why, '');
  const retry = attemptSummary({ receiver: 'gas-system', outcome: 'retrying', attempt: 3, status: 503, error: 'unavailable', retry_in_seconds: 4.2 });
  assert.equal(retry.cls, 'outcome-retrying');
  assert.match(retry.facts, /3/, 'the attempt number');
  assert.match(retry.why, /^503 · unavailable · .*4/);
  const over = attemptSummary({ receiver: 'gas-wecom', outcome: 'failed_over', fallback_to: 'inbox', error: 'robot key revoked' });
  assert.match(over.why, /inbox/);
  assert.equal(attemptSummary({ receiver: 'x', outcome: 'novel' }).outcome, 'novel', 'an outcome the page does not know is shown as it is');
});
