// The fleet page's urgency order and filters, the pump's clock, the chart axis and the alarm
// list's follow-up rows (twin/web/js/fleet-order.js, device-clock.js, chart.js's niceAxis, state.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { deviceAgeS, daysUntil, deviceNowMs, inDays, span } from "../../twin/web/js/device-clock.js";
import { orderFleet } from "../../twin/web/js/fleet-order.js";
import { ConsoleState, followUpId } from "../../twin/web/js/state.js";

const WALL = Date.parse("2026-12-01T12:00:00Z");
const DEVICE = "2027-03-01T00:00:00+00:00"; // a simulation running months ahead of the wall clock
const DAY = 86_400_000;

function pump(id, extra = {}) {
  return {
    device_id: id,
    site: extra.site || "north",
    drug: "baclofen",
    model: "SynchroMed II",
    as_of: new Date(WALL).toISOString(),
    device_now: DEVICE,
    clock_rate: 600,
    empty_at: null,
    refill_due_at: null,
    eri_at: null,
    reported_device_time: null,
    implant_date: null,
    ...extra,
  };
}

const inDaysIso = (days) => new Date(Date.parse(DEVICE) + days * DAY).toISOString();

test("the pump's clock runs on at its own rate between summaries", () => {
  const p = pump("p1");
  assert.equal(deviceNowMs(p, WALL), Date.parse(DEVICE));
  // 10 wall seconds at 600x: 100 simulated minutes
  assert.equal(deviceNowMs(p, WALL + 10_000), Date.parse(DEVICE) + 6_000_000);
  assert.equal(deviceAgeS(inDaysIso(-1), p, WALL), 86_400);
  assert.equal(daysUntil(inDaysIso(3), p, WALL), 3);
  assert.equal(deviceNowMs({ ...p, device_now: null }, WALL), null);
  assert.equal(span(3 * 3600 + 5 * 60), "3 h 5 min");
  assert.equal(span(400 * 86400), "1 y 1 mo");
  assert.equal(inDays(2.25), "in 2.3 d");
  assert.equal(inDays(-12), "12 d ago");
});

test("urgency: alarms by priority first, then the soonest deadline, pumps without figures last", () => {
  const alarms = { p2: { priority: "medium", unanswered: true }, p4: { priority: "high", unanswered: false } };
  const fleet = [
    pump("p1", { empty_at: inDaysIso(30) }),
    pump("p2", { empty_at: inDaysIso(40) }),
    pump("p3", { refill_due_at: inDaysIso(2) }),
    pump("p4"),
    pump("p5"),
  ];
  const of = (id) => alarms[id] || { priority: null, unanswered: false };
  const order = (options) => orderFleet(fleet, of, WALL, options).map((r) => r.d.device_id);
  assert.deepEqual(order({}), ["p4", "p2", "p3", "p1", "p5"]);
  assert.deepEqual(order({ sort: "empty" }), ["p1", "p2", "p3", "p4", "p5"]);
  assert.deepEqual(order({ sort: "refill" }), ["p3", "p1", "p2", "p4", "p5"]);
  assert.deepEqual(order({ priority: "any" }), ["p4", "p2"]);
  assert.deepEqual(order({ priority: "none" }), ["p3", "p1", "p5"]);
  assert.deepEqual(order({ priority: "high" }), ["p4"]);
  assert.deepEqual(order({ search: "P3" }), ["p3"]);
  assert.deepEqual(order({ search: "synchromed", priority: "medium" }), ["p2"]);
});

test("oldest report and oldest implant first; site filter", () => {
  const fleet = [
    pump("a", { reported_device_time: inDaysIso(-1), implant_date: inDaysIso(-100), site: "x" }),
    pump("b", { reported_device_time: inDaysIso(-5), implant_date: inDaysIso(-10) }),
    pump("c"),
  ];
  const of = () => ({ priority: null, unanswered: false });
  assert.deepEqual(orderFleet(fleet, of, WALL, { sort: "report" }).map((r) => r.d.device_id), ["b", "a", "c"]);
  assert.deepEqual(orderFleet(fleet, of, WALL, { sort: "implant" }).map((r) => r.d.device_id), ["a", "b", "c"]);
  assert.deepEqual(orderFleet(fleet, of, WALL, { site: "x" }).map((r) => r.d.device_id), ["a"]);
});

test("an alarm back to normal stays on the list for its follow-up until done", () => {
  const s = new ConsoleState();
  const base = { device_id: "p1", priority: "high", raised_at: "2026-12-01T10:00:00+00:00", version: 3 };
  s.loadAlarms([
    { ...base, key: "p1/motor_stall", state: "normal", acknowledged_at: "2026-12-01T10:01:00+00:00", cleared_at: "2026-12-01T11:00:00+00:00" },
    { ...base, key: "p1/old", state: "normal", cleared_at: "2026-11-01T11:00:00+00:00" },
    { ...base, key: "p1/open", state: "active_acknowledged" },
  ]);
  const since = Date.parse("2026-12-01T00:00:00Z");
  const keys = (dismissed) => s.openAlarms({ followUp: { sinceMs: since, dismissed } }).map((a) => a.key);
  assert.deepEqual(keys(new Set()), ["p1/open", "p1/motor_stall"]);
  assert.deepEqual(keys(new Set([followUpId(s.alarms.get("p1/motor_stall"))])), ["p1/open"]);
  assert.deepEqual(s.openAlarms().map((a) => a.key), ["p1/open"]);
});
