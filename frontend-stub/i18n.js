// Every label of both pages, in Chinese (the default) and English, and the
// formatting of names, times and countdowns that goes with the language.
// Elements carry data-i18n="key" (text), data-i18n-placeholder,
// data-i18n-title or data-i18n-aria-label; code calls t(key, params).

const LANG_KEY = 'cityhub.lang';

const zh = {
  'app.wall.title': '城市运行态势 · cityhub 大屏',
  'app.console.title': '派遣台 · cityhub',
  'lang.switch': 'EN',
  'lang.switch.title': 'Switch to English',

  'conn.idle': '未连接',
  'conn.connecting': '连接中',
  'conn.connected': '已连接',
  'conn.reconnecting': '重连中',
  'conn.reconnecting.in': '重连中 · {s} 秒后重试',
  'conn.offline': '离线',
  'conn.offline.in': '离线 · {s} 秒后重试',
  'conn.expired': '令牌过期',

  'sev.extreme': '特别严重',
  'sev.severe': '严重',
  'sev.moderate': '较重',
  'sev.minor': '一般',
  'sev.none': '未分级',

  'status.new': '待派遣',
  'status.dispatched': '已派遣',
  'status.accepted': '处置中',
  'status.handled': '待核查',
  'status.closed': '已结案',
  'status.cancelled': '已作废',
  'status.suspended': '已挂起',

  'due.accept': '签收',
  'due.handle': '处置',
  'due.left': '{what} 剩 {t}',
  'due.over': '{what} 超 {t}',
  'due.label.left': '{what}剩余',
  'due.label.over': '{what}超时',
  'due.suspended': '计时暂停',
  'due.none': '—',
  'duration.days': '{d}天{h}时',

  'flag.shadow': '试运行',
  'flag.silenced': '已静默',
  'flag.inhibited': '已抑制',
  'flag.warned': '已预警',
  'flag.escalated': '已升级 L{n}',
  'flag.arbitration': '争议仲裁',
  'flag.suspended': '挂起',
  'flag.extension': '延期申请中',
  'flag.rework': '返工 {n}',
  'flag.merged': '已并入 {id}',
  'deadline.state.running': '计时中',
  'deadline.state.warned': '临期预警',
  'deadline.state.missed': '已超时 · 区城运中心督办',
  'deadline.state.missed_twice': '严重超时 · 市城运中心督办',
  'deadline.in.working': '工作时',
  'deadline.in.natural': '自然时',
  'extension.pending': '延期申请 {span}（待批）',
  'extension.granted': '延期 {span}（已批准）',
  'extension.refused': '延期 {span}（已驳回）',
  'detail.escalated_to': '督办',

  'wall.heading': '城市运行一网统管',
  'wall.sub': '实时态势',
  'wall.alerts': '告警',
  'wall.cases': '案件',
  'wall.overdue': '已超时',
  'wall.soon': '即将超时',
  'wall.muted': '另有 {n} 条静默 / 抑制 / 试运行',
  'wall.feed': '最新告警',
  'wall.feed.empty': '暂无告警',
  'wall.map': '区域态势',
  'wall.map.legend': '方块：各区 · 圆点：告警（按等级着色） · 数字：告警 / 案件',
  'wall.map.overdue': '超时 {n}',
  'wall.watch': '时限监督',
  'wall.watch.empty': '暂无在办案件',
  'wall.col.id': '编号',
  'wall.col.title': '标题',
  'wall.col.district': '区域',
  'wall.col.status': '状态',
  'wall.col.lead': '主办部门',
  'wall.col.due': '时限',
  'wall.updated': '最后更新',
  'wall.scope': '{sub} · 角色 {role} · 区域 {districts}',
  'wall.scope.all': '全部',
  'wall.notoken.title': '缺少访问令牌',
  'wall.notoken.body': '大屏需要一个只读令牌才能接入实时数据。在运行 hub 的机器上执行下面的命令，然后打开 hub 启动时打印的大屏地址，或在本页地址后加上 #token= 和令牌。',
  'wall.expired.title': '令牌已过期',
  'wall.expired.body': '请重新执行下面的命令获取新令牌，并用新的 #token= 地址打开本页。',

  'role.commander': '指挥长',
  'role.dispatcher': '派遣员',
  'role.department': '处置部门',
  'role.viewer': '只读',

  'console.heading': '派遣台',
  'console.sub': '案件派遣与处置',
  'signin.title': '登录派遣台',
  'signin.paste': '粘贴令牌',
  'signin.paste.hint': '在运行 hub 的机器上执行 cityhub token --role department --dept 部门代码，把输出的最后一行粘贴到这里。令牌只保存在本标签页。',
  'signin.paste.placeholder': 'eyJhbGciOiJFZERTQSIs…',
  'signin.submit': '登录',
  'signin.dev': '开发登录',
  'signin.dev.hint': '仅限本机开发：hub 使用内置 Kafka / Redis 运行时，用它的签名密钥签发 {ttl} 有效的令牌。',
  'signin.role': '角色',
  'signin.dept': '部门',
  'signin.dept.none': '（无）',
  'signin.districts': '区域（可多选，不选为全部）',
  'signin.bad': '令牌无效或已过期：{msg}',
  'signin.failed': '登录失败：{msg}',
  'signin.as': '{sub} · {role}{dept}{districts}',
  'signout': '退出',

  'queue.title': '我的待办',
  'queue.count': '{n} 件',
  'queue.empty': '没有符合条件的案件',
  'queue.more': '仅显示前 {n} 件，请用筛选缩小范围',
  'filter.status': '状态',
  'filter.district': '区域',
  'filter.department': '部门',
  'filter.overdue': '仅看超时',
  'filter.open': '在办',
  'filter.any': '全部',

  'detail.empty': '从左侧列表选择一个案件',
  'detail.loading': '正在读取案件…',
  'detail.gone': '案件已不在你的范围内，或不存在',
  'detail.version': 'v{n}',
  'detail.district': '区域',
  'detail.severity': '等级',
  'detail.origin': '来源',
  'detail.created': '立案',
  'detail.dispatched': '派遣',
  'detail.rule': '规则',
  'detail.location': '位置',
  'detail.parts': '处置部门',
  'detail.part.lead': '主办',
  'detail.part.assist': '协办',
  'detail.part.accepted': '签收 {t}',
  'detail.part.handled': '反馈 {t}',
  'detail.deadlines': '时限',
  'detail.deadline.accept_due_at': '签收时限',
  'detail.deadline.handle_due_at': '处置时限',
  'detail.deadline.verify_due_at': '核查时限',
  'detail.actions': '操作',
  'detail.actions.none': '当前没有你可以执行的操作',
  'detail.actions.unknown': '服务器没有给出可执行的操作（allowed_actions），暂不显示按钮',
  'detail.history': '处理记录',
  'detail.history.empty': '暂无记录',
  'detail.history.by': '{actor}',

  'field.note': '说明 / 原因',
  'field.note.placeholder': '处置情况、退回或作废的原因…',
  'field.note.required': '“{action}”需要填写原因',
  'field.lead': '主办部门',
  'field.assist': '协办部门',
  'field.into': '并入案件编号',
  'field.required': '请填写“{field}”',
  'field.case_class': '时限类别',
  'field.case_class.default': '（按事件类型默认）',
  'field.sla': '自定时限（签收 / 处置）',
  'field.sla.accept': '签收，如 30m',
  'field.sla.handle': '处置，如 4h',
  'field.extend_by': '延长时长',
  'field.extend_by.placeholder': '如 8h 或 2wd',
  'field.until': '或延至',
  'field.extension.required': '请填写延长时长或延至时间',

  'action.create': '立案',
  'action.dispatch': '派遣',
  'action.accept': '签收',
  'action.return': '退回',
  'action.handle': '处置反馈',
  'action.verify': '核查',
  'action.verify.pass': '核查通过',
  'action.verify.fail': '核查不通过',
  'action.suspend': '挂起',
  'action.resume': '恢复',
  'action.cancel': '作废',
  'action.merge': '合并',
  'action.comment': '备注',
  'action.escalate': '升级',
  'action.request_extension': '申请延期',
  'action.refuse_extension': '驳回延期',
  'action.absorb': '并入',
  'action.warn': '临期预警',
  'action.grant_extension': '批准延期',
  'action.extension': '延期',
  'action.for': '{action}（{dept}）',
  'act.confirm': '确认{action}',
  'act.cancel': '取消',

  'notice.conflict': '案件已被他人更新（v{old} → v{new}），已刷新为最新状态。请确认后再操作。',
  'notice.conflict.transition': '这一步已不可执行：{msg}。案件已刷新为最新状态（v{new}）。',
  'notice.error': '操作失败（HTTP {status}）：{msg}',
  'notice.network': '无法连接 hub：{msg}',
  'notice.done': '已{action}，案件现为 v{n}',
  'notice.close': '关闭',
};

const en = {
  'app.wall.title': 'City operations · cityhub wall screen',
  'app.console.title': 'Dispatcher console · cityhub',
  'lang.switch': '中文',
  'lang.switch.title': '切换到中文',

  'conn.idle': 'Not connected',
  'conn.connecting': 'Connecting',
  'conn.connected': 'Connected',
  'conn.reconnecting': 'Reconnecting',
  'conn.reconnecting.in': 'Reconnecting · retry in {s}s',
  'conn.offline': 'Offline',
  'conn.offline.in': 'Offline · retry in {s}s',
  'conn.expired': 'Token expired',

  'sev.extreme': 'Extreme',
  'sev.severe': 'Severe',
  'sev.moderate': 'Moderate',
  'sev.minor': 'Minor',
  'sev.none': 'Unrated',

  'status.new': 'New',
  'status.dispatched': 'Dispatched',
  'status.accepted': 'In hand',
  'status.handled': 'To verify',
  'status.closed': 'Closed',
  'status.cancelled': 'Cancelled',
  'status.suspended': 'Suspended',

  'due.accept': 'accept',
  'due.handle': 'handle',
  'due.left': '{what} in {t}',
  'due.over': '{what} {t} late',
  'due.label.left': 'left to {what}',
  'due.label.over': '{what} overdue by',
  'due.suspended': 'clock stopped',
  'due.none': '—',
  'duration.days': '{d}d {h}h',

  'flag.shadow': 'Shadow',
  'flag.silenced': 'Silenced',
  'flag.inhibited': 'Inhibited',
  'flag.warned': 'Warned',
  'flag.escalated': 'Escalated L{n}',
  'flag.arbitration': 'In arbitration',
  'flag.suspended': 'Suspended',
  'flag.extension': 'Extension asked',
  'flag.rework': 'Rework {n}',
  'flag.merged': 'Merged into {id}',
  'deadline.state.running': 'running',
  'deadline.state.warned': 'warned',
  'deadline.state.missed': 'missed · district centre',
  'deadline.state.missed_twice': 'missed twice · city centre',
  'deadline.in.working': 'working time',
  'deadline.in.natural': 'calendar time',
  'extension.pending': 'extension {span} (pending)',
  'extension.granted': 'extension {span} (granted)',
  'extension.refused': 'extension {span} (refused)',
  'detail.escalated_to': 'Escalated to',

  'wall.heading': 'One network, unified management',
  'wall.sub': 'Live',
  'wall.alerts': 'Alerts',
  'wall.cases': 'Cases',
  'wall.overdue': 'Overdue',
  'wall.soon': 'Due soon',
  'wall.muted': '+{n} silenced, inhibited or shadow',
  'wall.feed': 'Latest alerts',
  'wall.feed.empty': 'No alert is firing',
  'wall.map': 'Districts',
  'wall.map.legend': 'Tiles: districts · dots: alerts by severity · numbers: alerts / cases',
  'wall.map.overdue': '{n} overdue',
  'wall.watch': 'Deadline watch',
  'wall.watch.empty': 'No open case',
  'wall.col.id': 'Case',
  'wall.col.title': 'Title',
  'wall.col.district': 'District',
  'wall.col.status': 'Status',
  'wall.col.lead': 'Lead',
  'wall.col.due': 'Deadline',
  'wall.updated': 'Updated',
  'wall.scope': '{sub} · role {role} · districts {districts}',
  'wall.scope.all': 'all',
  'wall.notoken.title': 'A token is needed',
  'wall.notoken.body': 'The wall screen needs a read-only token to follow the live feed. Run the command below where the hub runs, then open the wall-screen link the hub printed, or add #token= and the token to this page\'s address.',
  'wall.expired.title': 'The token has expired',
  'wall.expired.body': 'Get a new token with the command below and open this page with the new #token= address.',

  'role.commander': 'commander',
  'role.dispatcher': 'dispatcher',
  'role.department': 'department',
  'role.viewer': 'viewer',

  'console.heading': 'Dispatcher console',
  'console.sub': 'dispatch and handling',
  'signin.title': 'Sign in to the console',
  'signin.paste': 'Paste a token',
  'signin.paste.hint': 'Run cityhub token --role department --dept CODE where the hub runs and paste the last line here. The token stays in this tab only.',
  'signin.paste.placeholder': 'eyJhbGciOiJFZERTQSIs…',
  'signin.submit': 'Sign in',
  'signin.dev': 'Dev sign-in',
  'signin.dev.hint': 'On this machine only: a hub running embedded Kafka or Redis signs a token valid for {ttl} with its own key.',
  'signin.role': 'Role',
  'signin.dept': 'Department',
  'signin.dept.none': '(none)',
  'signin.districts': 'Districts (several allowed; none means all)',
  'signin.bad': 'The token is invalid or has expired: {msg}',
  'signin.failed': 'Sign-in failed: {msg}',
  'signin.as': '{sub} · {role}{dept}{districts}',
  'signout': 'Sign out',

  'queue.title': 'My queue',
  'queue.count': '{n} cases',
  'queue.empty': 'No case matches',
  'queue.more': 'Showing the first {n}; narrow the filters',
  'filter.status': 'Status',
  'filter.district': 'District',
  'filter.department': 'Department',
  'filter.overdue': 'Overdue only',
  'filter.open': 'Open',
  'filter.any': 'Any',

  'detail.empty': 'Pick a case from the list',
  'detail.loading': 'Loading the case…',
  'detail.gone': 'The case is outside your scope or does not exist',
  'detail.version': 'v{n}',
  'detail.district': 'District',
  'detail.severity': 'Severity',
  'detail.origin': 'Origin',
  'detail.created': 'Opened',
  'detail.dispatched': 'Dispatched',
  'detail.rule': 'Rule',
  'detail.location': 'Location',
  'detail.parts': 'Departments',
  'detail.part.lead': 'lead',
  'detail.part.assist': 'assist',
  'detail.part.accepted': 'accepted {t}',
  'detail.part.handled': 'reported {t}',
  'detail.deadlines': 'Deadlines',
  'detail.deadline.accept_due_at': 'Accept by',
  'detail.deadline.handle_due_at': 'Handle by',
  'detail.deadline.verify_due_at': 'Verify by',
  'detail.actions': 'Actions',
  'detail.actions.none': 'Nothing for you to do on this case now',
  'detail.actions.unknown': 'The server did not say which actions are allowed (allowed_actions); no buttons shown',
  'detail.history': 'History',
  'detail.history.empty': 'No entries yet',
  'detail.history.by': '{actor}',

  'field.note': 'Note / reason',
  'field.note.placeholder': 'What was done, or why it is returned or cancelled…',
  'field.note.required': '"{action}" needs a reason',
  'field.lead': 'Lead department',
  'field.assist': 'Assisting departments',
  'field.into': 'Merge into case',
  'field.required': 'Fill in "{field}"',
  'field.case_class': 'Deadline class',
  'field.case_class.default': '(the event type\'s default)',
  'field.sla': 'Own deadlines (accept / handle)',
  'field.sla.accept': 'accept, e.g. 30m',
  'field.sla.handle': 'handle, e.g. 4h',
  'field.extend_by': 'Extend by',
  'field.extend_by.placeholder': 'e.g. 8h or 2wd',
  'field.until': 'or until',
  'field.extension.required': 'Give how long to extend, or until when',

  'action.create': 'Open',
  'action.dispatch': 'Dispatch',
  'action.accept': 'Accept',
  'action.return': 'Return',
  'action.handle': 'Report handled',
  'action.verify': 'Verify',
  'action.verify.pass': 'Verify: pass',
  'action.verify.fail': 'Verify: fail',
  'action.suspend': 'Suspend',
  'action.resume': 'Resume',
  'action.cancel': 'Cancel case',
  'action.merge': 'Merge',
  'action.comment': 'Comment',
  'action.escalate': 'Escalate',
  'action.request_extension': 'Request extension',
  'action.refuse_extension': 'Refuse extension',
  'action.absorb': 'Absorb',
  'action.warn': 'Warn',
  'action.grant_extension': 'Grant extension',
  'action.extension': 'Extension',
  'action.for': '{action} ({dept})',
  'act.confirm': 'Confirm: {action}',
  'act.cancel': 'Never mind',

  'notice.conflict': 'Someone changed this case meanwhile (v{old} → v{new}); it has been refreshed. Check it and act again.',
  'notice.conflict.transition': 'This step is no longer possible: {msg}. The case has been refreshed (v{new}).',
  'notice.error': 'The action failed (HTTP {status}): {msg}',
  'notice.network': 'Cannot reach the hub: {msg}',
  'notice.done': '{action}: done, the case is now v{n}',
  'notice.close': 'Close',
};

const dictionaries = { zh, en };

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
  apply();
  for (const f of listeners) f(lang);
}

/** onChange calls f after every switch of language. */
export function onChange(f) {
  listeners.push(f);
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

apply();
