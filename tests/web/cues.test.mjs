// When the console refetches the patient-report cards (twin/web/js/cues.js): on a scenario event,
// and on a response to a pump's patient_report alarm (<site>/<device>/patient_report), the alarm a
// card's answer is recorded against; not on a response to any other alarm.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CueBoard } from "../../twin/web/js/cues.js";
import { ConsoleState } from "../../twin/web/js/state.js";

function response(key, id) {
  const [site, device, code] = key.split("/");
  return { response_id: id, key, site, device_id: device, code, action: "interrogate", actor: "trainee", role: "trainee", at: "2026-12-01T12:00:00Z", detail: {} };
}

function board() {
  const cues = new CueBoard(() => {});
  cues.asked = 0;
  cues.refetch = { request: () => (cues.asked += 1), stop: () => {} };
  return cues;
}

test("an answer to a pump's patient_report alarm refetches the cards; one to a stall does not", () => {
  const state = new ConsoleState();
  const cues = board();
  cues.noticed(state.apply("response", response("ward/ward-a1/motor_stall", "r-1")));
  assert.equal(cues.asked, 0);
  cues.noticed(state.apply("response", response("ward/ward-a1/patient_report", "r-2")));
  assert.equal(cues.asked, 1);
  cues.noticed(state.apply("scenario", { run_id: "run-1", event: "patient_symptom" }));
  assert.equal(cues.asked, 2);
});

test("a pump's patient reports are its site's: two sessions of one scenario report on the same id", () => {
  const cues = board();
  cues.cards = [
    { cue_id: "run-1/s1/p1", device_id: "p1", site: "tr-run-1.ward", run_status: "running", responses: [] },
    { cue_id: "run-2/s1/p1", device_id: "p1", site: "tr-run-2.ward", run_status: "running", responses: [] },
  ];
  assert.deepEqual(cues.of("p1", "tr-run-1.ward").map((c) => c.cue_id), ["run-1/s1/p1"]);
  assert.deepEqual(cues.of("p1", "tr-run-2.ward").map((c) => c.cue_id), ["run-2/s1/p1"]);
});
