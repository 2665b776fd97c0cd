// What both pages read off a silence of GET /v1/silences: whether it mutes
// now or will, its matchers in words, and the comments behind a muted
// alert. The hub decides what a silence mutes and who may set or end one;
// the pages only show it.

import * as i18n from './i18n.js';
import { t } from './i18n.js';

/** LIVE_STATES are the states of a silence that mutes now or will. */
export const LIVE_STATES = Object.freeze(['active', 'pending']);

/** live returns the silences of items that mute now or will: those that
 * mute now first, each the soonest to end first. */
export function live(items) {
  const rank = (s) => LIVE_STATES.indexOf(s.state);
  return (items || [])
    .filter((s) => s && LIVE_STATES.includes(s.state))
    .sort((a, b) => rank(a) - rank(b) || String(a.ends_at).localeCompare(String(b.ends_at)) || String(a.id).localeCompare(String(b.id)));
}

// The matchers a person reads first, in this order; any other (a label
// such as grid or attrs.NAME) follows by name.
const MATCHER_ORDER = ['rule', 'pack', 'district', 'street', 'severity'];

function matcherRank(name) {
  const i = MATCHER_ORDER.indexOf(name);
  return i < 0 ? MATCHER_ORDER.length : i;
}

function valueName(name, v) {
  if (name === 'district') return i18n.districtName(v);
  if (name === 'severity') return i18n.severityName(v);
  if (name === 'type') return i18n.typeName(v);
  return v;
}

/** describeMatchers words a silence's matchers ({name: [values]}, or a
 * value alone): [{name, label, text}], the rule first, then pack,
 * district, street, severity and the others by name. Districts, event
 * types and severities read as the catalog and the labels name them. An
 * empty list means the silence mutes every alert. */
export function describeMatchers(m) {
  const sep = i18n.language() === 'en' ? ', ' : '、';
  return Object.keys(m || {})
    .sort((a, b) => matcherRank(a) - matcherRank(b) || a.localeCompare(b))
    .map((name) => ({
      name,
      label: i18n.has(`silence.m.${name}`) ? t(`silence.m.${name}`) : name,
      text: [].concat(m[name] ?? []).map((v) => valueName(name, String(v))).join(sep),
    }));
}

/** matcherLine is describeMatchers on one line. */
export function matcherLine(m) {
  const parts = describeMatchers(m);
  if (parts.length === 0) return t('silence.all');
  return parts.map((p) => `${p.label} ${p.text}`).join(' · ');
}

/** mutedBecause says why alert a is silenced, for a tooltip: the comment
 * of each silence it names, from byID (silences by id), or the id alone
 * for one not known; "" for an alert no silence mutes. */
export function mutedBecause(a, byID) {
  return (a?.silenced_by || [])
    .map((id) => {
      const s = byID.get(id);
      return s?.comment ? t('silence.because', { comment: s.comment, id }) : id;
    })
    .join('\n');
}

/** unknownSilence reports whether one of the alerts names a silence
 * byID does not hold: one set since the list was read. */
export function unknownSilence(alerts, byID) {
  return alerts.some((a) => (a.silenced_by || []).some((id) => !byID.has(id)));
}
