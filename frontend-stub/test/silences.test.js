// The silences as the pages read them, and the console's form: what the
// request says, where each refusal of the hub is shown, who is offered
// which districts and which silences get an expire button.

import test from 'node:test';
import assert from 'node:assert/strict';
import { live, describeMatchers, matcherLine, mutedBecause, unknownSilence } from '../silences.js';
import { silenceRequest, problemField, formProblems, mayExpire, districtChoices, formFromCase, knownRules, localInput, DURATIONS } from '../console/silences.js';
import { ApiError } from '../session.js';
import { learnCatalog, setLanguage } from '../i18n.js';

learnCatalog({ districts: [{ code: 'xuhui', name: '徐汇区' }, { code: 'pudong', name: '浦东新区' }] });

const NOW = Date.parse('2025-07-01T08:00:00Z');

test('the form becomes a request: the typed matchers, an end and the comment', () => {
  assert.deepEqual(
    silenceRequest({ rule: ' flood-control/deep-waterlogging ', district: 'xuhui', street: 'tianping', duration: '2', comment: ' 泵站检修 ' }, NOW),
    {
      matchers: { rule: ['flood-control/deep-waterlogging'], district: ['xuhui'], street: ['tianping'] },
      ends_at: '2025-07-01T10:00:00.000Z',
      comment: '泵站检修',
    },
  );
  for (const h of DURATIONS) {
    assert.equal(silenceRequest({ duration: String(h), comment: 'x' }, NOW).ends_at, new Date(NOW + h * 3600e3).toISOString());
  }
});

test('several values of a matcher, separated by commas or spaces', () => {
  assert.deepEqual(
    silenceRequest({ rule: 'a/b, a/c，a/d', street: 'tianping yongjia', duration: '1', comment: 'x' }, NOW).matchers,
    { rule: ['a/b', 'a/c', 'a/d'], street: ['tianping', 'yongjia'] },
  );
});

test('the form leaves out what is empty and lets the hub say it is missing', () => {
  assert.deepEqual(silenceRequest({ rule: '', district: '', street: ' ', duration: '1', comment: '  ' }, NOW), {
    matchers: {},
    ends_at: '2025-07-01T09:00:00.000Z',
    comment: '',
  });
  assert.equal('ends_at' in silenceRequest({ duration: 'until', until: '', comment: 'x' }, NOW), false, 'no end time given');
  assert.equal('ends_at' in silenceRequest({ duration: 'until', until: 'soon', comment: 'x' }, NOW), false, 'no time at all');
});

test('an end time is sent as the instant it names', () => {
  const local = localInput(NOW + 90 * 60000);
  assert.match(local, /^\d{4}-\d\d-\d\dT\d\d:\d\d$/);
  assert.equal(silenceRequest({ duration: 'until', until: local, comment: 'x' }, NOW).ends_at, new Date(NOW + 90 * 60000).toISOString());
});

test('each problem the hub names goes to its field', () => {
  assert.deepEqual(
    ['matchers.rule', 'matchers.district', 'matchers.street', 'ends_at', 'starts_at', 'comment', 'matchers', 'matchers.pack', 'force', undefined].map(problemField),
    ['rule', 'district', 'street', 'duration', 'duration', 'comment', '', '', '', ''],
  );
  const err = new ApiError(400, 'invalid_silence', 'the silence was refused: …', [
    { field: 'comment', message: 'required: say why' },
    { field: 'ends_at', message: '2025-07-01T07:00:00Z has passed' },
    { field: 'matchers.rule', message: 'no rule "x/y" runs' },
    { field: 'matchers.rule', message: 'empty value' },
    { field: 'matchers', message: 'a silence without matchers mutes every alert' },
  ]);
  const p = formProblems(err);
  assert.deepEqual(p.fields, {
    comment: 'required: say why',
    duration: '2025-07-01T07:00:00Z has passed',
    rule: 'no rule "x/y" runs；empty value',
  });
  assert.match(p.general, /matchers: a silence without matchers mutes every alert/);
});

test('a problem with a reason is said in the reader\'s language; an unknown reason in the hub\'s words', () => {
  const err = new ApiError(400, 'invalid_silence', 'the silence was refused: …', [
    { field: 'comment', reason: 'required', message: 'required: say why' },
    { field: 'ends_at', reason: 'passed', value: '2025-07-01T07:00:00Z', message: '2025-07-01T07:00:00Z has passed' },
    { field: 'matchers.rule', reason: 'unknown_rule', value: 'x/y', message: 'no rule "x/y" runs' },
    { field: 'matchers.rule', reason: 'too_many', limit: 16, message: 'more than 16 values' },
    { field: 'matchers.street', reason: 'something_new', message: 'a problem this page does not know' },
    { field: 'matchers', reason: 'no_matchers', message: 'a silence without matchers mutes every alert' },
  ]);
  const zh = formProblems(err);
  assert.deepEqual(zh.fields, {
    comment: '必填',
    duration: '结束时间 2025-07-01T07:00:00Z 已过',
    rule: '没有运行中的规则“x/y”，静默将不匹配任何告警；超过 16 个',
    street: 'a problem this page does not know',
  });
  assert.equal(zh.general, '未能设置： matchers: 没有匹配条件的静默会屏蔽全部告警：请填写条件');
  setLanguage('en');
  try {
    const en = formProblems(err);
    assert.equal(en.fields.rule, 'no rule "x/y" runs: the silence would match nothing; more than 16');
    assert.equal(en.fields.comment, 'required');
  } finally {
    setLanguage('zh');
  }
});

test('a refusal without details is said whole, with the hub\'s message', () => {
  const p = formProblems(new ApiError(403, 'forbidden', 'forbidden: district "pudong" is not yours'));
  assert.deepEqual(p.fields, {});
  assert.equal(p.general, '未能设置（HTTP 403）：forbidden: district "pudong" is not yours');
  assert.equal(formProblems(new ApiError(0, 'network', 'Failed to fetch')).general, '无法连接 hub：Failed to fetch');
  assert.deepEqual(formProblems(new ApiError(400, 'invalid_json', 'the body is not a silence')).fields, {});
});

test('a dispatcher of some districts is offered only those; anyone else any', () => {
  const all = ['huangpu', 'xuhui', 'pudong'];
  assert.deepEqual(districtChoices({ role: 'dispatcher', districts: ['pudong', 'xuhui'] }, all), { any: false, codes: ['xuhui', 'pudong'] });
  assert.deepEqual(districtChoices({ role: 'dispatcher', districts: [] }, all), { any: true, codes: all });
  assert.deepEqual(districtChoices({ role: 'dispatcher' }, all), { any: true, codes: all });
  assert.deepEqual(districtChoices({ role: 'commander' }, all), { any: true, codes: all });
  assert.deepEqual(districtChoices({ role: 'department', dept: 'gas', districts: ['xuhui'] }, all), { any: true, codes: all });
  assert.deepEqual(districtChoices({ role: 'dispatcher', districts: ['lingang'] }, all), { any: false, codes: ['lingang'] }, 'a district the catalog lacks is still the token\'s');
});

test('only a silence set at run time that has not ended can be ended here', () => {
  assert.equal(mayExpire({ source: 'api', state: 'active' }), true);
  assert.equal(mayExpire({ source: 'api', state: 'pending' }), true);
  assert.equal(mayExpire({ source: 'api', state: 'expired' }), false);
  assert.equal(mayExpire({ source: 'pack', state: 'active' }), false);
});

test('a case prefills the silence of the alert behind it', () => {
  assert.deepEqual(formFromCase({ rule: 'flood-control/deep-waterlogging', district: 'xuhui', location: { street: 'tianping' } }), {
    rule: 'flood-control/deep-waterlogging', district: 'xuhui', street: 'tianping',
  });
  assert.deepEqual(formFromCase({ district: 'xuhui' }), { rule: '', district: 'xuhui', street: '' });
});

test('the rules suggested are those of the cases and of the silences', () => {
  assert.deepEqual(
    knownRules(
      [{ rule: 'gas/leak' }, { rule: 'flood-control/waterlogging' }, {}, { rule: 'gas/leak' }],
      [{ matchers: { rule: ['noise/night', 'gas/leak'] } }, { matchers: { district: ['xuhui'] } }, { matchers: { rule: 'traffic/jam' } }],
    ),
    ['flood-control/waterlogging', 'gas/leak', 'noise/night', 'traffic/jam'],
  );
});

test('the list: active first, then pending, each the soonest to end first; ended ones left out', () => {
  const s = (id, state, ends) => ({ id, state, ends_at: ends });
  assert.deepEqual(
    live([s('a', 'pending', '2025-07-01T12:00:00Z'), s('b', 'expired', '2025-07-01T07:00:00Z'), s('c', 'active', '2025-07-01T11:00:00Z'), s('d', 'active', '2025-07-01T09:00:00Z'), null]).map((x) => x.id),
    ['d', 'c', 'a'],
  );
  assert.deepEqual(live(undefined), []);
});

test('matchers read in words, the rule first, districts by name', () => {
  const m = { street: ['tianping'], district: ['xuhui', 'pudong'], 'attrs.gauge_id': ['mh-r-03'], rule: ['flood-control/deep-waterlogging'], severity: ['severe'] };
  assert.deepEqual(describeMatchers(m), [
    { name: 'rule', label: '规则', text: 'flood-control/deep-waterlogging' },
    { name: 'district', label: '区域', text: '徐汇区、浦东新区' },
    { name: 'street', label: '街道', text: 'tianping' },
    { name: 'severity', label: '级别', text: '严重' },
    { name: 'attrs.gauge_id', label: 'attrs.gauge_id', text: 'mh-r-03' },
  ]);
  assert.equal(matcherLine({ district: 'xuhui', street: ['tianping'] }), '区域 徐汇区 · 街道 tianping');
  assert.equal(matcherLine({}), '全部告警');
  setLanguage('en');
  try {
    assert.equal(matcherLine({ district: ['xuhui', 'pudong'] }), 'district Xuhui, Pudong');
  } finally {
    setLanguage('zh');
  }
});

test('a silenced alert says why, by the comments of its silences', () => {
  const byID = new Map([['S-1', { id: 'S-1', comment: '泵站检修' }]]);
  assert.equal(mutedBecause({ silenced_by: ['S-1'] }, byID), '静默：泵站检修（S-1）');
  assert.equal(mutedBecause({ silenced_by: ['S-1', 'S-2'] }, byID), '静默：泵站检修（S-1）\nS-2');
  assert.equal(mutedBecause({}, byID), '');
  assert.equal(unknownSilence([{ silenced_by: ['S-1'] }, {}], byID), false);
  assert.equal(unknownSilence([{ silenced_by: ['S-1'] }, { silenced_by: ['S-2'] }], byID), true);
});
