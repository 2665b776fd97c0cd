// The case statuses, alert states and severities the pages know are those
// of the protobuf enums (enums.js, which enums_test.go holds to the proto):
// the labels name exactly those, the page modules compare with no other,
// and no module keeps a list of its own.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { CASE_STATUSES, OPEN_STATUSES, ALERT_STATES, SEVERITIES } from '../enums.js';
import { dictionaries } from '../i18n.js';

const read = (name) => readFileSync(new URL(`../${name}`, import.meta.url), 'utf8');
const modules = [...readdirSync(new URL('..', import.meta.url)).filter((f) => f.endsWith('.js')), ...readdirSync(new URL('../console', import.meta.url)).map((f) => `console/${f}`)];
const sorted = (xs) => [...xs].sort();
const keysUnder = (dict, prefix) => Object.keys(dict).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));

test('the open statuses are statuses', () => {
  assert.ok(OPEN_STATUSES.length > 0);
  for (const s of OPEN_STATUSES) assert.ok(CASE_STATUSES.includes(s), s);
});

test('there is a label for each case status, and for no other', () => {
  for (const [lang, dict] of Object.entries(dictionaries)) {
    assert.deepEqual(sorted(keysUnder(dict, 'status.')), sorted(CASE_STATUSES), lang);
  }
});

test('there is a label for each severity, and for an unrated alert', () => {
  for (const [lang, dict] of Object.entries(dictionaries)) {
    assert.deepEqual(sorted(keysUnder(dict, 'sev.')), sorted([...SEVERITIES, 'none']), lang);
  }
});

test('the pages compare a case\'s or a part\'s status only with a status of the proto', () => {
  const unknown = [];
  let seen = 0;
  for (const mod of modules) {
    for (const m of read(mod).matchAll(/\b[cp]\.status\s*[!=]==\s*'([^']*)'/g)) {
      seen++;
      if (!CASE_STATUSES.includes(m[1])) unknown.push(`${mod}: ${m[0]}`);
    }
  }
  assert.ok(seen > 0, 'the pattern no longer finds the comparisons');
  assert.deepEqual(unknown, []);
});

test('the pages compare an alert\'s state only with a state of the proto', () => {
  const unknown = [];
  let seen = 0;
  for (const mod of modules) {
    for (const m of read(mod).matchAll(/\ba\??\.(?:status\??\.)?state\s*[!=]==\s*'([^']*)'/g)) {
      seen++;
      if (!ALERT_STATES.includes(m[1])) unknown.push(`${mod}: ${m[0]}`);
    }
  }
  assert.ok(seen > 0, 'the pattern no longer finds the comparisons');
  assert.deepEqual(unknown, []);
});

test('no module but enums.js lists the statuses or severities', () => {
  const lists = [];
  for (const mod of modules.filter((m) => m !== 'enums.js')) {
    if (/'new',\s*'dispatched'|'extreme',\s*'severe'|'minor',\s*'moderate'/.test(read(mod))) lists.push(mod);
  }
  assert.deepEqual(lists, []);
});

test('the wall screen has a counter for each open status and each severity', () => {
  const wall = read('index.html');
  for (const s of OPEN_STATUSES) assert.ok(wall.includes(`id="count-status-${s}"`), s);
  for (const s of SEVERITIES) assert.ok(wall.includes(`id="count-severity-${s}"`), s);
});
