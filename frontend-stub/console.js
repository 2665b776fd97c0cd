// The dispatcher console (派遣台): a department's or a dispatcher's queue,
// one case in detail with its deadlines and history, and the actions the hub
// says the signed-in caller may take on it now (allowed_actions). This module
// only puts the parts together — sign-in (console/signin.js), the queue
// (console/queue.js), the open case (console/detail.js) and its actions
// (console/actions.js), and the alert silences (console/silences.js) in
// place of the case — around the live websocket they follow.

import * as i18n from './i18n.js';
import { t } from './i18n.js';
import { takeToken, store as storeToken, forget, claims, expired, api } from './session.js';
import { Store, Feed, showConnection } from './live.js';
import { isOpen } from './cases.js';
import { $, showError } from './dom.js';
import { Queue, liveFilter } from './console/queue.js';
import { Detail, caseInHash } from './console/detail.js';
import { Actions } from './console/actions.js';
import { showSignedIn, bindSignIn, offerDevSignIn } from './console/signin.js';
import { Silences, formFromCase } from './console/silences.js';

const TOKEN_KEY = 'cityhub.console.token';

/** openDesk starts the desk of a caller the hub took token from, with the
 * catalog cat; signOut(err) is called when the hub stops taking it. It
 * returns {stop(), everySecond()}; stop() leaves nothing running and no
 * listener behind, so that a later sign-in starts afresh. */
function openDesk(token, cat, signOut) {
  const me = claims(token);
  const catalog = {
    districts: cat?.districts || [],
    departments: cat?.departments || [],
    case_classes: cat?.case_classes || {},
  };
  i18n.learnCatalog(cat);
  const call = (method, path, body) => api(method, path, { token, body });
  let stopped = false;
  const authFailed = (err) => {
    if (err?.status !== 401) return false;
    if (!stopped) signOut(err);
    return true;
  };
  const listeners = new AbortController();
  const signal = listeners.signal;

  // Every case the desk knows: the live snapshot of open ones, their
  // deltas, and closed or cancelled ones read for the status filter, which
  // a new snapshot does not replace.
  const cases = new Store();
  let feed = null;
  const queue = new Queue({
    me, catalog, cases, call, authFailed, signal,
    onOpen: (id) => openCase(id),
    onFilters: (f) => feed?.resubscribe(liveFilter(f)),
  });
  const actions = new Actions({ me, catalog, cases, call, authFailed, signal, reload: () => detail.refresh() });
  const detail = new Detail({ cases, call, authFailed, actions, onLoaded: () => queue.changed() });
  const silences = new Silences({ me, catalog, cases, call, authFailed, signal, onCount: showSilenceCount });
  // The silences take the place of the open case; opening a case brings
  // it back.
  const showView = (view) => {
    const sil = view === 'silences';
    $('silences').hidden = !sil;
    $('detail').hidden = sil;
    $('silences-toggle').setAttribute('aria-pressed', String(sil));
    if (sil) {
      silences.fill();
      silences.refresh();
    }
  };
  $('silences-toggle').addEventListener('click', () => showView($('silences').hidden ? 'silences' : 'detail'), { signal });
  $('sil-close').addEventListener('click', () => showView('detail'), { signal });
  $('d-silence').addEventListener('click', () => {
    if (!detail.data) return;
    showView('silences');
    silences.prefill(formFromCase(detail.data));
  }, { signal });
  const openCase = (id) => {
    if (!id) return;
    showView('detail');
    queue.select(id);
    detail.open(id);
  };

  const showWho = () => {
    const dept = me.dept ? ` · ${i18n.deptName(me.dept)}` : '';
    const districts = Array.isArray(me.districts) && me.districts.length
      ? ` · ${me.districts.map(i18n.districtName).join(i18n.language() === 'en' ? ', ' : '、')}`
      : '';
    $('who').textContent = t('signin.as', { sub: me.sub || '?', role: i18n.roleName(me.role || '?'), dept, districts });
  };
  const stopRelabel = i18n.onChange(() => {
    showWho();
    queue.fillFilters();
    queue.render();
    if (detail.data) detail.render();
    silences.fill();
    silences.render();
  });

  showSignedIn(true);
  showWho();
  queue.fillFilters();
  feed = new Feed({
    token,
    streams: ['cases'],
    filter: liveFilter(queue.filters()),
    stores: { cases },
    survives: { cases: (c) => !isOpen(c) },
    tokenExpired: () => expired(token),
    onState: (status) => {
      showConnection($('conn'), status, t);
      if (status.state === 'expired') authFailed({ status: 401, message: t('conn.expired') });
    },
    onChange: (stream, change) => {
      queue.changed();
      detail.follow(change);
    },
  });
  feed.start();
  queue.render();
  detail.render();
  silences.fill();
  silences.refresh();
  openCase(caseInHash(location.hash));

  return {
    stop() {
      stopped = true;
      listeners.abort();
      stopRelabel();
      feed.stop();
      detail.stop();
      silences.stop();
      showView('detail');
      showSilenceCount(0);
    },
    everySecond() {
      showConnection($('conn'), feed.status(), t);
      queue.tick();
      detail.tick();
    },
  };
}

// showSilenceCount puts the number of silences active now beside the
// button that shows them.
function showSilenceCount(n) {
  const badge = $('silences-count');
  badge.dataset.count = String(n);
  badge.textContent = String(n);
  badge.hidden = n === 0;
}

function start() {
  i18n.bindToggle($('lang'));
  let desk = null;

  const showSignIn = (err) => {
    showSignedIn(false);
    showError($('token-error'), t('signin.bad', { msg: err.message }));
    offerDevSignIn();
  };
  // signOut leaves the desk of a token the hub no longer takes.
  const signOut = (err) => {
    desk?.stop();
    desk = null;
    forget(TOKEN_KEY);
    showSignIn(err);
  };
  const signInWith = async (tok) => {
    // The catalog needs a valid token: reading it checks the token too.
    const cat = await api('GET', '/v1/catalog', { token: tok });
    storeToken(TOKEN_KEY, tok);
    desk?.stop();
    desk = openDesk(tok, cat, signOut);
  };

  $('signout').addEventListener('click', () => {
    forget(TOKEN_KEY);
    desk?.stop();
    location.hash = '';
    location.reload();
  });
  bindSignIn(signInWith);
  setInterval(() => desk?.everySecond(), 1000);

  const tok = takeToken(TOKEN_KEY);
  if (tok && !expired(tok)) {
    signInWith(tok).catch((err) => (err?.status === 401 ? signOut(err) : showSignIn(err)));
    return;
  }
  if (tok) forget(TOKEN_KEY);
  showSignedIn(false);
  offerDevSignIn();
}

start();
