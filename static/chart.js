// Daily estimated cost as an SVG bar chart drawn here, with a dollar y-axis.
const NS = "http://www.w3.org/2000/svg";
const H = 180, LEFT = 52, TOP = 10, BOTTOM = 160;

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The smallest 1, 2 or 5 times a power of ten at or above `v`: the axis top. */
function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= v - 1e-12);
}

/** Dollars on the axis: cents, or finer when the whole axis is under ten cents. */
const tick = (v, top) => `$${v.toFixed(top < 0.1 ? Math.max(2, 1 - Math.floor(Math.log10(top)) + 1) : 2)}`;

/**
 * `width` is the drawing's width in CSS pixels: the chart is drawn at the size it is shown, so
 * its labels stay legible on a phone rather than being scaled down with it.
 */
export function chart(groups, days, width = 600) {
  const W = Math.round(Math.min(1000, Math.max(280, width)));
  const svg = svgEl("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Daily cost, last 30 days" });
  const byDay = new Map(groups.map((g) => [g.key, Number(g.estimated_cost_usd)]));
  const max = Math.max(...days.map((d) => byDay.get(d) ?? 0));
  const top = max > 0 ? niceCeil(max) : 1;
  const y = (v) => BOTTOM - (v / top) * (BOTTOM - TOP);
  const axis = svgEl("g", { class: "y-axis" });
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const v = top * f;
    axis.append(svgEl("line", { x1: LEFT, x2: W, y1: y(v).toFixed(1), y2: y(v).toFixed(1) }));
    axis.append(svgEl("text", { x: LEFT - 6, y: (y(v) + 3.5).toFixed(1), "text-anchor": "end" }, tick(v, top)));
  }
  svg.append(axis);
  const w = (W - LEFT) / days.length;
  days.forEach((d, i) => {
    const v = byDay.get(d) ?? 0;
    const h = BOTTOM - y(v);
    const x = LEFT + i * w;
    const r = svgEl("rect", { x: (x + 1).toFixed(1), y: (BOTTOM - h).toFixed(1), width: Math.max(1, w - 2).toFixed(1), height: h.toFixed(1) });
    r.append(svgEl("title", {}, `${d}: $${v}`));
    svg.append(r);
    // A label a week, and the last day unless it would crowd the weekly one before it.
    if (i % 7 === 0 || (i === days.length - 1 && i % 7 >= 3)) {
      const last = i === days.length - 1;
      svg.append(svgEl("text", { x: (last ? x + w : x).toFixed(1), y: "176", "text-anchor": last ? "end" : "start" }, d.slice(5)));
    }
  });
  return svg;
}
