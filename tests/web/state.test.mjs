// The console's merge of snapshots and stream events (twin/web/js/state.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { ConsoleState, deviceHref, deviceKey, deviceOfRoute, isOf } from "../../twin/web/js/state.js";

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

// Two training sessions of one scenario run the same pump ids at two sites (issue 17).
const pump = (site, version, extra = {}) => ({ device_id: "p1", site, version, reservoir_ml: 10, ...extra });

test("the same device id at two sites is two devices; each keeps its own newest copy", () => {
  const s = new ConsoleState();
  s.loadDevices([pump("tr-a.ward", 3, { reservoir_ml: 11 }), pump("tr-b.ward", 1, { reservoir_ml: 22 })]);
  assert.equal(s.devices.size, 2);
  const changed = s.apply("device", pump("tr-b.ward", 2, { reservoir_ml: 21 }));
  assert.equal(changed.devices, true);
  assert.deepEqual([...changed.deviceKeys], [deviceKey("tr-b.ward", "p1")]);
  assert.equal(s.apply("device", pump("tr-a.ward", 2, { reservoir_ml: 99 })).devices, false); // older than site a's copy
  assert.equal(s.devices.get(deviceKey("tr-a.ward", "p1")).reservoir_ml, 11);
  assert.equal(s.devices.get(deviceKey("tr-b.ward", "p1")).reservoir_ml, 21);
  assert.deepEqual(s.sites(), ["tr-a.ward", "tr-b.ward"]);
});

test("alarms, priorities and commands of a pump are its site's only", () => {
  const s = new ConsoleState();
  s.loadAlarms([
    { ...alarm("tr-a.ward/p1/motor_stall", 1, { priority: "high" }), device_id: "p1", site: "tr-a.ward" },
    { ...alarm("tr-b.ward/p1/reservoir_low", 1, { priority: "low" }), device_id: "p1", site: "tr-b.ward" },
  ]);
  assert.deepEqual(s.alarmsOf("p1", "tr-a.ward").map((a) => a.key), ["tr-a.ward/p1/motor_stall"]);
  assert.deepEqual(s.alarmsOf("p1", "tr-b.ward").map((a) => a.key), ["tr-b.ward/p1/reservoir_low"]);
  assert.equal(s.highestPriority("p1", "tr-a.ward"), "high");
  assert.equal(s.highestPriority("p1", "tr-b.ward"), "low");
  assert.equal(s.alarmsOf("p1").length, 2); // no site (an old link): the id at any site
  const command = s.apply("command", { command_id: "c-1", device_id: "p1", site: "tr-b.ward" });
  assert.deepEqual([...command.deviceKeys], [deviceKey("tr-b.ward", "p1")]);
  assert.equal(isOf(s.commands.get("c-1"), "p1", "tr-a.ward"), false);
  assert.equal(isOf(s.commands.get("c-1"), "p1", "tr-b.ward"), true);
});

test("a device route names its site and id, and reads back the same pump", () => {
  const href = deviceHref("tr-a1b2.ward-3", "itb 7");
  assert.equal(href, "#/device/tr-a1b2.ward-3/itb%207");
  const arg = decodeURIComponent(href.slice("#/device/".length)); // as the app's router passes it
  assert.deepEqual(deviceOfRoute(arg), { site: "tr-a1b2.ward-3", deviceId: "itb 7" });
  assert.deepEqual(deviceOfRoute("itb-0412"), { site: null, deviceId: "itb-0412" }); // an old link
});
