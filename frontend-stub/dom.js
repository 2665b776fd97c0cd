// Building the pages' elements: the few helpers both pages share.

/** $ returns the element with the given id. */
export const $ = (id) => document.getElementById(id);

/** el makes an element with a class (may be "") and, when given, text. */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** option makes an <option>. */
export function option(value, text, selected = false) {
  const o = el('option', '', text);
  o.value = value;
  o.selected = selected;
  return o;
}

/** showError writes text into an error line, hidden while text is empty. */
export function showError(line, text) {
  line.textContent = text;
  line.hidden = !text;
}
