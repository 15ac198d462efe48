// The replay's model (twin/web/js/replay-model.js): what each pump, alarm, step and trainee looks
// like at a moment of the timeline; the next alarm; the playhead. And which "escalated to you"
// notices still stand (twin/web/js/escalation-notice.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import * as m from "../../twin/web/js/replay-model.js";
import { standing } from "../../twin/web/js/escalation-notice.js";

const T0 = Date.parse("2026-05-04T08:00:00Z");
const iso = (s) => new Date(T0 + s * 1000).toISOString();

const replay = {
  start: iso(0),
  end: iso(300),
  pumps: [
    {
      device_id: "p1",
      site: "w",
      frames: [
        { at: iso(0), motor: "running", infusing: true, reservoir_ml: 18 },
        { at: iso(60), motor: "stalled", infusing: false, reservoir_ml: 18 },
      ],
    },
    { device_id: "p2", site: "w", frames: [] },
  ],
  alarms: [
    {
      key: "p1/motor_stall",
      device_id: "p1",
      code: "motor_stall",
      priority: "high",
      expected: ["rotor_study"],
      transitions: [
        { at: iso(61), event: "raise", to_state: "active_unacknowledged", actor: "device" },
        { at: iso(70), event: "acknowledge", to_state: "active_acknowledged", actor: "ann" },
      ],
      escalations: [],
    },
    {
      key: "p2/memory_error",
      device_id: "p2",
      code: "memory_error",
      priority: "high",
      expected: [],
      transitions: [{ at: iso(120), event: "raise", to_state: "active_unacknowledged", actor: "device" }],
      escalations: [
        { at: iso(126), due_at: iso(126), unacknowledged_since: iso(120), level: 1, tier: "charge nurse", notified: ["ian"] },
        { at: iso(180), due_at: iso(180), unacknowledged_since: iso(120), level: 2, tier: "physician", notified: ["ada"] },
      ],
    },
  ],
  steps: [
    { at: iso(60), step: "inject_fault", device_id: "p1" },
    { at: iso(180), step: "patient_symptom", device_id: "p2", symptom: "headache" },
  ],
  trainees: [
    {
      trainee: "ann",
      summary: { score: 90 },
      acts: [
        { at: iso(70), kind: "acknowledge", action: "acknowledge", key: "p1/motor_stall" },
        { at: iso(80), kind: "response", action: "rotor_study", key: "p1/motor_stall" },
      ],
      rows: [
        { key: "p1/motor_stall", raised_at: iso(61), verdict: "correct" },
        { key: "p2/memory_error", raised_at: iso(120), verdict: "missed" },
      ],
    },
    { trainee: "bob", summary: { score: 0 }, acts: [], rows: [] },
  ],
  session_events: [{ at: iso(0), event: "started" }],
};

test("the span, a binary search for the latest item, and the pumps at a moment", () => {
  assert.deepEqual(m.bounds(replay), { start: T0, end: T0 + 300_000, length: 300_000 });
  assert.equal(m.lastAt(replay.pumps[0].frames, T0 - 1), null);
  assert.equal(m.lastAt(replay.pumps[0].frames, T0 + 60_000).motor, "stalled");
  const at30 = m.pumpsAt(replay, T0 + 30_000);
  assert.equal(at30[0].frame.motor, "running");
  assert.equal(at30[1].frame, null);
});

test("alarms at a moment: raised ones only, their state, and the tier reached while unanswered", () => {
  assert.deepEqual(m.alarmsAt(replay, T0 + 60_000), []);
  const at65 = m.alarmsAt(replay, T0 + 65_000);
  assert.deepEqual(at65.map((a) => [a.key, a.state, a.asking]), [["p1/motor_stall", "active_unacknowledged", true]]);
  const at130 = m.alarmsAt(replay, T0 + 130_000);
  assert.deepEqual(at130.map((a) => a.key), ["p2/memory_error", "p1/motor_stall"]); // asking first
  assert.equal(at130[0].escalation.level, 1);
  assert.equal(at130[1].escalation, null);
  assert.equal(m.alarmsAt(replay, T0 + 200_000)[0].escalation.tier, "physician");
});

test("steps, a trainee's acts and rows up to a moment, and every moment in order", () => {
  assert.deepEqual(m.stepsAt(replay, T0 + 100_000).map((s) => s.done), [true, false]);
  const ann = m.traineeAt(replay, "ann", T0 + 75_000);
  assert.deepEqual(ann.acts.map((a) => a.action), ["acknowledge"]);
  assert.deepEqual(ann.rows.map((r) => r.verdict), ["correct"]);
  assert.equal(ann.actsTotal, 2);
  assert.equal(m.traineeAt(replay, "nobody", T0), null);
  assert.deepEqual(m.traineeNames(replay), ["ann", "bob"]);
  const kinds = m.moments(replay).map((x) => x.kind);
  assert.equal(kinds[0], "session");
  assert.ok(kinds.includes("escalation") && kinds.includes("symptom") && kinds.includes("act"));
  const times = m.moments(replay).map((x) => x.at);
  assert.deepEqual(times, [...times].sort((a, b) => a - b));
});

test("next alarm, the playhead and the figures", () => {
  assert.equal(m.nextAlarm(replay, T0), T0 + 61_000);
  assert.equal(m.nextAlarm(replay, T0 + 61_000), T0 + 120_000);
  assert.equal(m.nextAlarm(replay, T0 + 120_000), null);
  assert.equal(m.advance(T0, 1000, 5, T0 + 300_000), T0 + 5000);
  assert.equal(m.advance(T0 + 299_000, 1000, 60, T0 + 300_000), T0 + 300_000);
  assert.equal(m.offsetText(65_000), "1:05");
  assert.equal(m.offsetText(3_725_000), "1:02:05");
  assert.equal(m.fixed(12.345, 2, "mL"), "12.35 mL");
  assert.equal(m.fixed(null, 2, "mL"), "—");
  assert.ok(m.SPEEDS.includes(m.DEFAULT_SPEED));
});

test("an escalation notice stands while its alarm still asks, since the same moment", () => {
  const e = { key: "p2/memory_error", unacknowledged_since: iso(120), level: 1 };
  const escalations = new Map([[e.key, e]]);
  const asking = { state: "active_unacknowledged", unacknowledged_since: iso(120) };
  assert.equal(standing(escalations, new Map([[e.key, asking]])).length, 1);
  assert.equal(standing(escalations, new Map()).length, 1); // not loaded yet
  assert.equal(standing(escalations, new Map([[e.key, { state: "active_acknowledged" }]])).length, 0);
  const newer = { state: "active_unacknowledged", unacknowledged_since: iso(200) };
  assert.equal(standing(escalations, new Map([[e.key, newer]])).length, 0);
});
