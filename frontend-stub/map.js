// A tile-grid cartogram of the catalog's districts: each district is one
// equal tile, placed on a grid as near to where it lies as the other tiles
// allow. A city's central districts are small and close together, its outer
// ones large and far apart; on a plain projection the centre is a pile of
// overlapping labels. Tiles keep every name legible and the rough geography
// (north up, the river side east) recognisable. Drawn in SVG from the
// catalog's centres: no tiles from a map server, nothing from outside.

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// Positions are spread half by distance and half by rank, so that one
// outlying district does not squeeze all the others into a corner.
function spread(values) {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const order = values.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]);
  const rank = new Array(values.length);
  order.forEach(([, i], r) => {
    rank[i] = values.length > 1 ? r / (values.length - 1) : 0.5;
  });
  return values.map((v, i) => 0.5 * (max > min ? (v - min) / (max - min) : 0.5) + 0.5 * rank[i]);
}

/** layout assigns each district a cell of a cols × rows grid: the greedy
 * matching of districts to cells by distance from where the district would
 * lie, shortest first. It returns [{district, col, row}]. */
export function layout(districts, cols, rows) {
  const k = Math.cos((districts.reduce((s, d) => s + d.centre.lat, 0) / districts.length) * Math.PI / 180);
  const xs = spread(districts.map((d) => d.centre.lon * k));
  const ys = spread(districts.map((d) => -d.centre.lat)); // north up
  const pairs = [];
  districts.forEach((d, i) => {
    const ix = xs[i] * (cols - 1);
    const iy = ys[i] * (rows - 1);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) pairs.push({ i, c, r, dist: (c - ix) ** 2 + (r - iy) ** 2 });
    }
  });
  pairs.sort((a, b) => a.dist - b.dist || a.i - b.i);
  const taken = new Set();
  const placed = new Map();
  for (const p of pairs) {
    if (placed.has(p.i) || taken.has(`${p.c},${p.r}`)) continue;
    placed.set(p.i, p);
    taken.add(`${p.c},${p.r}`);
    if (placed.size === districts.length) break;
  }
  return districts.map((d, i) => ({ district: d, col: placed.get(i).c, row: placed.get(i).r }));
}

// The grid has about twice as many cells as districts, shaped like the
// drawing area, so that tiles can sit near their true places.
function gridFor(n, width, height) {
  const cells = Math.max(4, Math.ceil(n * 1.8));
  let cols = Math.max(2, Math.round(Math.sqrt(cells * width / height)));
  let rows = Math.max(2, Math.ceil(cells / cols));
  while ((cols - 1) * rows >= cells && cols > 2) cols--;
  rows = Math.max(rows, Math.ceil(n / cols));
  return { cols, rows };
}

const MAX_DOTS = 12;

/** DistrictMap draws the tiles into an <svg> and updates their markers.
 * The drawing takes the shape of the panel, so that the tiles are as large
 * as the panel allows, and is redrawn when the panel changes shape. */
export class DistrictMap {
  constructor(el) {
    this.el = el;
    this.tiles = new Map();
    this.districts = [];
    this.label = (code) => code;
    this.last = null;
    this.aspect = 0;
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => {
        if (this.districts.length && Math.abs(this.shape() - this.aspect) > 0.05) this.draw();
      }).observe(el);
    }
  }

  /** shape is the panel's height over its width. */
  shape() {
    const r = this.el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 ? Math.min(2, Math.max(0.4, r.height / r.width)) : 0.72;
  }

  /** build lays out the districts of a catalog: [{code, name, centre}];
   * label(code) names one. */
  build(districts, label) {
    this.districts = districts.filter((d) => d.centre && Number.isFinite(d.centre.lon) && Number.isFinite(d.centre.lat));
    this.label = label;
    this.draw();
  }

  draw() {
    this.el.replaceChildren();
    this.tiles.clear();
    if (this.districts.length === 0) return;
    this.aspect = this.shape();
    const W = 1000, H = Math.round(1000 * this.aspect), gap = 16;
    this.el.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const { cols, rows } = gridFor(this.districts.length, W, H);
    // Trim the grid to the occupied cells, so that the tiles fill the panel.
    const cells = layout(this.districts, cols, rows);
    const minC = Math.min(...cells.map((c) => c.col)), maxC = Math.max(...cells.map((c) => c.col));
    const minR = Math.min(...cells.map((c) => c.row)), maxR = Math.max(...cells.map((c) => c.row));
    const size = Math.min(W / (maxC - minC + 1), H / (maxR - minR + 1));
    const offX = (W - size * (maxC - minC + 1)) / 2, offY = (H - size * (maxR - minR + 1)) / 2;
    const s = size - gap;
    const font = Math.round(Math.min(40, s * 0.16));
    for (const { district: d, col, row } of cells) {
      const x = offX + (col - minC) * size + gap / 2;
      const y = offY + (row - minR) * size + gap / 2;
      const g = svg('g', { class: 'district level-calm', 'data-district': d.code, transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})` });
      const rect = svg('rect', { class: 'tile', width: s.toFixed(1), height: s.toFixed(1), rx: 12 });
      const name = svg('text', { class: 'name', x: font * 0.5, y: font * 1.25, 'font-size': font });
      const count = svg('text', { class: 'num', x: s - font * 0.5, y: s - font * 0.5, 'text-anchor': 'end', 'font-size': font });
      const overdue = svg('text', { class: 'over', x: font * 0.5, y: s - font * 0.5, 'font-size': Math.round(font * 0.72) });
      const dots = svg('g', { class: 'dots', transform: `translate(${font * 0.5} ${(font * 1.75).toFixed(1)})` });
      g.append(rect, name, dots, count, overdue);
      this.el.append(g);
      this.tiles.set(d.code, { g, name, count, overdue, dots, size: s, font });
    }
    this.relabel(this.label);
    if (this.last) this.update(...this.last);
  }

  /** relabel writes the districts' names (after a language switch). */
  relabel(label) {
    this.label = label;
    for (const [code, tile] of this.tiles) tile.name.textContent = label(code);
  }

  /** update colours each tile by its worst firing alert and draws one dot
   * per alert, in severity order. per: Map code → {alerts: [severity…],
   * cases, overdue}; overdueText(n) labels the overdue count. */
  update(per, severities, overdueText) {
    this.last = [per, severities, overdueText];
    for (const [code, tile] of this.tiles) {
      const p = per.get(code) || { alerts: [], cases: 0, overdue: 0 };
      const sorted = [...p.alerts].sort((a, b) => severities.indexOf(a) - severities.indexOf(b));
      const level = sorted.length ? sorted[0] || 'none' : 'calm';
      tile.g.setAttribute('class', `district level-${level}${p.overdue ? ' has-overdue' : ''}`);
      tile.g.dataset.alerts = String(p.alerts.length);
      tile.g.dataset.cases = String(p.cases);
      tile.g.dataset.overdue = String(p.overdue);
      tile.count.textContent = p.alerts.length || p.cases ? `${p.alerts.length} / ${p.cases}` : '';
      tile.overdue.textContent = p.overdue ? overdueText(p.overdue) : '';
      const r = Math.max(6, tile.font * 0.3);
      const step = r * 2.7;
      const perRow = Math.max(1, Math.floor((tile.size - tile.font) / step));
      const dots = sorted.slice(0, MAX_DOTS).map((sev, i) => svg('circle', {
        class: `dot sev-${sev || 'none'}`,
        r: r.toFixed(1),
        cx: (r + (i % perRow) * step).toFixed(1),
        cy: (r + Math.floor(i / perRow) * step).toFixed(1),
      }));
      if (sorted.length > MAX_DOTS) {
        const more = svg('text', { class: 'more', x: ((MAX_DOTS % perRow) * step).toFixed(1), y: (r * 1.5 + Math.floor(MAX_DOTS / perRow) * step).toFixed(1), 'font-size': Math.round(tile.font * 0.6) });
        more.textContent = `+${sorted.length - MAX_DOTS}`;
        dots.push(more);
      }
      tile.dots.replaceChildren(...dots);
    }
  }
}
