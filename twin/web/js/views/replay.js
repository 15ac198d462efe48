// The replay (#/replay/<session_id>): a finished training session played back on a timeline from
// what the journal recorded (GET /api/training/sessions/<id>/replay; nothing is re-simulated) —
// the pumps as they showed, every alarm with its lifecycle state and escalation, the scenario's
// steps and the patient's symptoms, and two trainees side by side with what each did, the
// responses expected and their verdicts. Play, pause, a speed, a scrubber and "next alarm".
// A trainee sees only their own acts (the API leaves the others out).

import { api } from "../api.js";
import { when } from "../clock.js";
import { fill, h } from "../dom.js";
import * as m from "../replay-model.js";
import { actionWords, seconds } from "../training.js";
import { verdictChip } from "../score-tables.js";

const TICK_MS = 100;
const PRIORITY_WORD = { high: "High", medium: "Medium", low: "Low" };
const STATE_WORD = {
  active_unacknowledged: "Active, unacknowledged",
  active_acknowledged: "Active, acknowledged",
  cleared_unacknowledged: "Cleared, unacknowledged",
  normal: "Normal",
  shelved: "Shelved",
  out_of_service: "Out of service",
};
const KIND_WORD = { acknowledge: "acknowledged", silence: "paused the audio", response: "response" };

export function replayView(ctx, sessionId) {
  const path = `/api/training/sessions/${encodeURIComponent(sessionId)}/replay`;
  let replay = null;
  let span = null;
  let t = 0;
  let speed = m.DEFAULT_SPEED;
  let timer = null;
  let chosen = [];
  const el = {};

  async function load() {
    try {
      replay = await api(path);
    } catch (error) {
      const text =
        error.status === 404
          ? `No training session ${sessionId}.`
          : error.reason === "session_running"
            ? "This session is still running: its replay opens when it ends."
            : `The replay could not be read: ${error.message}`;
      fill(el.body, h("p", { class: "error", role: "alert", dataset: { testid: "replay-error", reason: error.reason || "" } }, text));
      return;
    }
    span = m.bounds(replay);
    t = span.start;
    chosen = m.traineeNames(replay).slice(0, 2);
    build();
    draw();
  }

  // --------------------------------------------------------------------------------- controls

  function play() {
    if (timer !== null) return;
    if (t >= span.end) t = span.start;
    let last = performance.now();
    timer = setInterval(() => {
      const now = performance.now();
      t = m.advance(t, now - last, speed, span.end);
      last = now;
      if (t >= span.end) pause();
      draw();
    }, TICK_MS);
    drawControls();
  }

  function pause() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    drawControls();
  }

  function seek(to) {
    t = Math.min(span.end, Math.max(span.start, to));
    draw();
  }

  function build() {
    const s = replay.session;
    el.play = h("button", { type: "button", class: "primary", dataset: { testid: "replay-play" }, onclick: () => (timer === null ? play() : pause()) }, "Play");
    el.speed = h(
      "select",
      { id: "replay-speed", dataset: { testid: "replay-speed" }, onchange: () => (speed = Number(el.speed.value)) },
      m.SPEEDS.map((x) => h("option", { value: String(x), selected: x === speed }, `× ${x}`)),
    );
    el.scrubber = h("input", {
      type: "range",
      id: "replay-scrubber",
      min: "0",
      max: String(span.length),
      step: "100",
      value: "0",
      "aria-label": "Position in the session",
      dataset: { testid: "replay-scrubber" },
      oninput: () => seek(span.start + Number(el.scrubber.value)),
    });
    el.next = h(
      "button",
      {
        type: "button",
        dataset: { testid: "replay-next-alarm" },
        onclick: () => {
          const next = m.nextAlarm(replay, t);
          if (next !== null) seek(next);
        },
      },
      "Next alarm →",
    );
    el.clock = h("span", { class: "replay-clock", dataset: { testid: "replay-clock" }, "aria-live": "off" });
    el.marks = h("div", { class: "replay-marks", "aria-hidden": "true" }, marks());
    el.pumps = h("section", { class: "panel", "aria-label": "Pumps" });
    el.alarms = h("section", { class: "panel", "aria-label": "Alarms" });
    el.steps = h("section", { class: "panel", "aria-label": "Scenario steps and symptoms" });
    el.sides = h("div", { class: "replay-sides", dataset: { testid: "replay-sides" } });
    const names = m.traineeNames(replay);
    const picker = (i) =>
      h(
        "select",
        {
          dataset: { testid: `replay-trainee-${i}` },
          "aria-label": `Trainee ${i + 1}`,
          onchange: (event) => {
            chosen[i] = event.target.value;
            draw();
          },
        },
        names.map((n) => h("option", { value: n, selected: n === chosen[i] }, n)),
      );
    fill(
      el.head,
      h("h2", {}, `Replay: ${s ? s.title || s.scenario : "journal window"}`),
      s
        ? h(
            "p",
            { class: "muted" },
            `${s.instructor} ran it for ${(s.trainees || []).join(", ")} · ${when(s.started_at)} · ${s.status}`,
            s.aborted_reason ? ` (${s.aborted_reason})` : "",
            " · ",
            h("a", { href: `#/training/${encodeURIComponent(sessionId)}` }, "the report"),
          )
        : null,
    );
    fill(
      el.body,
      h(
        "section",
        { class: "panel replay-controls", "aria-label": "Playback" },
        h("div", { class: "buttons left" }, el.play, h("label", { for: "replay-speed" }, "Speed"), el.speed, el.next, el.clock),
        h("div", { class: "replay-track" }, el.marks, el.scrubber),
      ),
      h("div", { class: "columns" }, el.pumps, el.alarms),
      el.steps,
      names.length > 1 ? h("p", { class: "buttons left" }, "Side by side: ", picker(0), picker(1)) : null,
      el.sides,
    );
  }

  /** Ticks on the track: alarms red/yellow/cyan, steps and symptoms dark, escalations orange.
   * Positioned through the CSSOM: the console's Content-Security-Policy refuses style attributes. */
  function marks() {
    return m.moments(replay)
      .filter((x) => x.kind !== "alarm" && x.kind !== "session")
      .map((x) => {
        const mark = h("span", { class: `mark mark-${x.kind}${x.priority ? ` mark-${x.priority}` : ""}`, title: x.kind });
        mark.style.left = `${span.length ? ((x.at - span.start) / span.length) * 100 : 0}%`;
        return mark;
      });
  }

  function drawControls() {
    if (!el.play) return;
    el.play.textContent = timer === null ? "Play" : "Pause";
    el.play.dataset.playing = timer === null ? "" : "yes";
  }

  // ------------------------------------------------------------------------------------ draw

  function draw() {
    if (!replay) return;
    drawControls();
    el.scrubber.value = String(t - span.start);
    el.clock.textContent = `${m.offsetText(t - span.start)} / ${m.offsetText(span.length)} · ${when(new Date(t).toISOString())}`;
    el.clock.dataset.offsetMs = String(Math.round(t - span.start));
    drawPumps();
    drawAlarms();
    drawSteps();
    drawSides();
  }

  function drawPumps() {
    const rows = m.pumpsAt(replay, t);
    fill(
      el.pumps,
      h("h3", {}, "Pumps"),
      h(
        "table",
        { class: "scores" },
        h("thead", {}, h("tr", {}, ["Pump", "Reservoir", "Flow", "Dose", "Motor", "Infusing", "Link", "Dose reaching the patient"].map((x) => h("th", { scope: "col" }, x)))),
        h(
          "tbody",
          {},
          rows.map(({ device_id, site, frame: f }) =>
            h(
              "tr",
              { dataset: { testid: "replay-pump", device: device_id, site: site || "", motor: f?.motor || "", infusing: f ? String(f.infusing) : "" } },
              h("th", { scope: "row" }, device_id, site ? h("div", { class: "muted" }, site) : null),
              h("td", { class: "num" }, f ? m.fixed(f.reservoir_ml, 2, "mL") : "—"),
              h("td", { class: "num" }, f ? m.fixed(f.current_rate_ml_per_day, 3, "mL/day") : "—"),
              h("td", { class: "num" }, f ? m.fixed(f.dose_mg_per_day, 3, "mg/day") : "—"),
              h("td", {}, f?.motor || "—"),
              h("td", {}, f ? (f.infusing ? "yes" : "no") : "—"),
              h("td", {}, f?.presence || "—"),
              h("td", { class: "num" }, f ? m.fixed(f.true_actual_dose_mg_per_day, 3, "mg/day") : "—"),
            ),
          ),
        ),
      ),
      rows.some((r) => r.frame) ? null : h("p", { class: "muted" }, "No pump figures were recorded for this moment."),
    );
  }

  function drawAlarms() {
    const rows = m.alarmsAt(replay, t);
    fill(
      el.alarms,
      h("h3", {}, "Alarms"),
      rows.length
        ? h(
            "table",
            { class: "scores" },
            h("thead", {}, h("tr", {}, ["Alarm", "Priority", "State", "Escalated", "Expected"].map((x) => h("th", { scope: "col" }, x)))),
            h(
              "tbody",
              {},
              rows.map((a) =>
                h(
                  "tr",
                  {
                    class: `state-${a.state}`,
                    dataset: { testid: "replay-alarm", key: a.key, state: a.state, escalationLevel: a.escalation ? String(a.escalation.level) : "0" },
                  },
                  h("td", {}, `${a.device_id} `, h("strong", {}, a.code)),
                  h("td", {}, h("span", { class: `badge prio-${a.priority}` }, PRIORITY_WORD[a.priority] || a.priority)),
                  h("td", { class: "state" }, STATE_WORD[a.state] || a.state, h("div", { class: "muted" }, `${a.event} by ${a.actor}`)),
                  h("td", {}, a.escalation ? `tier ${a.escalation.level}: ${a.escalation.tier} (${a.escalation.notified.join(", ") || "no account"})` : a.everEscalated ? "was escalated" : "—"),
                  h("td", {}, actionWords(a.expected)),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No alarm yet."),
    );
  }

  function drawSteps() {
    const steps = m.stepsAt(replay, t);
    fill(
      el.steps,
      h("h3", {}, "Scenario steps and symptoms"),
      steps.length
        ? h(
            "ol",
            { class: "history timeline" },
            steps.map((s) =>
              h(
                "li",
                { class: s.done ? null : "muted", dataset: { testid: "replay-step", done: String(s.done), step: s.step, device: s.device_id } },
                h("time", { datetime: s.at }, m.offsetText(Date.parse(s.at) - span.start)),
                " · ",
                h("span", { class: "kind" }, s.step === "patient_symptom" ? `symptom (${s.severity})` : s.step.replaceAll("_", " ")),
                ` · ${s.device_id}`,
                s.symptom ? ` · “${s.symptom}”` : "",
                s.note ? ` · ${s.note}` : "",
                s.done ? "" : " (to come)",
              ),
            ),
          )
        : h("p", { class: "muted" }, "No scenario steps in this replay."),
    );
  }

  function drawSides() {
    const columns = [...new Set(chosen)].map((name) => m.traineeAt(replay, name, t)).filter(Boolean);
    fill(
      el.sides,
      columns.length ? columns.map(column) : h("p", { class: "muted" }, "No trainee acts in this replay."),
    );
  }

  function column(who) {
    return h(
      "section",
      { class: "panel replay-column", dataset: { testid: "replay-column", trainee: who.trainee } },
      h("h3", {}, who.trainee),
      who.summary ? h("p", { class: "muted" }, `Score ${who.summary.score} · ${who.summary.correct} correct, ${who.summary.incorrect} incorrect, ${who.summary.missed} missed`) : null,
      h("h4", {}, `What they did (${who.acts.length} of ${who.actsTotal} so far)`),
      who.acts.length
        ? h(
            "ol",
            { class: "history" },
            who.acts.map((a) =>
              h(
                "li",
                { class: a.kind === "response" ? "response" : null, dataset: { testid: "replay-act", trainee: who.trainee, kind: a.kind, action: a.action, key: a.key } },
                h("time", { datetime: a.at }, m.offsetText(Date.parse(a.at) - span.start)),
                " · ",
                h("span", { class: "kind" }, a.kind === "response" ? `response: ${actionWords(a.action)}` : KIND_WORD[a.kind] || a.kind),
                ` · ${a.device_id} ${a.code}`,
                a.note ? ` · “${a.note}”` : "",
              ),
            ),
          )
        : h("p", { class: "muted" }, "Nothing yet."),
      who.rows.length
        ? [
            h("h4", {}, "Alarms so far: expected and verdict"),
            h(
              "table",
              { class: "scores" },
              h("thead", {}, h("tr", {}, ["Alarm", "Time to acknowledge", "Responses", "Expected", "Verdict"].map((x) => h("th", { scope: "col" }, x)))),
              h(
                "tbody",
                {},
                who.rows.map((r) =>
                  h(
                    "tr",
                    { dataset: { testid: "replay-row", trainee: who.trainee, key: r.key, verdict: r.verdict } },
                    h("td", {}, r.device_id ? `${r.device_id} ${r.code}` : `${r.site} ${r.code}`),
                    h("td", { class: "num" }, seconds(r.time_to_ack_s)),
                    h("td", {}, actionWords(r.responses)),
                    h("td", {}, actionWords(r.expected)),
                    h("td", {}, verdictChip(r.verdict)),
                  ),
                ),
              ),
            ),
          ]
        : null,
    );
  }

  return {
    mount(main) {
      el.head = h("div", { class: "report-head" }, h("h2", {}, "Replay"));
      el.body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
      main.append(h("div", { class: "replay", dataset: { session: sessionId } }, el.head, el.body));
      load();
    },
    unmount() {
      pause();
    },
  };
}
