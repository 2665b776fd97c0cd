// Signing in to the console: a pasted token, or — on a hub that offers it to
// this page — the dev sign-in, which has the hub sign a short-lived token.

import * as i18n from '../i18n.js';
import { t } from '../i18n.js';
import { api } from '../session.js';
import { $, option, showError } from '../dom.js';

/** showSignedIn shows the desk, or the sign-in forms. */
export function showSignedIn(yes) {
  $('signin').hidden = yes;
  $('desk').hidden = !yes;
  $('signout').hidden = !yes;
  $('who').hidden = !yes;
  $('silences-toggle').hidden = !yes;
}

/** bindSignIn sends what the forms give to signInWith(token), which throws
 * when the hub does not take it. */
export function bindSignIn(signInWith) {
  $('token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tok = $('token-input').value.replace(/\s+/g, '');
    showError($('token-error'), '');
    if (!tok) return;
    $('token-submit').disabled = true;
    try {
      await signInWith(tok);
    } catch (err) {
      showError($('token-error'), t('signin.bad', { msg: err.message }));
    } finally {
      $('token-submit').disabled = false;
    }
  });
  $('dev-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError($('dev-error'), '');
    const body = { role: $('dev-role').value };
    if ($('dev-dept').value) body.dept = $('dev-dept').value;
    const districts = [...$('dev-districts').selectedOptions].map((o) => o.value);
    if (districts.length) body.districts = districts;
    $('dev-submit').disabled = true;
    try {
      const answer = await api('POST', '/dev/signin', { body });
      await signInWith(answer.token);
    } catch (err) {
      showError($('dev-error'), t('signin.failed', { msg: err.message }));
    } finally {
      $('dev-submit').disabled = false;
    }
  });
}

// The dev form follows the language with the choices of the latest offer.
let stopRelabel = () => {};

/** offerDevSignIn shows the dev sign-in when this hub offers it to this page. */
export async function offerDevSignIn() {
  let st;
  try {
    st = await api('GET', '/dev/signin');
  } catch {
    return; // a hub without it, or a gateway alone
  }
  if (!st?.enabled) return;
  i18n.learnCatalog({ districts: st.districts, departments: st.departments });
  const fill = () => {
    const role = $('dev-role').value || 'department';
    $('dev-role').replaceChildren(...(st.roles || []).map((r) => option(r, i18n.roleName(r), r === role)));
    const dept = $('dev-dept').value;
    $('dev-dept').replaceChildren(option('', t('signin.dept.none')), ...(st.departments || []).map((d) => option(d.code, `${i18n.deptName(d.code)} · ${d.code}`, d.code === dept)));
    const chosen = new Set([...$('dev-districts').selectedOptions].map((o) => o.value));
    $('dev-districts').replaceChildren(...(st.districts || []).map((d) => option(d.code, i18n.districtName(d.code), chosen.has(d.code))));
    $('dev-hint').textContent = t('signin.dev.hint', { ttl: st.ttl || '1h' });
  };
  fill();
  stopRelabel();
  stopRelabel = i18n.onChange(fill);
  $('dev-form').hidden = false;
}
