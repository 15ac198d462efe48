// The training desk (#/training): an instructor starts a session (a scenario, the trainees it
// scores, the speed), follows it live (status, elapsed time, pause, resume, abort, the scoreboard
// and every alarm's verdict) and finds past sessions' reports. The live panel is refetched when
// the stream reports a session, an alarm or a response, at most once a second (REFETCH_EVERY_MS).
// Users without the run_scenario permission see the past sessions only.

import { api } from "../api.js";
import { serverNow, when } from "../clock.js";
import { fill, h } from "../dom.js";
import { guidance, loadGuidance, setGuidanceHidden } from "../guidance.js";
import { Refetcher } from "../refetch.js";
import { alarmTable, traineeTable } from "../score-tables.js";
import { clockTime, elapsedSeconds, isLive, liveSession, projectProgress, scenarioTime, sortSessions, statusWord, traineeScore, wallDuration } from "../training.js";

/** A busy fleet changes a session's report many times a second; one refetch a second is plenty. */
const MAX_LIVE_SESSIONS = 4; // the twin's MAX_LIVE_RUNS: each session runs its own pumps, side by side
const REFETCH_EVERY_MS = 1000;
const DEFAULT_SPEED = 60;

const REFUSALS = {
  too_many_runs: "Four sessions (or scenario runs) at once is the most this twin runs: end one first.",
  invalid_scenario: "This scenario cannot run: its fleet or timeline does not resolve.",
  not_a_trainee: "Only trainee accounts can be scored in a session.",
  unknown_trainee: "One of the chosen trainees has no active account.",
};

function refusal(error) {
  const text = REFUSALS[error.reason];
  return text ? `${text} (${error.message})` : error.message;
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v, testid]) => [h("dt", {}, k), h("dd", { dataset: testid ? { testid } : {} }, v)]));
}

export function statusChip(status, testid) {
  return h("span", { class: `chip status-${status}`, dataset: testid ? { testid, status } : { status } }, statusWord(status));
}

/** The instructor's switch: hide what alarms mean and what to do from trainees, for a test. */
function guidanceSwitch() {
  const box = h("input", { type: "checkbox", id: "guidance-hidden", dataset: { testid: "guidance-switch" }, checked: guidance().hidden });
  const note = h("span", { class: "muted", role: "status" });
  box.addEventListener("change", async () => {
    try {
      const g = await setGuidanceHidden(box.checked);
      note.textContent = g.hidden ? "Trainees no longer see it (nor can they read it from the API)." : "Trainees see it again.";
    } catch (error) {
      note.textContent = error.message;
      box.checked = !box.checked;
    }
  });
  loadGuidance().then((g) => (box.checked = g.hidden));
  return h(
    "section",
    { class: "panel", "aria-label": "Alarm guidance" },
    h("label", { for: "guidance-hidden" }, box, " Hide the alarm guidance (what each alarm means, what staff do) from trainees, for a test "),
    note,
  );
}

export function trainingView(ctx) {
  const instructor = ctx.can("run_scenario");
  let scenarios = [];
  let trainees = [];
  let sessions = [];
  let shown = null; // the session in the live panel: the live one, or the last one this page showed
  let sections = {};
  let elapsedCell = null;
  let scenarioCell = null; // simulated progress, run forward between fetches while running
  let fetchedAt = 0;
  const refetch = new Refetcher(refresh, REFETCH_EVERY_MS);

  // ------------------------------------------------------------------------------- loading

  async function refresh() {
    try {
      sessions = await api("/api/training/sessions");
    } catch (error) {
      fill(sections.past, h("h3", {}, "Past sessions"), h("p", { class: "error", role: "alert" }, `Sessions could not be read: ${error.message}`));
      return;
    }
    const live = liveSession(sessions);
    const wanted = live ? live.session_id : shown ? shown.session_id : null;
    if (wanted) {
      try {
        shown = await api(`/api/training/sessions/${encodeURIComponent(wanted)}`);
      } catch {
        shown = live || sessions.find((s) => s.session_id === wanted) || shown;
      }
    }
    drawLive();
    drawPast();
    drawForm();
  }

  async function loadCatalogue() {
    const [scenarioList, traineeList] = await Promise.all([
      api("/api/scenarios").catch((error) => ({ error })),
      api("/api/training/trainees").catch((error) => ({ error })),
    ]);
    scenarios = Array.isArray(scenarioList) ? scenarioList : [];
    trainees = Array.isArray(traineeList) ? traineeList : [];
    buildForm(scenarioList.error || traineeList.error || null);
  }

  // ------------------------------------------------------------------------------- start form

  let form;
  function buildForm(loadError) {
    if (!instructor) return;
    const error = h("p", { class: "error", role: "alert", dataset: { testid: "training-error" } });
    if (loadError) error.textContent = `The training desk could not load: ${loadError.message}`;
    const select = h(
      "select",
      { id: "training-scenario", required: true, dataset: { testid: "training-scenario" } },
      scenarios.map((s) => h("option", { value: s.name, disabled: s.runnable === false }, s.runnable === false ? `${s.title} (not on this fleet)` : s.title)),
    );
    const firstRunnable = scenarios.find((s) => s.runnable !== false);
    if (firstRunnable) select.value = firstRunnable.name;
    const about = h("div", { class: "scenario-about", dataset: { testid: "training-scenario-about" }, "aria-live": "polite" });
    const speed = h("input", { id: "training-speed", type: "number", min: "1", max: "1000000", step: "any", required: true, dataset: { testid: "training-speed" } });
    const length = h("span", { class: "muted", id: "training-length" });
    const boxes = trainees.map((t) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "trainee", value: t.username, id: `training-trainee-${t.username}`, dataset: { testid: `training-trainee-${t.username}` } }),
        ` ${t.username}`,
      ),
    );
    const who = h(
      "fieldset",
      { class: "trainees" },
      h("legend", {}, "Trainees scored in this session"),
      boxes.length ? boxes : h("p", { class: "muted" }, "No active trainee account. An admin adds one: pumptwin users add NAME --role trainee."),
    );
    const start = h("button", { type: "submit", class: "primary", dataset: { testid: "training-start" } }, "Start session");

    function scenario() {
      return scenarios.find((s) => s.name === select.value) || null;
    }
    function showLength() {
      const s = scenario();
      length.textContent = s ? `lasts ${wallDuration(s.duration_s, Number(speed.value))} at this speed` : "";
    }
    function showScenario() {
      const s = scenario();
      speed.value = String(s?.speed ?? DEFAULT_SPEED);
      start.disabled = !s || s.runnable === false;
      fill(
        about,
        s ? h("p", {}, s.description) : h("p", { class: "muted" }, "No scenario can run on this fleet."),
        s && s.runnable === false ? h("p", { class: "error" }, `It cannot start: ${s.not_runnable_because}`) : null,
        s && s.learning_objectives?.length
          ? [h("h4", {}, "Learning objectives"), h("ul", { class: "objectives" }, s.learning_objectives.map((o) => h("li", {}, o)))]
          : null,
      );
      showLength();
    }
    select.addEventListener("change", showScenario);
    speed.addEventListener("input", showLength);

    form = h(
      "form",
      { class: "training-start", "aria-labelledby": "training-start-title" },
      h("h3", { id: "training-start-title" }, "Start a training session"),
      h("label", { for: "training-scenario" }, "Scenario"),
      select,
      about,
      who,
      h("label", { for: "training-speed" }, "Speed (× real time)"),
      h("div", { class: "inline" }, speed, length),
      h("div", { class: "buttons" }, start),
      error,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const chosen = [...form.querySelectorAll("input[name=trainee]:checked")].map((b) => b.value);
      if (!select.value) {
        error.textContent = "Choose a scenario.";
        return;
      }
      if (!chosen.length) {
        error.textContent = "Choose at least one trainee.";
        return;
      }
      const body = { scenario: select.value, trainees: chosen };
      if (speed.value !== "") body.speed = Number(speed.value);
      start.disabled = true;
      try {
        shown = await api("/api/training/sessions", { method: "POST", body });
        drawLive();
        drawForm();
        refetch.request();
      } catch (e) {
        error.textContent = refusal(e);
      } finally {
        start.disabled = scenario()?.runnable === false;
      }
    });
    showScenario();
    drawForm();
  }

  function drawForm() {
    if (!instructor || !form) return;
    const running = sessions.filter(isLive).length;
    if (running >= MAX_LIVE_SESSIONS) {
      fill(sections.start, h("p", { class: "muted" }, `${MAX_LIVE_SESSIONS} sessions at once is the most this twin runs: end one before starting another.`));
    } else if (form.parentNode !== sections.start) {
      fill(sections.start, form);
    }
  }

  // ------------------------------------------------------------------------------- live panel

  function control(label, testid, onclick, cls = "") {
    return h("button", { type: "button", class: cls || null, dataset: { testid }, onclick }, label);
  }

  async function post(action, body, status) {
    try {
      shown = await api(`/api/training/sessions/${encodeURIComponent(shown.session_id)}/${action}`, { method: "POST", body });
      drawLive();
      drawForm();
      refetch.request();
    } catch (e) {
      status.textContent = refusal(e);
    }
  }

  function abortDialog(status) {
    const reason = h("textarea", { id: "abort-reason", rows: 3, maxlength: 500, dataset: { testid: "training-abort-reason" } });
    const form = h(
      "form",
      { method: "dialog" },
      h("p", {}, `Abort ${shown.title || shown.scenario}? Every pump the session touched goes back to its fault-free baseline; alarms no one answered are scored as missed.`),
      h("label", { for: "abort-reason" }, "Reason (optional, kept with the report)"),
      reason,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", onclick: () => d.close() }, "Cancel"),
        h("button", { type: "submit", class: "danger", dataset: { testid: "training-abort-confirm" } }, "Abort session"),
      ),
    );
    const d = h("dialog", { "aria-labelledby": "abort-title" }, h("h2", { id: "abort-title" }, "Abort the training session"), form);
    d.addEventListener("close", () => d.remove());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      d.close();
      await post("abort", reason.value.trim() ? { reason: reason.value.trim() } : {}, status);
    });
    document.body.append(d);
    d.showModal();
    reason.focus();
  }

  /** The live panel's parts, built once; the controls are rebuilt only when the session or its
   * status changes, so a refetch every second never takes the focus from a button. */
  let live = null;
  function livePanel() {
    if (live) return live;
    live = {
      title: h("h3", {}),
      chip: h("span", { role: "status", dataset: { testid: "training-status" } }),
      facts: h("div", {}),
      controls: h("div", { class: "buttons left" }),
      status: h("p", { class: "error", role: "alert" }),
      scoreboard: h("div", {}),
      alarms: h("div", {}),
      signature: null,
    };
    fill(
      sections.live,
      h("div", { class: "panel-head" }, live.title, live.chip),
      live.facts,
      live.controls,
      live.status,
      h("h4", {}, "Scoreboard"),
      live.scoreboard,
      h("h4", {}, "Alarms and verdicts"),
      live.alarms,
    );
    return live;
  }

  function drawLive() {
    if (!shown) {
      sections.live.hidden = true;
      elapsedCell = null;
      return;
    }
    const s = shown;
    const p = livePanel();
    sections.live.hidden = false;
    sections.live.dataset.session = s.session_id;
    p.title.textContent = isLive(s) ? "Live session" : "Last session";
    p.chip.className = `chip status-${s.status}`;
    p.chip.dataset.status = s.status;
    p.chip.textContent = statusWord(s.status);
    elapsedCell = h("span", {}, clockTime(elapsedSeconds(s, serverNow())));
    fetchedAt = Date.now();
    scenarioCell = s.progress ? h("span", {}, scenarioTime(s.progress)) : null;
    fill(
      p.facts,
      facts([
        ["Scenario", s.title || s.scenario, "training-live-scenario"],
        ["Session", s.session_id],
        ["Instructor", s.instructor],
        ["Trainees", (s.trainees || []).join(", ") || "—"],
        ["Pumps", (s.devices || []).join(", ") || "—"],
        ["Speed", s.speed ? `× ${s.speed}` : "—"],
        ["Started", when(s.started_at)],
        [isLive(s) ? "Elapsed (wall clock)" : "Lasted", elapsedCell, "training-elapsed"],
        scenarioCell ? ["Scenario time", scenarioCell, "training-scenario-time"] : null,
        s.aborted_reason ? ["Abort reason", s.aborted_reason] : null,
      ].filter(Boolean)),
    );
    const signature = `${s.session_id}|${s.status}`;
    if (p.signature !== signature) {
      p.signature = signature;
      const buttons = [];
      if (instructor && s.status === "running") buttons.push(control("Pause", "training-pause", () => post("pause", {}, p.status)));
      if (instructor && s.status === "paused") buttons.push(control("Resume", "training-resume", () => post("resume", {}, p.status), "primary"));
      if (instructor && isLive(s)) buttons.push(control("Abort…", "training-abort", () => abortDialog(p.status), "danger"));
      fill(
        p.controls,
        buttons,
        h("a", { href: `#/training/${encodeURIComponent(s.session_id)}`, class: "button-link", dataset: { testid: "training-report-link" } }, isLive(s) ? "Open the live report" : "Open the report"),
      );
    }
    fill(p.scoreboard, traineeTable(s.report));
    fill(p.alarms, alarmTable(s.report, { reveal: true }));
  }

  // ------------------------------------------------------------------------------- past sessions

  function drawPast() {
    const list = sortSessions(sessions);
    const scores = (s) =>
      ((s.report && s.report.trainees) || []).map((t) => `${t.trainee} ${traineeScore(t.alarms ? t.score : null)}`).join(", ") || (s.trainees || []).join(", ");
    fill(
      sections.past,
      h("h3", {}, "Sessions"),
      list.length
        ? h(
            "table",
            { class: "sessions", dataset: { testid: "training-sessions" } },
            h("caption", {}, "Newest first; trainee scores out of 100"),
            h("thead", {}, h("tr", {}, ["Started", "Scenario", "Instructor", "Trainees and scores", "Status", ""].map((t) => h("th", { scope: "col" }, t)))),
            h(
              "tbody",
              {},
              list.map((s) =>
                h(
                  "tr",
                  { dataset: { testid: "training-session-row", session: s.session_id, status: s.status } },
                  h("td", {}, when(s.started_at)),
                  h("td", {}, s.title || s.scenario),
                  h("td", {}, s.instructor),
                  h("td", {}, scores(s)),
                  h("td", {}, statusChip(s.status)),
                  h("td", {}, h("a", { href: `#/training/${encodeURIComponent(s.session_id)}`, "aria-label": `Report of ${s.title || s.scenario}, ${when(s.started_at)}` }, "Report")),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No training session yet."),
    );
  }

  return {
    mount(main) {
      sections = {
        live: h("section", { class: "panel live-session", "aria-label": "Live session", hidden: true }),
        start: h("section", { class: "panel", "aria-label": "Start a training session" }),
        past: h("section", { class: "panel", "aria-label": "Sessions" }),
      };
      main.append(
        h(
          "div",
          { class: "training-desk" },
          h("h2", {}, "Training"),
          instructor ? null : h("p", { class: "muted" }, "Instructors start and run training sessions; here are the sessions so far and their reports."),
          sections.live,
          instructor ? guidanceSwitch() : null,
          instructor ? sections.start : null,
          sections.past,
        ),
      );
      fill(sections.past, h("h3", {}, "Sessions"), h("p", { class: "muted" }, "Loading…"));
      if (instructor) loadCatalogue();
      refetch.request();
    },
    update(changed) {
      if (changed.training) refetch.request();
      else if ((changed.alarms || changed.responses) && isLive(shown)) refetch.request();
    },
    tick() {
      if (elapsedCell && shown && isLive(shown)) elapsedCell.textContent = clockTime(elapsedSeconds(shown, serverNow()));
      if (scenarioCell && shown && shown.status === "running" && shown.progress) {
        scenarioCell.textContent = scenarioTime(projectProgress(shown.progress, shown.speed, (Date.now() - fetchedAt) / 1000));
      }
    },
    unmount() {
      refetch.stop();
    },
  };
}
