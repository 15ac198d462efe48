// A small line chart in inline SVG (no library, no network): one or two series over time, with
// the value range and the time span written out, and a text summary for screen readers.

import { h, svg } from "./dom.js";
import { when } from "./clock.js";

const WIDTH = 560;
const HEIGHT = 150;
const PAD = { left: 52, right: 12, top: 10, bottom: 22 };

/** Enough decimals that the two ends of the range read differently. */
function decimals(lo, hi) {
  const span = Math.abs(hi - lo);
  return span >= 100 ? 0 : span >= 10 ? 1 : span >= 1 ? 2 : span >= 0.01 ? 3 : 4;
}

/**
 * series: [{ label, cls, points: [{ t: epoch ms, v: number }] }]. Returns a <figure>.
 */
export function lineChart({ title, unit, series }) {
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.v));
  const figure = h("figure", { class: "chart" }, h("figcaption", {}, `${title} (${unit})`));
  if (all.length < 2) {
    figure.append(h("p", { class: "muted" }, "not enough samples yet"));
    return figure;
  }
  let [t0, t1] = [Math.min(...all.map((p) => p.t)), Math.max(...all.map((p) => p.t))];
  let [v0, v1] = [Math.min(...all.map((p) => p.v)), Math.max(...all.map((p) => p.v))];
  if (t1 === t0) t1 = t0 + 1;
  if (v1 === v0) [v0, v1] = [v0 - 1, v1 + 1];
  const digits = decimals(v0, v1);
  const format = (v) => v.toFixed(digits);
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - ((v - v0) / (v1 - v0)) * (HEIGHT - PAD.top - PAD.bottom);
  const last = series[0].points[series[0].points.length - 1];
  const summary = `${title}: from ${format(v0)} to ${format(v1)} ${unit} between ${when(new Date(t0).toISOString())} and ${when(new Date(t1).toISOString())}; latest ${last ? format(last.v) : "—"} ${unit}`;
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": summary, class: "chart-svg" },
    svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svg("line", { x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH - PAD.right, y2: HEIGHT - PAD.bottom, class: "axis" }),
    svg("text", { x: PAD.left - 4, y: PAD.top + 8, class: "tick", "text-anchor": "end" }, format(v1)),
    svg("text", { x: PAD.left - 4, y: HEIGHT - PAD.bottom, class: "tick", "text-anchor": "end" }, format(v0)),
    svg("text", { x: PAD.left, y: HEIGHT - 6, class: "tick" }, when(new Date(t0).toISOString())),
    svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, class: "tick", "text-anchor": "end" }, when(new Date(t1).toISOString())),
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
  figure.append(chart);
  if (series.length > 1) {
    figure.append(h("p", { class: "legend" }, series.map((s) => h("span", { class: `key ${s.cls || ""}` }, s.label))));
  }
  return figure;
}
