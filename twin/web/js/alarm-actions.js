// What staff do with an alarm: the buttons a user's permissions allow in its current state, and
// the dialogs behind them (shelve with a reason, record a response, the alarm's history). Used by
// the alarms page and the device page alike.

import { api } from "./api.js";
import { when } from "./clock.js";
import { fill, h } from "./dom.js";

/** IEC 60601-1-8 audio pause offered by the console, minutes (the twin's default is the same). */
export const SILENCE_MINUTES = 2;
/** Default and longest shelve, minutes (the twin refuses more than 12 h). */
export const SHELVE_DEFAULT_MINUTES = 60;
export const SHELVE_MAX_MINUTES = 12 * 60;

const STATE_WORDS = {
  active_unacknowledged: "active, unacknowledged",
  active_acknowledged: "active, acknowledged",
  cleared_unacknowledged: "cleared, unacknowledged",
  shelved: "shelved",
  out_of_service: "out of service",
  normal: "normal",
};

export function stateWords(state) {
  return STATE_WORDS[state] || state;
}

function unanswered(alarm) {
  return alarm.state === "active_unacknowledged" || alarm.state === "cleared_unacknowledged";
}

let catalogue = null;

async function responseActions() {
  catalogue = catalogue || (await api("/api/response-actions"));
  return catalogue;
}

function errorBox() {
  return h("p", { class: "error", role: "alert" });
}

async function act(alarm, action, body, onError) {
  try {
    await api(`/api/alarms/${alarm.key}/${action}`, { method: "POST", body });
  } catch (error) {
    onError(error);
  }
}

/** A signature of what the buttons depend on: rebuild them only when it changes. */
export function actionsSignature(ctx, alarm) {
  return `${alarm.state}|${alarm.silenced_until || ""}|${ctx.me?.role}`;
}

/** The buttons for `alarm` that the signed-in user may use now. */
export function alarmButtons(ctx, alarm, report) {
  const label = (verb) => `${verb} ${alarm.code} on ${alarm.device_id}`;
  const buttons = [];
  const fail = (error) => report(`${error.message}`);
  if (ctx.can("acknowledge") && unanswered(alarm)) {
    buttons.push(
      h("button", { type: "button", class: "primary", dataset: { action: "acknowledge" }, "aria-label": label("Acknowledge"), onclick: () => act(alarm, "acknowledge", {}, fail) }, "Acknowledge"),
    );
  }
  if (ctx.can("silence") && unanswered(alarm) && !alarm.silenced_until) {
    buttons.push(
      h("button", { type: "button", dataset: { action: "silence" }, "aria-label": label(`Pause audio ${SILENCE_MINUTES} min for`), onclick: () => act(alarm, "silence", { minutes: SILENCE_MINUTES }, fail) }, `Silence ${SILENCE_MINUTES} min`),
    );
  }
  if (ctx.can("respond")) {
    buttons.push(
      h("button", { type: "button", dataset: { action: "respond" }, "aria-label": label("Record a response to"), onclick: () => respondDialog(ctx, alarm) }, "Respond…"),
    );
  }
  if (ctx.can("shelve") && alarm.state === "shelved") {
    buttons.push(h("button", { type: "button", dataset: { action: "unshelve" }, onclick: () => act(alarm, "unshelve", {}, fail) }, "Unshelve"));
  } else if (ctx.can("shelve") && alarm.state !== "out_of_service") {
    buttons.push(h("button", { type: "button", dataset: { action: "shelve" }, "aria-label": label("Shelve"), onclick: () => shelveDialog(alarm) }, "Shelve…"));
  }
  if (ctx.can("remove_from_service")) {
    if (alarm.state === "out_of_service") {
      buttons.push(h("button", { type: "button", dataset: { action: "return-to-service" }, onclick: () => act(alarm, "return-to-service", {}, fail) }, "Return to service"));
    } else {
      buttons.push(h("button", { type: "button", class: "danger", dataset: { action: "remove-from-service" }, onclick: () => removeDialog(alarm) }, "Remove from service…"));
    }
  }
  buttons.push(h("button", { type: "button", dataset: { action: "history" }, "aria-label": label("History of"), onclick: () => historyDialog(ctx, alarm) }, "History"));
  return buttons;
}

// ------------------------------------------------------------------------------------ dialogs

function dialog(title, ...content) {
  const d = h("dialog", { "aria-labelledby": "dialog-title" }, h("h2", { id: "dialog-title" }, title), ...content);
  d.addEventListener("close", () => d.remove());
  document.body.append(d);
  d.showModal();
  return d;
}

function reasonDialog(alarm, { title, action, withMinutes }) {
  const error = errorBox();
  const reason = h("textarea", { id: "reason", required: true, rows: 3, maxlength: 2000 });
  const minutes = h("input", { id: "minutes", type: "number", min: 1, max: SHELVE_MAX_MINUTES, value: SHELVE_DEFAULT_MINUTES, required: true });
  const form = h(
    "form",
    { method: "dialog" },
    h("p", {}, `${alarm.device_id}: ${alarm.message}`),
    h("label", { for: "reason" }, "Reason (required, kept in the journal)"),
    reason,
    withMinutes ? [h("label", { for: "minutes" }, `For how many minutes (at most ${SHELVE_MAX_MINUTES})`), minutes] : null,
    h("div", { class: "buttons" }, h("button", { type: "button", value: "cancel", onclick: () => d.close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, title)),
    error,
  );
  const d = dialog(`${title}: ${alarm.code}`, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!reason.value.trim()) {
      error.textContent = "Give a reason.";
      return;
    }
    const body = { comment: reason.value.trim() };
    if (withMinutes) body.minutes = Number(minutes.value);
    try {
      await api(`/api/alarms/${alarm.key}/${action}`, { method: "POST", body });
      d.close();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  reason.focus();
}

function shelveDialog(alarm) {
  reasonDialog(alarm, { title: "Shelve", action: "shelve", withMinutes: true });
}

function removeDialog(alarm) {
  reasonDialog(alarm, { title: "Remove from service", action: "remove-from-service", withMinutes: false });
}

function field(id, labelText, input) {
  input.id = id;
  return [h("label", { for: id }, labelText), input];
}

async function respondDialog(ctx, alarm) {
  const error = errorBox();
  const [actions, device] = await Promise.all([responseActions(), api(`/api/devices/${encodeURIComponent(alarm.device_id)}?site=${encodeURIComponent(alarm.site)}`)]);
  const reported = device.reported || {};
  const select = h("select", { required: true }, actions.map((a) => h("option", { value: a.action, dataset: { applies: a.applies || "" } }, a.title)));
  const note = h("textarea", { rows: 3, maxlength: 2000 });
  const description = h("p", { class: "muted", "aria-live": "polite" });
  const volume = h("input", { type: "number", step: "0.1", min: "0.1", max: "40", value: device.identity?.reservoir_capacity_ml ?? 20 });
  const drug = h("input", { value: reported.drug || "", required: true });
  const concentration = h("input", { type: "number", step: "any", min: "0.001", max: "100", value: reported.concentration_mg_per_ml ?? "" });
  const residual = h("input", { type: "number", step: "0.01", min: "0" });
  const rate = h("input", { type: "number", step: "any", min: "0.048", max: "24", value: reported.current_rate_ml_per_day ?? "" });
  const refill = h("fieldset", { hidden: true }, h("legend", {}, "Refill sent to the pump"), field("r-volume", "Volume filled (mL)", volume), field("r-drug", "Drug", drug), field("r-conc", "Concentration (mg/mL)", concentration), field("r-residual", "Measured residual (mL, optional)", residual));
  const reprogram = h("fieldset", { hidden: true }, h("legend", {}, "New program sent to the pump"), field("p-rate", "Continuous rate (mL/day)", rate));
  const bolusVolume = h("input", { type: "number", step: "0.01", min: "0.01", max: "5", value: device.identity?.catheter_volume_ml || 0.25 });
  const bolusMinutes = h("input", { type: "number", step: "1", min: "1", max: "1440", value: 30 });
  const bolus = h("fieldset", { hidden: true }, h("legend", {}, "Bridge bolus sent to the pump (about the catheter's volume)"), field("b-volume", "Volume (mL)", bolusVolume), field("b-minutes", "Over (minutes)", bolusMinutes));
  function shown() {
    const spec = actions.find((a) => a.action === select.value);
    description.textContent = spec ? spec.description : "";
    // hidden is not enough: a hidden field still takes part in the form's validation (a stalled
    // pump's flow of 0 mL/day, below the reprogram minimum, would block every response); a
    // disabled fieldset's fields do not
    refill.hidden = refill.disabled = spec?.applies !== "refill";
    reprogram.hidden = reprogram.disabled = spec?.applies !== "reprogram" || Boolean(spec?.preset);
    bolus.hidden = bolus.disabled = spec?.applies !== "clinician_bolus";
    if (spec?.bolus_minutes) bolusMinutes.value = spec.bolus_minutes;
  }
  select.addEventListener("change", shown);
  const form = h(
    "form",
    { method: "dialog" },
    h("p", {}, `${alarm.device_id}: ${alarm.message} (${stateWords(alarm.state)})`),
    field("response-action", "Action", select),
    description,
    refill,
    reprogram,
    bolus,
    field("response-note", "Note", note),
    h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => d.close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Record response")),
    error,
  );
  const d = dialog(`Respond to ${alarm.code}`, form);
  shown();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const spec = actions.find((a) => a.action === select.value);
    const body = { action: select.value, note: note.value.trim() || null };
    if (spec.preset) {
      // a fixed command (stop, interrogate); a real pump is read through its gateway: record only
      if (device.identity?.simulated !== false || spec.applies !== "interrogate") body.command = spec.preset;
    } else if (spec.applies === "clinician_bolus") {
      body.command = { type: "clinician_bolus", volume_ml: Number(bolusVolume.value), duration_minutes: Number(bolusMinutes.value) };
    } else if (spec.applies === "refill") {
      body.command = { type: "refill", volume_ml: Number(volume.value), drug: drug.value.trim(), concentration_mg_per_ml: Number(concentration.value) };
      if (residual.value !== "") body.command.measured_residual_ml = Number(residual.value);
    } else if (spec.applies === "reprogram") {
      body.command = { type: "reprogram", program: { mode: "continuous", rate_ml_per_day: Number(rate.value) } };
    }
    try {
      await api(`/api/alarms/${alarm.key}/responses`, { method: "POST", body });
      d.close();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  select.focus();
}

/** The alarm's history: its journal transitions and the responses to it, in time order, live. */
export async function historyDialog(ctx, alarm) {
  const list = h("ol", { class: "history", "aria-live": "polite" });
  const d = dialog(`History of ${alarm.key}`, h("p", {}, alarm.message), list, h("div", { class: "buttons" }, h("button", { type: "button", onclick: () => d.close() }, "Close")));
  d.dataset.key = alarm.key;
  async function load() {
    const [transitions, responses] = await Promise.all([
      api(`/api/alarms/${alarm.key}/journal`),
      api(`/api/alarms/${alarm.key}/responses`),
    ]);
    const entries = [
      ...transitions.map((t) => ({
        at: t.at,
        order: [t.version, 0],
        node: h("li", { dataset: { kind: "transition" } }, h("span", { class: "kind" }, t.event.replaceAll("_", " ")), ` → ${stateWords(t.to_state)} · ${t.actor} · ${when(t.at)}`, t.comment ? ` · “${t.comment}”` : ""),
      })),
      ...responses.map((r) => ({
        at: r.at,
        order: [r.alarm_version, 1],
        node: h("li", { class: "response", dataset: { kind: "response", action: r.action } }, h("span", { class: "kind" }, `response: ${r.action.replaceAll("_", " ")}`), ` · ${r.actor} (${r.role}) · ${when(r.at)}`, r.note ? ` · “${r.note}”` : "", r.command_id ? ` · command ${r.command_id}` : ""),
      })),
    ];
    // the alarm version orders a response among the transitions it followed, whatever the clocks say
    entries.sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1] || Date.parse(a.at) - Date.parse(b.at));
    fill(list, entries.map((e) => e.node));
  }
  d.refresh = () => load().catch(() => {});
  await load();
}

/** Refresh an open history dialog when its alarm changes or gets a response. */
export function refreshHistory(keys) {
  const d = document.querySelector("dialog[data-key]");
  if (d && d.refresh && keys.has(d.dataset.key)) d.refresh();
}
