// Patient reports (the scenario's symptom cues) as the console keeps them: GET /api/cues, refetched
// when the stream says a run reported a symptom or changed, or an answer to a report was recorded
// (at most once a second). A twin without scenarios (404) has none. Pure but for the fetch.

import { api } from "./api.js";
import { Refetcher } from "./refetch.js";
import { isOf } from "./state.js";

export const CUE_CODE = "patient_report";
const REFETCH_EVERY_MS = 1000;
const LIVE = new Set(["running", "paused"]);

export class CueBoard {
  constructor(onChange) {
    this.cards = [];
    this.onChange = onChange;
    this.refetch = new Refetcher(() => this.load(), REFETCH_EVERY_MS);
  }

  async load() {
    try {
      this.cards = await api("/api/cues");
    } catch {
      this.cards = []; // no scenario runner on this twin, or signed out
    }
    this.onChange(this.cards);
  }

  /** Ask for a refetch after a stream change (`changed` as ConsoleState.apply returns it). */
  noticed(changed) {
    // an answer to a report is a response to the pump's patient_report alarm: <site>/<device>/patient_report
    if (changed.scenario || (changed.responses && [...changed.keys].some((k) => k.endsWith(`/${CUE_CODE}`)))) {
      this.refetch.request();
    }
  }

  /** Cards of runs still going, newest first. */
  live() {
    return this.cards.filter((c) => LIVE.has(c.run_status));
  }

  /** Live cards nobody has answered yet. */
  unanswered() {
    return this.live().filter((c) => !c.responses.length);
  }

  /** Cards about pump `deviceId` at `site` (any site when none is given). */
  of(deviceId, site = null) {
    return this.cards.filter((c) => isOf(c, deviceId, site));
  }

  stop() {
    this.refetch.stop();
  }
}
