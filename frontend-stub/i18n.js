// Every label of both pages, in Chinese (the default) and English, and the
// formatting of names, times and countdowns that goes with the language.
// The labels themselves are in i18n/zh.js and i18n/en.js.
// Elements carry data-i18n="key" (text), data-i18n-placeholder,
// data-i18n-title or data-i18n-aria-label; code calls t(key, params).

import zh from './i18n/zh.js';
import en from './i18n/en.js';

const LANG_KEY = 'cityhub.lang';

/** dictionaries holds the labels of each language by key. */
export const dictionaries = { zh, en };

// The module is also loaded by node's test runner, which has no document.
const inPage = typeof document !== 'undefined';

function stored() {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null; // storage may be off; Chinese then
  }
}

let lang = stored() === 'en' ? 'en' : 'zh';
const listeners = [];

/** The current language: "zh" or "en". */
export function language() {
  return lang;
}

/** locale is the BCP 47 tag of the current language. */
export function locale() {
  return lang === 'en' ? 'en-GB' : 'zh-CN';
}

/** t returns the label for key with {name} placeholders filled from params. */
export function t(key, params) {
  let s = dictionaries[lang][key] ?? zh[key] ?? key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => (params[name] === undefined ? m : String(params[name])));
  }
  return s;
}

/** has reports whether the dictionary knows key. */
export function has(key) {
  return key in zh;
}

/** apply relabels every element under root that names a key. */
export function apply(root = document) {
  document.documentElement.lang = locale();
  for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll('[data-i18n-placeholder]')) e.placeholder = t(e.dataset.i18nPlaceholder);
  for (const e of root.querySelectorAll('[data-i18n-title]')) e.title = t(e.dataset.i18nTitle);
  for (const e of root.querySelectorAll('[data-i18n-aria-label]')) e.setAttribute('aria-label', t(e.dataset.i18nAriaLabel));
  const title = document.body?.dataset.titleKey;
  if (title) document.title = t(title);
}

/** setLanguage switches, remembers the choice, relabels and tells listeners. */
export function setLanguage(next) {
  lang = next === 'en' ? 'en' : 'zh';
  try {
    localStorage.setItem(LANG_KEY, lang);
  } catch {
    // not remembered; the switch still works for this page
  }
  if (inPage) apply();
  for (const f of listeners) f(lang);
}

/** onChange calls f after every switch of language until the function
 * it returns is called. */
export function onChange(f) {
  listeners.push(f);
  return () => {
    const i = listeners.indexOf(f);
    if (i >= 0) listeners.splice(i, 1);
  };
}

/** bindToggle makes button switch between the two languages. */
export function bindToggle(button) {
  button.addEventListener('click', () => setLanguage(lang === 'zh' ? 'en' : 'zh'));
}

// ---- names from the catalog --------------------------------------------

/** names holds the catalog's Chinese names by code. */
export const names = { districts: new Map(), departments: new Map(), types: new Map() };

/** learnCatalog keeps the names of a /v1/catalog answer. */
export function learnCatalog(cat) {
  for (const d of cat?.districts || []) names.districts.set(d.code, d.name);
  for (const d of cat?.departments || []) names.departments.set(d.code, d.name);
  for (const d of cat?.event_types || []) names.types.set(d.code, d.name);
}

// The catalog names things in Chinese only; in English a code reads well
// enough once capitalised: "water-affairs" → "Water affairs".
function fromCode(code) {
  const s = String(code).replace(/[-_]+/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function named(map, code) {
  if (!code) return '—';
  if (lang === 'en') return fromCode(code);
  return map.get(code) || code;
}

export const districtName = (code) => named(names.districts, code);
export const deptName = (code) => named(names.departments, code);
export const typeName = (code) => named(names.types, code);
export const severityName = (s) => t(s ? `sev.${s}` : 'sev.none');
export const statusName = (s) => (has(`status.${s}`) ? t(`status.${s}`) : s);
export const roleName = (r) => (has(`role.${r}`) ? t(`role.${r}`) : r);

/** actionName labels an action, with its outcome when it has one. */
export function actionName(action, outcome) {
  if (outcome && has(`action.${action}.${outcome}`)) return t(`action.${action}.${outcome}`);
  if (has(`action.${action}`)) return t(`action.${action}`);
  return fromCode(action);
}

// ---- times -------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');

/** clock formats a time of day as HH:MM:SS. */
export function clock(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** when formats an RFC 3339 time briefly: the time today, else date and time. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === new Date().toDateString()) return hm;
  return lang === 'en'
    ? `${d.toLocaleDateString('en-GB', { day: 'numeric', month: 'short' })} ${hm}`
    : `${d.getMonth() + 1}月${d.getDate()}日 ${hm}`;
}

/** full formats an RFC 3339 time with its date and seconds. */
export function full(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}`;
}

/** countdown formats a span as M:SS, H:MM:SS or days and hours. */
export function countdown(ms) {
  const s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return t('duration.days', { d, h });
  if (h > 0) return `${h}:${pad(m)}:${pad(s % 60)}`;
  return `${m}:${pad(s % 60)}`;
}

if (inPage) apply();
