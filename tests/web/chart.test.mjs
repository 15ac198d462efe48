// The chart's value axis (twin/web/js/chart.js niceAxis): from zero for quantities that cannot be
// negative, round ticks, no invented ±1 band around a flat line.

import assert from "node:assert/strict";
import { test } from "node:test";

globalThis.document = { createElement: () => ({}), createElementNS: () => ({}), createTextNode: () => ({}) };
const { niceAxis } = await import("../../twin/web/js/chart.js");

test("a flat line sits at its height on an axis from zero", () => {
  assert.deepEqual(niceAxis(87.3, 87.3, { max: 100 }), { lo: 0, hi: 100, step: 20, ticks: [0, 20, 40, 60, 80, 100] });
  const empty = niceAxis(0, 0);
  assert.equal(empty.lo, 0);
  assert.ok(empty.hi > 0);
  const flat = niceAxis(18, 18);
  assert.equal(flat.lo, 0);
  assert.ok(flat.hi >= 18 && flat.hi <= 25, `${flat.hi}`);
});

test("ticks fall on 1, 2 or 5 x 10^n and cover the data", () => {
  const axis = niceAxis(3.21, 17.9);
  assert.equal(axis.lo, 0);
  assert.ok(axis.hi >= 17.9);
  for (const v of axis.ticks) assert.ok(Number.isInteger(Math.round(v / axis.step * 1e9) / 1e9));
  assert.ok([1, 2, 5].includes(axis.step / 10 ** Math.floor(Math.log10(axis.step))));
  const small = niceAxis(0.0412, 0.0419, { zero: false });
  assert.ok(small.lo <= 0.0412 && small.hi >= 0.0419 && small.lo > 0.03);
  assert.ok(small.ticks.length >= 2);
  assert.equal(niceAxis(5, 39, { max: 20 }).hi, 40); // data beyond the cap: the cap does not cut it
});
