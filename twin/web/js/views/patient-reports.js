// Patient reports (#/reports): the cue cards of a clinical simulation. Each card says who reports
// (the patient with a given pump), what, when (on the pump's clock, and how far into the drill)
// and how bad; staff answer it with a response action, recorded as an answer to the pump's
// patient_report alarm (the twin raises one for every recorded report, and scores it). Cards
// of drills still running come first; those of ended drills follow, with the answers expected.

import { api } from "../api.js";
import { deviceWhen, span } from "../device-clock.js";
import { fill, h } from "../dom.js";
import { when } from "../clock.js";
import { deviceHref } from "../state.js";

const SEVERITY_WORD = { mild: "Mild", moderate: "Moderate", severe: "Severe", life_threatening: "Life-threatening" };
let actions = null;

async function answerActions() {
  // a recorded act, or one whose command the catalogue fixes (interrogate): the twin sends it; a
  // refill, a reprogram or a bolus needs its parameters and is answered from the pump's alarm
  actions = actions || (await api("/api/response-actions")).filter((a) => a.applies === null || a.preset);
  return actions;
}

/** One cue card (also used by the device page). */
export function cueCard(ctx, card) {
  const answered = card.responses.length > 0;
  const live = card.run_status === "running" || card.run_status === "paused";
  const status = h("p", { class: "error", role: "alert" });
  const article = h(
    "article",
    { class: `cue-card severity-${card.severity}${answered ? " answered" : ""}${live ? "" : " ended"}`, dataset: { testid: "cue-card", cue: card.cue_id, severity: card.severity }, "aria-label": `Patient report on ${card.device_id}` },
    h(
      "header",
      {},
      h("span", { class: "chip severity" }, SEVERITY_WORD[card.severity] || card.severity),
      h("span", { class: "who" }, "Reported by ", h("strong", {}, card.reported_by)),
      h("span", { class: "muted" }, card.site ? ` · ${card.site}` : ""),
    ),
    h("blockquote", { dataset: { testid: "cue-symptom" } }, card.symptom),
    h(
      "p",
      { class: "muted when" },
      h("time", { datetime: card.reported_at }, deviceWhen(card.reported_at)),
      ` on the pump's clock · ${span(card.elapsed_s)} into “${card.title}”${live ? "" : ` (${card.run_status})`} · `,
      h("a", { href: deviceHref(card.site, card.device_id) }, `pump ${card.device_id}`),
    ),
    card.expected ? h("p", { class: "expected", dataset: { testid: "cue-expected" } }, "Expected: ", card.expected.map((e) => e.replaceAll("_", " ")).join(", ") || "—") : null,
    answered
      ? h(
          "ul",
          { class: "history", dataset: { testid: "cue-answers" } },
          card.responses.map((r) => h("li", { class: "response", dataset: { action: r.action } }, h("span", { class: "kind" }, r.action.replaceAll("_", " ")), ` · ${r.actor} (${r.role}) · ${when(r.at)}`, r.note ? ` · “${r.note}”` : "")),
        )
      : h("p", { class: "unanswered", dataset: { testid: "cue-unanswered" } }, "Not answered yet."),
    ctx.can("respond") && live ? answerForm(card, status) : null,
    status,
  );
  return article;
}

function answerForm(card, status) {
  const id = card.cue_id.replace(/[^a-z0-9]/gi, "-");
  const select = h("select", { id: `cue-action-${id}`, dataset: { testid: "cue-action" } }, h("option", { value: "" }, "Choose an answer…"));
  const note = h("input", { id: `cue-note-${id}`, maxlength: 2000, dataset: { testid: "cue-note" } });
  answerActions()
    .then((list) => select.append(...list.map((a) => h("option", { value: a.action }, a.title))))
    .catch((error) => (status.textContent = error.message));
  const form = h(
    "form",
    { class: "cue-answer" },
    h("label", { for: select.id }, "Answer"),
    select,
    h("label", { for: note.id }, "Note"),
    note,
    h("button", { type: "submit", class: "primary", dataset: { testid: "cue-submit" } }, "Record answer"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!select.value) {
      status.textContent = "Choose an answer first.";
      return;
    }
    const [run, step, device] = card.cue_id.split("/");
    try {
      await api(`/api/cues/${encodeURIComponent(run)}/${encodeURIComponent(step)}/${encodeURIComponent(device)}/responses`, { method: "POST", body: { action: select.value, note: note.value.trim() || null } });
      status.textContent = "";
    } catch (error) {
      status.textContent = error.message;
    }
  });
  return form;
}

export function patientReportsView(ctx) {
  let list;
  let caption;

  function draw() {
    const cards = ctx.cues.cards;
    const live = cards.filter((c) => c.run_status === "running" || c.run_status === "paused");
    const ended = cards.filter((c) => !live.includes(c));
    const open = live.filter((c) => !c.responses.length).length;
    caption.textContent = cards.length ? `${live.length} report${live.length === 1 ? "" : "s"} in running drills, ${open} not answered` : "No patient has reported anything. Reports come from the scenarios of a training session.";
    // keep a card the user is typing in: redraw only cards whose content changed
    const focused = document.activeElement?.closest?.("[data-cue]")?.dataset.cue;
    const keep = new Map([...list.querySelectorAll("[data-cue]")].map((el) => [el.dataset.cue, el]));
    fill(
      list,
      live.length ? h("h3", {}, "In running drills") : null,
      live.map((c) => (c.cue_id === focused && keep.get(c.cue_id)?.dataset.answers === String(c.responses.length) ? keep.get(c.cue_id) : withCount(cueCard(ctx, c), c))),
      ended.length ? h("h3", {}, "From ended drills") : null,
      ended.map((c) => withCount(cueCard(ctx, c), c)),
    );
  }

  function withCount(el, card) {
    el.dataset.answers = String(card.responses.length);
    return el;
  }

  return {
    mount(main) {
      caption = h("p", { class: "muted", role: "status" });
      list = h("div", { class: "cue-list" });
      main.append(h("h2", {}, "Patient reports"), caption, list);
      draw();
      ctx.cues.refetch.request();
    },
    update(changed) {
      if (changed.cues) draw();
    },
  };
}
