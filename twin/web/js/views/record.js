// A trainee's competence record (#/record for one's own, #/record/<name> for an instructor):
// every ended session with its score, how they answered each alarm code and each scenario, the
// trend over time as a chart, and the CSV of every row behind it
// (GET /api/training/trainees/<name>/record). A trainee opens only their own; the API refuses
// another's (not_your_record) and the page says so.

import { api } from "../api.js";
import { when } from "../clock.js";
import { fill, h, svg } from "../dom.js";
import { seconds, traineeScore } from "../training.js";

const TREND_WORDS = {
  improving: "improving",
  steady: "steady",
  declining: "declining",
  too_few: "too few sessions for a trend",
};
const CHART = { width: 560, height: 160, pad: 28 };

function headRow(titles) {
  return h("thead", {}, h("tr", {}, titles.map((x) => h("th", { scope: "col" }, x))));
}

/** The session scores (0..100) over time as a line, one point per session. */
export function trendChart(points) {
  const { width, height, pad } = CHART;
  const n = points.length;
  const x = (i) => (n < 2 ? width / 2 : pad + (i * (width - 2 * pad)) / (n - 1));
  const y = (score) => height - pad - (score / 100) * (height - 2 * pad);
  const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p.score).toFixed(1)}`).join(" ");
  return svg(
    "svg",
    { class: "chart-svg", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Score per session, oldest first" },
    svg("line", { class: "axis", x1: pad, y1: height - pad, x2: width - pad, y2: height - pad }),
    svg("line", { class: "axis", x1: pad, y1: pad, x2: pad, y2: height - pad }),
    [0, 50, 100].map((v) => svg("text", { class: "tick", x: 2, y: y(v) + 3 }, String(v))),
    n > 1 ? svg("polyline", { class: "line", points: line }) : null,
    points.map((p, i) => svg("circle", { cx: x(i), cy: y(p.score), r: 3.5, class: "point" }, svg("title", {}, `${when(p.started_at)}: ${p.score}`))),
  );
}

export function recordView(ctx, requested) {
  const own = ctx.me.username;
  const name = requested || own;
  const instructor = ctx.can("run_scenario");
  let root;

  async function load() {
    let record;
    try {
      record = await api(`/api/training/trainees/${encodeURIComponent(name)}/record`);
    } catch (error) {
      const text =
        error.reason === "not_your_record"
          ? "You can see only your own record."
          : error.reason === "unknown_trainee"
            ? `No trainee ${name}.`
            : `The record could not be read: ${error.message}`;
      fill(root, heading(), h("p", { class: "error", role: "alert", dataset: { testid: "record-error", reason: error.reason || "" } }, text));
      return;
    }
    draw(record);
  }

  function heading() {
    return h("h2", {}, name === own ? "My training record" : `Training record: ${name}`);
  }

  async function picker() {
    if (!instructor) return null;
    let trainees = [];
    try {
      trainees = await api("/api/training/trainees");
    } catch {
      trainees = [];
    }
    const names = [...new Set([...trainees.map((t) => t.username), name])].sort();
    const select = h(
      "select",
      { id: "record-trainee", dataset: { testid: "record-trainee" }, onchange: () => (location.hash = `#/record/${encodeURIComponent(select.value)}`) },
      names.map((n) => h("option", { value: n, selected: n === name }, n)),
    );
    return h("p", { class: "buttons left" }, h("label", { for: "record-trainee" }, "Trainee"), select);
  }

  async function draw(record) {
    const trend = record.trend;
    const csv = `/api/training/trainees/${encodeURIComponent(name)}/record.csv`;
    fill(
      root,
      heading(),
      await picker(),
      h(
        "section",
        { class: "panel", "aria-label": "Summary" },
        h(
          "dl",
          { class: "facts", dataset: { testid: "record-summary" } },
          h("dt", {}, "Sessions"),
          h("dd", { dataset: { testid: "record-count" } }, String(record.sessions.length)),
          h("dt", {}, "Trend"),
          h(
            "dd",
            { dataset: { testid: "record-trend", direction: trend.direction } },
            TREND_WORDS[trend.direction] || trend.direction,
            trend.slope_per_session !== null ? ` (${trend.slope_per_session > 0 ? "+" : ""}${trend.slope_per_session} points a session)` : "",
          ),
          h("dt", {}, "First to latest"),
          h("dd", {}, trend.change === null ? "—" : `${trend.change > 0 ? "+" : ""}${trend.change} points`),
          record.in_progress.length ? [h("dt", {}, "In progress"), h("dd", {}, record.in_progress.join(", "))] : null,
        ),
        h("p", { class: "downloads" }, "Download every scored alarm: ", h("a", { href: csv, download: `record-${name}.csv`, dataset: { testid: "record-csv" } }, "CSV")),
        record.sessions.length ? h("figure", { class: "chart" }, h("figcaption", {}, "Score per session (0-100), oldest first"), trendChart(trend.scores)) : null,
      ),
      h(
        "section",
        { class: "panel", "aria-label": "Sessions" },
        h("h3", {}, "Sessions"),
        record.sessions.length
          ? h(
              "table",
              { class: "scores" },
              headRow(["Started", "Scenario", "Score", "Alarms", "Correct", "Incorrect", "Missed", "Median time to acknowledge", "Escalated", ""]),
              h(
                "tbody",
                {},
                record.sessions.map((s) =>
                  h(
                    "tr",
                    { dataset: { testid: "record-session", session: s.session_id } },
                    h("td", {}, when(s.started_at)),
                    h("td", {}, s.title || s.scenario),
                    h("td", { class: "num score" }, traineeScore(s.score)),
                    h("td", { class: "num" }, String(s.alarms)),
                    h("td", { class: "num" }, String(s.correct)),
                    h("td", { class: "num" }, String(s.incorrect)),
                    h("td", { class: "num" }, String(s.missed)),
                    h("td", { class: "num" }, seconds(s.median_time_to_ack_s)),
                    h("td", { class: "num" }, String(s.escalated)),
                    h(
                      "td",
                      {},
                      h("a", { href: `#/training/${encodeURIComponent(s.session_id)}` }, "Report"),
                      " · ",
                      h("a", { href: `#/replay/${encodeURIComponent(s.session_id)}`, dataset: { testid: "record-replay" } }, "Replay"),
                    ),
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No ended session yet."),
      ),
      h(
        "div",
        { class: "columns" },
        h(
          "section",
          { class: "panel", "aria-label": "By alarm" },
          h("h3", {}, "By alarm"),
          h(
            "table",
            { class: "scores" },
            headRow(["Alarm", "Alarms", "Acknowledged", "Median time to acknowledge", "Correct", "Incorrect", "Missed"]),
            h(
              "tbody",
              {},
              record.by_code.map((c) =>
                h(
                  "tr",
                  { dataset: { testid: "record-code", code: c.code } },
                  h("td", {}, c.code.replaceAll("_", " ")),
                  h("td", { class: "num" }, String(c.alarms)),
                  h("td", { class: "num" }, String(c.acknowledged)),
                  h("td", { class: "num" }, seconds(c.median_time_to_ack_s)),
                  h("td", { class: "num" }, `${c.correct} (${Math.round(c.correct_share * 100)} %)`),
                  h("td", { class: "num" }, String(c.incorrect)),
                  h("td", { class: "num" }, String(c.missed)),
                ),
              ),
            ),
          ),
        ),
        h(
          "section",
          { class: "panel", "aria-label": "By scenario" },
          h("h3", {}, "By scenario"),
          h(
            "table",
            { class: "scores" },
            headRow(["Scenario", "Sessions", "First", "Latest", "Best", "Mean"]),
            h(
              "tbody",
              {},
              record.by_scenario.map((r) =>
                h(
                  "tr",
                  { dataset: { testid: "record-scenario", scenario: r.scenario } },
                  h("td", {}, r.title || r.scenario),
                  h("td", { class: "num" }, String(r.sessions)),
                  h("td", { class: "num" }, traineeScore(r.first_score)),
                  h("td", { class: "num" }, traineeScore(r.latest_score)),
                  h("td", { class: "num" }, traineeScore(r.best_score)),
                  h("td", { class: "num" }, traineeScore(r.mean_score)),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  return {
    mount(main) {
      root = h("div", { class: "record", dataset: { trainee: name } }, heading(), h("p", { class: "muted" }, "Loading…"));
      main.append(root);
      load();
    },
  };
}
