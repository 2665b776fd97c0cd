// The live feed's store and reconnects: every item at the highest version
// seen, whatever order the snapshot and the deltas arrive in, and a backoff
// that grows to 30 s with jitter.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Store, Feed, backoff } from '../live.js';

const item = (id, version, more = {}) => ({ id, version, ...more });

test('a store keeps the highest version of each item', () => {
  const s = new Store();
  assert.equal(s.apply(item('a', 2, { title: 'two' })), true);
  assert.equal(s.apply(item('a', 1, { title: 'one' })), false, 'an older delta arriving late');
  assert.equal(s.apply(item('a', 2, { title: 'again' })), false, 'the same version twice');
  assert.equal(s.get('a').title, 'two');
  assert.equal(s.apply(item('a', 5, { title: 'five' })), true);
  assert.equal(s.get('a').title, 'five');
  assert.equal(s.version('a'), 5);
  assert.equal(s.version('b'), 0);
});

test('a store refuses what is not an item', () => {
  const s = new Store();
  for (const bad of [null, undefined, {}, { id: 'a' }, { id: 'a', version: '2' }, { id: 7, version: 1 }]) {
    assert.equal(s.apply(bad), false, JSON.stringify(bad));
  }
  assert.deepEqual(s.values(), []);
});

test('an item that leaves cannot be brought back by an older delta', () => {
  const s = new Store((it) => it.state === 'firing');
  s.apply(item('a', 1, { state: 'firing' }));
  assert.equal(s.apply(item('a', 3, { state: 'resolved' })), true, 'resolving drops what the store had');
  assert.equal(s.get('a'), undefined);
  assert.equal(s.apply(item('a', 2, { state: 'firing' })), false, 'the late delta before the resolve');
  assert.equal(s.get('a'), undefined);
  assert.equal(s.apply(item('a', 4, { state: 'firing' })), true, 'firing again, later');
});

test('a removal holds unless the store has a newer version', () => {
  const s = new Store();
  s.apply(item('a', 3));
  assert.equal(s.remove('a', 2), false, 'a removal older than what the store has');
  assert.equal(s.get('a').version, 3);
  assert.equal(s.remove('a', 3), true);
  assert.equal(s.apply(item('a', 3)), false);
  assert.equal(s.apply(item('a', 4)), true);
  assert.equal(s.remove('a'), true, 'without a version: at the version the store has');
});

test('a snapshot replaces everything but what it cannot hold', () => {
  const s = new Store();
  s.apply(item('open-1', 1, { status: 'new' }));
  s.apply(item('closed-1', 9, { status: 'closed' }));
  s.remove('gone', 4);
  s.replace([item('open-2', 1, { status: 'new' })], (c) => c.status === 'closed');
  assert.deepEqual(s.values().map((c) => c.id).sort(), ['closed-1', 'open-2']);
  assert.equal(s.apply(item('gone', 2)), true, 'a snapshot is the truth now: its tombstones go');
});

test('deltas newer than the snapshot survive it; older ones do not', () => {
  const cases = new Store();
  const changes = [];
  const states = [];
  const feed = new Feed({ token: 't', streams: ['cases'], stores: { cases }, onChange: (stream, change) => changes.push(change), onState: (s) => states.push(s.state) });
  const frame = (f) => feed.receive(JSON.stringify(f));
  frame({ type: 'snapshot', stream: 'cases', items: [item('a', 2), item('b', 1)] });
  assert.deepEqual(states, ['connected']);
  frame({ type: 'case', data: item('a', 1) }); // buffered before the snapshot, delivered late
  frame({ type: 'case', data: item('b', 3) });
  frame({ type: 'removed', stream: 'cases', id: 'a', version: 2 });
  frame({ type: 'case', data: item('a', 2) });
  assert.deepEqual(cases.values(), [item('b', 3)]);
  assert.deepEqual(changes, [{ snapshot: true }, { item: item('b', 3) }, { removed: 'a' }]);
  frame({ type: 'alert', data: item('x', 1) }); // a stream the page did not ask for
  feed.receive('not json');
  assert.equal(changes.length, 3);
});

test('backoff doubles from 1 s to 30 s, each wait between half and all of it', () => {
  const lowest = (n) => backoff(n, false, () => 0);
  const highest = (n) => backoff(n, false, () => 1);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 20].map(highest), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.deepEqual([0, 1, 2, 5, 20].map(lowest), [500, 1000, 2000, 15000, 15000]);
  for (let n = 0; n < 10; n++) {
    const d = backoff(n);
    assert.ok(d >= lowest(n) && d <= highest(n), `attempt ${n}: ${d} ms`);
  }
});

test('a gateway that shed a slow client has it back within a quarter second', () => {
  assert.equal(backoff(7, true, () => 1), 250);
  assert.equal(backoff(7, true, () => 0), 125);
});
