// A training session's report (#/training/<session_id>), for any signed-in role: who ran it for
// whom, when and how it ended; each trainee's score; each alarm with its time to acknowledge,
// the responses, the expected responses and the verdict; every act in time order; and the
// report as CSV and JSON downloads. While the session runs the page follows it (refetched on
// `training`, `alarm` and `response` events, at most once a second); a trainee sees the expected
// responses only once it has ended.

import { api } from "../api.js";
import { serverNow, when } from "../clock.js";
import { fill, h } from "../dom.js";
import { Refetcher } from "../refetch.js";
import { actionsTimeline, alarmTable, traineeTable } from "../score-tables.js";
import { clockTime, elapsedSeconds, isLive } from "../training.js";
import { statusChip } from "./training.js";

const REFETCH_EVERY_MS = 1000;

export function trainingReportView(ctx, sessionId) {
  let session = null;
  let root;
  let head;
  let body;
  const path = `/api/training/sessions/${encodeURIComponent(sessionId)}`;
  const refetch = new Refetcher(load, REFETCH_EVERY_MS);

  async function load() {
    try {
      session = await api(path);
    } catch (error) {
      fill(body, h("p", { class: "error", role: "alert" }, error.status === 404 ? `No training session ${sessionId}.` : `The report could not be read: ${error.message}`));
      return;
    }
    draw();
  }

  function draw() {
    const s = session;
    const reveal = ctx.can("run_scenario") || !isLive(s);
    fill(
      head,
      h("h2", {}, `Training report: ${s.title || s.scenario}`),
      h("div", { class: "panel-head" }, statusChip(s.status, "report-status"), isLive(s) ? h("span", { class: "muted" }, "live: this report follows the session") : null),
    );
    fill(
      body,
      h(
        "section",
        { class: "panel", "aria-label": "Session" },
        h(
          "dl",
          { class: "facts", dataset: { testid: "report-header" } },
          [
            ["Scenario", `${s.title || s.scenario} (${s.scenario})`],
            ["Session", s.session_id],
            ["Instructor", s.instructor],
            ["Trainees", (s.trainees || []).join(", ") || "—"],
            ["Pumps", (s.devices || []).join(", ") || "—"],
            ["Speed", s.speed ? `× ${s.speed}` : "—"],
            ["Started", when(s.started_at)],
            ["Ended", s.ended_at ? when(s.ended_at) : isLive(s) ? "not yet" : "—"],
            ["Lasted (wall clock)", clockTime(elapsedSeconds(s, serverNow()))],
            s.aborted_reason ? ["Abort reason", s.aborted_reason, "report-aborted-reason"] : null,
          ]
            .filter(Boolean)
            .map(([k, v, testid]) => [h("dt", {}, k), h("dd", { dataset: testid ? { testid } : {} }, v)]),
        ),
        h(
          "p",
          { class: "downloads" },
          "Download the report: ",
          h("a", { href: `${path}/report.csv`, download: `${s.session_id}.csv`, dataset: { testid: "download-csv" } }, "CSV"),
          " · ",
          h("a", { href: `${path}/report.json`, download: `${s.session_id}.json`, dataset: { testid: "download-json" } }, "JSON"),
          isLive(s) && !ctx.can("run_scenario") ? null : [" · ", h("a", { href: `#/replay/${encodeURIComponent(s.session_id)}`, dataset: { testid: "replay-link" } }, "Replay the session")],
        ),
      ),
      h("section", { class: "panel", "aria-label": "Scores per trainee" }, h("h3", {}, "Trainees"), traineeTable(s.report)),
      h(
        "section",
        { class: "panel", "aria-label": "Alarms" },
        h("h3", {}, "Alarms"),
        h(
          "p",
          { class: "muted" },
          "Correct: a response the scenario expects (or, when it expects none, an acknowledgement). Incorrect: acted, but nothing it expects. Missed: no action by the end. Pending: still running, no match yet.",
        ),
        alarmTable(s.report, { reveal }),
      ),
      h("section", { class: "panel", "aria-label": "Actions" }, h("h3", {}, "Actions, in time order"), actionsTimeline(s.report)),
    );
  }

  return {
    mount(main) {
      head = h("div", { class: "report-head" }, h("h2", {}, "Training report"));
      body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
      root = h("div", { class: "training-report", dataset: { session: sessionId } }, h("p", {}, h("a", { href: "#/training" }, "← Training sessions")), head, body);
      main.append(root);
      refetch.request();
    },
    update(changed) {
      if (changed.training && changed.training.session_id === sessionId) refetch.request();
      else if ((changed.alarms || changed.responses) && isLive(session)) refetch.request();
    },
    unmount() {
      refetch.stop();
    },
  };
}
