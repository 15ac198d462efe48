// What an alarm means and what staff do about it (GET /api/alarm-guidance), shown with each alarm
// on the alarm list and the pump's page. An instructor can hide it for a test (PUT, from the
// training page); the twin then sends trainees no texts at all, and a `guidance` stream event makes
// every console reload it.

import { api } from "./api.js";
import { h } from "./dom.js";

let loaded = { hidden: false, codes: {} };
let pending = null;

/** Load (or reload) the guidance; resolves to { hidden, codes }. Errors leave the last copy. */
export function loadGuidance() {
  pending = api("/api/alarm-guidance")
    .then((g) => {
      loaded = g;
      return g;
    })
    .catch(() => loaded);
  return pending;
}

export function guidance() {
  return loaded;
}

/** Instructors: hide (true) or show the guidance for everyone below them. */
export async function setGuidanceHidden(hidden) {
  loaded = await api("/api/alarm-guidance", { method: "PUT", body: { hidden } });
  return loaded;
}

/**
 * The guidance for one alarm code as a <details> ("What it means / What to do"), open when
 * `open`; a note when hidden for this user; null for an unknown code.
 */
export function guidanceBlock(code, { open = false } = {}) {
  const g = loaded.codes[code];
  if (!g) {
    return loaded.hidden ? h("p", { class: "muted guidance-hidden", dataset: { testid: "guidance-hidden" } }, "Guidance hidden by the instructor for this test.") : null;
  }
  return h(
    "details",
    { class: "guidance", open, dataset: { testid: "guidance", code } },
    h("summary", {}, loaded.hidden ? "What it means, what to do (hidden from trainees)" : "What it means, what to do"),
    h("dl", {}, h("dt", {}, "Meaning"), h("dd", { dataset: { testid: "guidance-meaning" } }, g.meaning), h("dt", {}, "Staff response"), h("dd", { dataset: { testid: "guidance-response" } }, g.staff_response)),
  );
}
