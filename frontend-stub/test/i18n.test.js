// The dictionaries: every key in both languages with the same placeholders,
// and every key the pages name in one of them.

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dictionaries, t, has, setLanguage } from '../i18n.js';

const { zh, en } = dictionaries;
const read = (name) => readFileSync(new URL(`../${name}`, import.meta.url), 'utf8');
const modules = [...readdirSync(new URL('..', import.meta.url)).filter((f) => f.endsWith('.js')), ...readdirSync(new URL('../console', import.meta.url)).map((f) => `console/${f}`)];

const missing = (from, to) => Object.keys(from).filter((k) => !(k in to));
const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('every key in Chinese is in English', () => {
  assert.deepEqual(missing(zh, en), []);
});

test('every key in English is in Chinese', () => {
  assert.deepEqual(missing(en, zh), []);
});

test('a label has the same placeholders in both languages', () => {
  const differ = Object.keys(zh).filter((k) => k in en && placeholders(zh[k]).join() !== placeholders(en[k]).join());
  assert.deepEqual(differ, []);
});

test('no label is empty', () => {
  for (const [lang, dict] of Object.entries(dictionaries)) {
    assert.deepEqual(Object.keys(dict).filter((k) => typeof dict[k] !== 'string' || dict[k] === ''), [], lang);
  }
});

test('every key the pages name is in the dictionary', () => {
  const unknown = [];
  for (const page of ['index.html', 'console.html']) {
    for (const m of read(page).matchAll(/data-(?:i18n(?:-placeholder|-title|-aria-label)?|title-key)="([^"]+)"/g)) {
      if (!has(m[1])) unknown.push(`${page}: ${m[1]}`);
    }
  }
  for (const mod of modules) {
    for (const m of read(mod).matchAll(/\bt\(\s*'([^']+)'/g)) {
      if (!has(m[1])) unknown.push(`${mod}: ${m[1]}`);
    }
  }
  assert.deepEqual(unknown, []);
});

test('labels fill their placeholders and fall back to Chinese, then to the key', () => {
  assert.equal(t('queue.count', { n: 3 }), '3 件');
  assert.equal(t('queue.count'), '{n} 件');
  assert.equal(t('no.such.key'), 'no.such.key');
  setLanguage('en');
  try {
    assert.equal(t('queue.count', { n: 3 }), '3 cases');
  } finally {
    setLanguage('zh');
  }
});
