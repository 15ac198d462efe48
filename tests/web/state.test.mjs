// The console's merge of snapshots and stream events (twin/web/js/state.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { ConsoleState } from "../../twin/web/js/state.js";

const alarm = (key, version, extra = {}) => ({
  key,
  device_id: key.split("/")[0],
  priority: "medium",
  state: "active_unacknowledged",
  raised_at: "2026-04-01T12:00:00+00:00",
  version,
  ...extra,
});
const transition = (a, event, to_state) => ({ key: a.key, event, to_state, alarm: a });

test("an older copy of an alarm never replaces a newer one, whichever arrives first", () => {
  const s = new ConsoleState();
  assert.equal(s.apply("alarm", transition(alarm("p1/x", 2, { state: "active_acknowledged" }), "acknowledge", "active_acknowledged")).alarms, true);
  s.loadAlarms([alarm("p1/x", 1)]); // a snapshot taken before the acknowledgement
  assert.equal(s.alarms.get("p1/x").state, "active_acknowledged");
  assert.equal(s.apply("alarm", transition(alarm("p1/x", 2), "acknowledge", "active_acknowledged")).alarms, false);
});

test("a raise is announced; an acknowledgement is not", () => {
  const s = new ConsoleState();
  const raised = s.apply("alarm", transition(alarm("p1/x", 1), "raise", "active_unacknowledged"));
  assert.equal(raised.announce.key, "p1/x");
  assert.deepEqual([...raised.keys], ["p1/x"]);
  const acked = s.apply("alarm", transition(alarm("p1/x", 2, { state: "active_acknowledged" }), "acknowledge", "active_acknowledged"));
  assert.equal(acked.announce, null);
});

test("open alarms: normal ones are left out; high first, unanswered before answered, newest first", () => {
  const s = new ConsoleState();
  s.loadAlarms([
    alarm("a/low", 1, { priority: "low" }),
    alarm("b/high-acked", 1, { priority: "high", state: "active_acknowledged" }),
    alarm("c/high-new", 1, { priority: "high", raised_at: "2026-04-01T12:05:00+00:00" }),
    alarm("d/high-old", 1, { priority: "high" }),
    alarm("e/gone", 1, { state: "normal" }),
  ]);
  assert.deepEqual(
    s.openAlarms().map((a) => a.key),
    ["c/high-new", "d/high-old", "b/high-acked", "a/low"],
  );
});

test("a tile's colour is its highest signalling alarm; shelved and normal alarms do not colour it", () => {
  const s = new ConsoleState();
  s.loadAlarms([
    alarm("p1/a", 1, { priority: "high", state: "shelved" }),
    alarm("p1/b", 1, { priority: "medium", state: "active_acknowledged" }),
    alarm("p1/c", 1, { priority: "low" }),
    alarm("p2/a", 1, { priority: "high", state: "normal" }),
  ]);
  assert.equal(s.highestPriority("p1"), "medium");
  assert.equal(s.highestPriority("p2"), null);
});

test("a response is kept once per id, under its alarm", () => {
  const s = new ConsoleState();
  const r = { response_id: "r-1", key: "p1/x", action: "refill" };
  assert.equal(s.apply("response", r).responses, true);
  assert.equal(s.apply("response", r).responses, false);
  assert.equal(s.responses.get("p1/x").length, 1);
});

test("a training event is passed on as it is, and changes nothing else", () => {
  const s = new ConsoleState();
  const session = { session_id: "t-1", status: "running", trainees: ["trainee"] };
  const changed = s.apply("training", session);
  assert.equal(changed.training, session);
  assert.equal(changed.alarms || changed.devices || changed.commands || changed.responses, false);
  assert.equal(s.apply("alarm", transition(alarm("p1/x", 1), "raise", "active_unacknowledged")).training, null);
});
