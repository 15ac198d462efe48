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
