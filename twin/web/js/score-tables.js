// A training session's scores as tables: per trainee, per alarm, and the trainees' actions in
// time order. Used by the instructor's live panel (views/training.js) and the report page
// (views/training-report.js). The verdict is always written as a word; its colour only repeats it.

import { when } from "./clock.js";
import { h } from "./dom.js";
import { actionRows, actionWords, alarmRows, rowScore, seconds, traineeScore, verdictWord } from "./training.js";

const PRIORITY_WORD = { high: "High", medium: "Medium", low: "Low" };
const VERDICT_MARK = { correct: "✓", incorrect: "✗", missed: "–", pending: "…" };

function headRow(titles) {
  return h("thead", {}, h("tr", {}, titles.map((t) => h("th", { scope: "col" }, t))));
}

/**
 * The verdict as a chip. A row judged `incorrect` in which the trainee acknowledged but recorded
 * no response says so ("Acknowledged, no response"): the trainee did not choose a wrong action,
 * they chose none, and a cross would say otherwise.
 */
export function verdictChip(verdict, row = null) {
  const silent = verdict === "incorrect" && row && !(row.responses || []).length && row.time_to_ack_s !== null && row.time_to_ack_s !== undefined;
  const shown = silent ? "no-response" : verdict;
  return h(
    "span",
    { class: `chip verdict-${shown}`, dataset: { testid: "report-verdict", verdict, shown } },
    h("span", { "aria-hidden": "true" }, silent ? "○" : VERDICT_MARK[verdict] || ""),
    ` ${silent ? "Acknowledged, no response" : verdictWord(verdict)}`,
  );
}

/** Per trainee: score, alarms, acknowledged, correct, incorrect, missed, pending, median time to ack. */
export function traineeTable(report, caption = "Score per trainee (0-100)") {
  const rows = (report && report.trainees) || [];
  return h(
    "table",
    { class: "scores", dataset: { testid: "trainee-table" } },
    h("caption", {}, rows.length ? caption : "No trainee in this session."),
    headRow(["Trainee", "Score", "Alarms", "Acknowledged", "Correct", "Incorrect", "Missed", "Pending", "Median time to acknowledge"]),
    h(
      "tbody",
      {},
      rows.map((t) =>
        h(
          "tr",
          { dataset: { testid: "trainee-row", trainee: t.trainee } },
          h("th", { scope: "row" }, t.trainee),
          h("td", { class: "num score", dataset: { testid: "trainee-score" } }, traineeScore(t.alarms ? t.score : null)),
          h("td", { class: "num" }, String(t.alarms ?? 0)),
          h("td", { class: "num" }, String(t.acknowledged ?? 0)),
          h("td", { class: "num" }, String(t.correct ?? 0)),
          h("td", { class: "num" }, String(t.incorrect ?? 0)),
          h("td", { class: "num" }, String(t.missed ?? 0)),
          h("td", { class: "num" }, String(t.pending ?? 0)),
          h("td", { class: "num", dataset: { testid: "trainee-median-ack" } }, seconds(t.median_time_to_ack_s)),
        ),
      ),
    ),
  );
}

/**
 * Per alarm and trainee: device, code, priority, raised at, time to acknowledge and to respond,
 * responses, expected responses (hidden, `reveal` false, from a trainee while the session runs),
 * verdict and score (out of 100, like the trainees' scores).
 */
export function alarmTable(report, { reveal = true } = {}) {
  const rows = alarmRows(report);
  return h(
    "table",
    { class: "scores alarm-rows", dataset: { testid: "alarm-table" } },
    h("caption", {}, rows.length ? `${rows.length} alarm${rows.length === 1 ? "" : "s"} scored, in the order raised` : "No alarm raised yet."),
    headRow(["Trainee", "Device", "Alarm", "Priority", "Raised at", "Time to acknowledge", "Time to respond", "Responses", "Expected", "Verdict", "Score"]),
    h(
      "tbody",
      {},
      rows.map((a) =>
        h(
          "tr",
          { class: `verdict-row-${a.verdict}`, dataset: { testid: "report-row", verdict: a.verdict, trainee: a.trainee, key: a.key } },
          h("td", {}, a.trainee),
          h("td", {}, a.device_id, a.site ? h("div", { class: "muted" }, a.site) : null),
          h("td", {}, a.code),
          h("td", {}, h("span", { class: "badge quiet" }, PRIORITY_WORD[a.priority] || a.priority)),
          h("td", {}, when(a.raised_at)),
          h("td", { class: "num", dataset: { testid: "report-time-to-ack" } }, seconds(a.time_to_ack_s)),
          h("td", { class: "num", dataset: { testid: "report-time-to-respond" } }, seconds(a.time_to_respond_s)),
          h("td", { dataset: { testid: "report-responses" } }, actionWords(a.responses)),
          h(
            "td",
            { dataset: { testid: "report-expected" } },
            reveal ? actionWords(a.expected) : h("span", { class: "muted" }, "shown when the session ends"),
          ),
          h("td", {}, verdictChip(a.verdict, a)),
          h("td", { class: "num", dataset: { testid: "report-score" } }, rowScore(a.score)),
        ),
      ),
    ),
  );
}

const KIND_WORD = { acknowledge: "acknowledged", silence: "silenced", response: "response" };

/** Every act of the trainees, in time order. */
export function actionsTimeline(report) {
  const rows = actionRows(report);
  if (!rows.length) return h("p", { class: "muted", dataset: { testid: "report-actions" } }, "No action recorded.");
  return h(
    "ol",
    { class: "history timeline", dataset: { testid: "report-actions" } },
    rows.map((a) =>
      h(
        "li",
        { class: a.kind === "response" ? "response" : null, dataset: { testid: "report-action", kind: a.kind, action: a.action } },
        h("time", { datetime: a.at }, when(a.at)),
        " · ",
        h("span", { class: "kind" }, a.kind === "response" ? `response: ${actionWords(a.action)}` : KIND_WORD[a.kind] || a.kind),
        ` · ${a.trainee} · ${a.device_id} ${a.code}`,
        a.note ? ` · “${a.note}”` : "",
      ),
    ),
  );
}
