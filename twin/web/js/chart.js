// A small line chart in inline SVG (no library, no network): one or two series over time, on a
// value axis with round ticks, and a text summary for screen readers.
//
// The value axis (niceAxis, pure): for a quantity that cannot be negative (a volume, a dose, a
// battery level) it starts at 0, so a flat line sits at its height instead of in the middle of an
// invented ±1 band, and a small change is not blown up into a cliff; ticks fall on 1, 2 or 5 × 10^n.
// `max` (a reservoir's capacity, 100 %) caps the axis where the quantity cannot go beyond it.

import { h, svg } from "./dom.js";
import { deviceWhen } from "./device-clock.js";

const WIDTH = 560;
const HEIGHT = 160;
const PAD = { left: 52, right: 12, top: 10, bottom: 22 };
const TICKS = 5;

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

/**
 * The axis for values from `lo` to `hi`: { lo, hi, step, ticks: [values] }. `zero`: the quantity
 * is never negative (the axis starts at 0); `max`: it never exceeds this.
 */
export function niceAxis(lo, hi, { zero = true, max = null } = {}) {
  let a = zero ? Math.min(0, lo) : lo;
  let b = hi;
  if (b === a) {
    // a flat series: give it room above (and below when the axis does not start at 0)
    const room = Math.abs(b) > 0 ? Math.abs(b) * 0.1 : 1;
    b += room;
    if (!zero) a -= room;
  }
  const step = niceStep((b - a) / TICKS);
  a = Math.floor(a / step + 1e-9) * step;
  b = Math.ceil(b / step - 1e-9) * step;
  if (max !== null && b > max && hi <= max) b = max;
  const ticks = [];
  for (let v = a; v <= b + step * 1e-6; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < b) ticks.push(b);
  return { lo: a, hi: b, step, ticks };
}

function decimals(step) {
  return step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step)));
}

/**
 * series: [{ label, cls, points: [{ t: epoch ms (device time), v: number }] }]; `zero` and `max`
 * as for niceAxis. Returns a <figure>.
 */
export function lineChart({ title, unit, series, zero = true, max = null }) {
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.v));
  const figure = h("figure", { class: "chart" }, h("figcaption", {}, `${title} (${unit})`));
  if (all.length < 2) {
    figure.append(h("p", { class: "muted" }, "not enough samples yet"));
    return figure;
  }
  let [t0, t1] = [Math.min(...all.map((p) => p.t)), Math.max(...all.map((p) => p.t))];
  if (t1 === t0) t1 = t0 + 1;
  const vs = all.map((p) => p.v);
  const axis = niceAxis(Math.min(...vs), Math.max(...vs), { zero, max });
  const format = (v) => v.toFixed(decimals(axis.step));
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - ((v - axis.lo) / (axis.hi - axis.lo)) * (HEIGHT - PAD.top - PAD.bottom);
  const last = series[0].points[series[0].points.length - 1];
  const from = deviceWhen(new Date(t0).toISOString());
  const to = deviceWhen(new Date(t1).toISOString());
  const summary = `${title}: between ${format(Math.min(...vs))} and ${format(Math.max(...vs))} ${unit} from ${from} to ${to} (device time); latest ${last ? format(last.v) : "—"} ${unit}`;
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": summary, class: "chart-svg", dataset: null },
    ...axis.ticks.map((v) => [
      svg("line", { x1: PAD.left, y1: y(v), x2: WIDTH - PAD.right, y2: y(v), class: "grid" }),
      svg("text", { x: PAD.left - 4, y: y(v) + 3, class: "tick", "text-anchor": "end" }, format(v)),
    ]),
    svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svg("line", { x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svg("text", { x: PAD.left, y: HEIGHT - 6, class: "tick" }, from),
    svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, class: "tick", "text-anchor": "end" }, to),
    ...series.map((s) =>
      svg("polyline", {
        class: `line ${s.cls || ""}`,
        points: s.points
          .filter((p) => Number.isFinite(p.v))
          .map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`)
          .join(" "),
      }),
    ),
  );
  chart.dataset.axisLo = String(axis.lo);
  chart.dataset.axisHi = String(axis.hi);
  figure.append(chart);
  if (series.length > 1) {
    figure.append(h("p", { class: "legend" }, series.map((s) => h("span", { class: `key ${s.cls || ""}` }, s.label))));
  }
  return figure;
}
