// One pump: identity; what it reported (its last state message), what it last measured (its last
// telemetry sample) and what the twin predicts now, side by side, each column with its own time
// and age on the pump's clock (never one message's time with another's age); recent history as
// charts; its alarms (with what they mean and what to do), the patients' reports about it, its
// commands; and, for instructors, a form to send a command.
// The device detail is refetched when the stream says the device changed (at most every
// DETAIL_EVERY_MS) and the history every HISTORY_EVERY_MS, so a fast simulation does not flood
// the twin with requests.

import { actionsSignature, alarmButtons, refreshHistory, stateWords } from "../alarm-actions.js";
import { api } from "../api.js";
import { serverNow, when } from "../clock.js";
import { lineChart } from "../chart.js";
import { deviceAgeS, deviceWhen, span } from "../device-clock.js";
import { fill, h } from "../dom.js";
import { guidanceBlock } from "../guidance.js";
import { cueCard } from "./patient-reports.js";
import { interrogationPanel } from "./interrogation.js";
import { deviceHref, deviceKey, deviceOfRoute, isOf } from "../state.js";

const DETAIL_EVERY_MS = 2000;
const HISTORY_EVERY_MS = 10000;
const PRIORITY_WORD = { high: "High", medium: "Medium", low: "Low" };

function num(v, digits = 2, unit = "") {
  return v === null || v === undefined ? "—" : `${Number(v).toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}

function yesNo(v) {
  return v === null || v === undefined ? "—" : v ? "yes" : "no";
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** The page of the pump the route names: `<site>/<id>`, or `<id>` alone (an old link: the twin
 * answers 409 when that id is known at several sites; once the detail came, its site is used). */
export function deviceView(ctx, routeArg) {
  const { deviceId } = deviceOfRoute(routeArg);
  let { site } = deviceOfRoute(routeArg);
  const path = (suffix = "", query = "") => {
    const params = new URLSearchParams(query);
    if (site) params.set("site", site);
    const q = params.toString();
    return `/api/devices/${encodeURIComponent(deviceId)}${suffix}${q ? `?${q}` : ""}`;
  };
  let detail = null;
  let history = [];
  let sections = {};
  let lastDetail = 0;
  let detailTimer = null;
  let historyTimer = null;
  let commandStatus;
  let prefillCommand = () => {};

  async function loadDetail() {
    lastDetail = Date.now();
    try {
      detail = await api(path());
      site = site || detail.summary.site;
      for (const c of detail.commands) ctx.state.commands.set(c.command_id, c);
      drawDetail();
    } catch (error) {
      if (error.reason === "ambiguous_device") {
        // an old link without a site, to an id known at several sites: offer each site's pump
        const found = await api(`/api/devices?q=${encodeURIComponent(deviceId)}`).catch(() => []);
        const sites = found.filter((d) => d.device_id === deviceId).map((d) => d.site).sort();
        fill(sections.identity, h("p", { class: "error", role: "alert" }, `Pump ${deviceId} is known at several sites: pick one.`), h("ul", { dataset: { testid: "device-sites" } }, sites.map((s) => h("li", {}, h("a", { href: deviceHref(s, deviceId) }, s)))));
        return;
      }
      fill(sections.identity, h("p", { class: "error", role: "alert" }, error.status === 404 ? `No pump ${deviceId}${site ? ` at ${site}` : ""}.` : error.message));
    }
  }

  async function loadHistory() {
    try {
      history = await api(path("/history", "limit=360"));
      drawCharts();
    } catch {
      // the detail section already reports an unknown device
    }
    historyTimer = setTimeout(loadHistory, HISTORY_EVERY_MS);
  }

  function detailSoon() {
    if (detailTimer) return;
    const wait = Math.max(0, lastDetail + DETAIL_EVERY_MS - Date.now());
    detailTimer = setTimeout(() => {
      detailTimer = null;
      loadDetail();
    }, wait);
  }

  function drawDetail() {
    const id = detail.identity || {};
    const s = detail.summary;
    const now = serverNow();
    const ago = (iso) => {
      const a = deviceAgeS(iso, s, now);
      return a === null ? "—" : `${span(a)} ago`;
    };
    fill(
      sections.identity,
      h("h3", {}, "Identity"),
      facts([
        ["Site", s.site],
        ["Model", id.model || "—"],
        ["Serial", id.serial || "—"],
        ["Firmware", id.firmware || "—"],
        ["Implanted", id.implant_date ? `${deviceWhen(id.implant_date)} (${ago(id.implant_date)})` : "—"],
        ["Reservoir capacity", num(id.reservoir_capacity_ml, 1, "mL")],
        ["Catheter volume", num(id.catheter_volume_ml, 2, "mL")],
        ["Kind", s.simulated === false ? "real pump (read-only mirror)" : "simulated pump"],
        ["Presence", `${s.presence}${s.presence_reason ? ` (${s.presence_reason})` : ""}`],
        ["Pump clock now", deviceWhen(s.device_now)],
        ["Last message", s.device_time ? `${deviceWhen(s.device_time)} (${ago(s.device_time)})` : "—"],
      ]),
    );
    const r = detail.reported || {};
    const t = detail.telemetry || {};
    const p = detail.predicted || {};
    const has = { r: Boolean(detail.reported), t: Boolean(detail.telemetry), p: Boolean(detail.predicted) };
    const cell = (present, value) => (present ? value : "—");
    const rows = [
      ["Reservoir (calculated)", cell(has.r, num(r.reservoir_ml, 2, "mL")), cell(has.t, num(t.reservoir_ml, 2, "mL")), cell(has.p, num(p.reservoir_ml, 2, "mL"))],
      ["Battery", cell(has.r, num(r.battery_percent, 1, "%")), cell(has.t, num(t.battery_percent, 1, "%")), cell(has.p, num(p.battery_percent, 1, "%"))],
      ["Infusing", yesNo(r.infusing), yesNo(t.infusing), yesNo(p.infusing)],
      ["Flow now", cell(has.r, num(r.current_rate_ml_per_day, 3, "mL/day")), cell(has.t, num(t.current_rate_ml_per_day, 3, "mL/day")), "—"],
      ["Delivered since implant", cell(has.r, num(r.delivered_ml_total, 1, "mL")), cell(has.t, num(t.delivered_ml_total, 1, "mL")), cell(has.p, num(p.delivered_ml_total, 1, "mL"))],
      ["Motor", r.motor || "—", t.motor || "—", "—"],
      ["Drug", r.drug ? `${r.drug} ${num(r.concentration_mg_per_ml, 3, "mg/mL")}` : "—", has.t ? num(t.dose_mg_per_day, 3, "mg/day") : "—", "—"],
      ["Low reservoir", has.r ? yesNo(r.reservoir_ml <= r.low_reservoir_threshold_ml) : "—", "—", p.reservoir_low_now === undefined ? "—" : yesNo(p.reservoir_low_now)],
      ["Planned refill (refill reminder)", deviceWhen(r.refill_reminder_at), "—", "—"],
      ["Low reservoir reached", "—", "—", deviceWhen(p.low_reservoir_at)],
      ["Empty", "—", "—", deviceWhen(p.empty_at)],
      ["Elective replacement (ERI)", r.eri_at ? `reached ${deviceWhen(r.eri_at)}` : "not reached", "—", deviceWhen(p.eri_at)],
      ["End of service (EOS)", deviceWhen(r.eos_at), "—", deviceWhen(p.eos_at)],
    ];
    const head = (title, time, note, testid) =>
      h("th", { scope: "col", dataset: { testid } }, h("div", {}, title), h("div", { class: "muted small" }, time ? `${deviceWhen(time)}` : "none yet"), time ? h("div", { class: "muted small" }, note) : null);
    fill(
      sections.state,
      h("h3", {}, "Reported, measured and predicted"),
      h(
        "table",
        { class: "compare" },
        h("caption", {}, "Each column on the pump's clock: its time, and how long ago that was. The pump only calculates its reservoir; the prediction runs the pump's model on from the newer of the two reports."),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, ""),
            head("Reported state", r.device_time, ago(r.device_time), "col-reported"),
            head("Latest telemetry", t.device_time, ago(t.device_time), "col-telemetry"),
            head("Predicted now", p.at, has.p ? `from the ${p.basis} of ${deviceWhen(p.basis_at)}, ${span(p.report_age_s)} on` : "", "col-predicted"),
          ),
        ),
        h("tbody", {}, rows.map(([label, ...values]) => h("tr", {}, h("th", { scope: "row" }, label), values.map((v) => h("td", {}, v))))),
      ),
      interrogationPanel(detail.interrogation),
    );
    drawCommands();
    prefillCommand();
  }

  function drawCharts() {
    const t = (s) => Date.parse(s.device_time);
    const series = (key) => history.map((s) => ({ t: t(s), v: s[key] })).filter((p) => p.v !== null && p.v !== undefined);
    const truth = series("true_reservoir_ml");
    fill(
      sections.charts,
      h("h3", {}, "Recent history (device time)"),
      lineChart({
        title: "Reservoir",
        unit: "mL",
        max: detail?.identity?.reservoir_capacity_ml ?? null,
        series: [{ label: "calculated by the pump", points: series("reservoir_ml") }, ...(truth.length ? [{ label: "true (simulation)", cls: "truth", points: truth }] : [])],
      }),
      lineChart({ title: "Dose", unit: "mg/day", series: [{ label: "programmed", points: series("dose_mg_per_day") }] }),
      lineChart({ title: "Battery", unit: "%", max: 100, series: [{ label: "battery", points: series("battery_percent") }] }),
    );
  }

  function drawAlarms() {
    const alarms = ctx.state.alarmsOf(deviceId, site);
    if (!alarms.length) {
      fill(sections.alarms, h("h3", {}, "Alarms"), h("p", { class: "muted" }, "No open alarms."));
      return;
    }
    fill(
      sections.alarms,
      h("h3", {}, "Alarms"),
      h(
        "ul",
        { class: "history" },
        alarms.map((a) =>
          h(
            "li",
            { dataset: { key: a.key, state: a.state } },
            h("span", { class: `badge prio-${a.priority}` }, PRIORITY_WORD[a.priority]),
            ` ${a.message} · ${stateWords(a.state)} · raised ${when(a.raised_at)} `,
            guidanceBlock(a.code),
            h("div", { class: "actions", dataset: { signature: actionsSignature(ctx, a) } }, alarmButtons(ctx, a, (text) => (commandStatus.textContent = text))),
          ),
        ),
      ),
    );
  }

  function drawCues() {
    const cards = ctx.cues.of(deviceId, site);
    sections.cues.hidden = !cards.length;
    fill(sections.cues, h("h3", {}, "Patient reports"), cards.map((c) => cueCard(ctx, c)));
  }

  function drawCommands() {
    const commands = [...ctx.state.commands.values()].filter((c) => isOf(c, deviceId, site)).sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at)).slice(0, 20);
    fill(
      sections.commands,
      h("h3", {}, "Commands"),
      commands.length
        ? h(
            "table",
            {},
            h("thead", {}, h("tr", {}, ["Sent", "Action", "By", "State", "Reason"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, commands.map((c) => h("tr", { dataset: { command: c.command_id } }, h("td", {}, when(c.created_at)), h("td", {}, c.action.type.replaceAll("_", " ")), h("td", {}, c.actor), h("td", {}, c.state), h("td", {}, c.reason || "")))),
          )
        : h("p", { class: "muted" }, "No commands yet."),
    );
  }

  function commandForm() {
    const type = h("select", { id: "cmd-type" }, [["refill", "Refill"], ["reprogram", "Reprogram (continuous rate)"], ["clinician_bolus", "Clinician bolus"]].map(([v, t]) => h("option", { value: v }, t)));
    const inputs = {
      volume: h("input", { id: "cmd-volume", type: "number", step: "0.1", min: "0.1", max: "40", value: "20" }),
      drug: h("input", { id: "cmd-drug" }),
      conc: h("input", { id: "cmd-conc", type: "number", step: "any", min: "0.001", max: "100" }),
      rate: h("input", { id: "cmd-rate", type: "number", step: "any", min: "0.048", max: "24" }),
      bolusVolume: h("input", { id: "cmd-bolus-volume", type: "number", step: "0.01", min: "0.01", max: "5", value: "0.1" }),
      bolusMinutes: h("input", { id: "cmd-bolus-minutes", type: "number", step: "1", min: "1", max: "1440", value: "30" }),
    };
    const groups = {
      refill: h("div", {}, h("label", { for: "cmd-volume" }, "Volume (mL)"), inputs.volume, h("label", { for: "cmd-drug" }, "Drug"), inputs.drug, h("label", { for: "cmd-conc" }, "Concentration (mg/mL)"), inputs.conc),
      reprogram: h("div", { hidden: true }, h("label", { for: "cmd-rate" }, "Rate (mL/day)"), inputs.rate),
      clinician_bolus: h("div", { hidden: true }, h("label", { for: "cmd-bolus-volume" }, "Volume (mL)"), inputs.bolusVolume, h("label", { for: "cmd-bolus-minutes" }, "Over (minutes)"), inputs.bolusMinutes),
    };
    type.addEventListener("change", () => {
      for (const [k, g] of Object.entries(groups)) g.hidden = k !== type.value;
    });
    const prefill = () => {
      const r = detail?.reported;
      if (!r) return;
      if (!inputs.drug.value) inputs.drug.value = r.drug;
      if (!inputs.conc.value) inputs.conc.value = r.concentration_mg_per_ml;
      if (!inputs.rate.value) inputs.rate.value = r.current_rate_ml_per_day;
    };
    const form = h("form", { class: "command", "aria-labelledby": "cmd-title" }, h("h3", { id: "cmd-title" }, "Send a command"), h("label", { for: "cmd-type" }, "Command"), type, ...Object.values(groups), h("button", { type: "submit", class: "primary" }, "Send"), commandStatus);
    form.addEventListener("focusin", prefill);
    prefillCommand = prefill;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let action;
      if (type.value === "refill") action = { type: "refill", volume_ml: Number(inputs.volume.value), drug: inputs.drug.value.trim(), concentration_mg_per_ml: Number(inputs.conc.value) };
      else if (type.value === "reprogram") action = { type: "reprogram", program: { mode: "continuous", rate_ml_per_day: Number(inputs.rate.value) } };
      else action = { type: "clinician_bolus", volume_ml: Number(inputs.bolusVolume.value), duration_minutes: Number(inputs.bolusMinutes.value) };
      try {
        const sent = await api(path("/commands"), { method: "POST", body: { action } });
        commandStatus.textContent = `Sent (${sent.command_id}): ${sent.state}`;
      } catch (error) {
        commandStatus.textContent = `Refused: ${error.message}`;
      }
    });
    return form;
  }

  return {
    mount(main) {
      commandStatus = h("p", { role: "status" });
      sections = {
        identity: h("section", { class: "panel", "aria-label": "Identity" }),
        state: h("section", { class: "panel", "aria-label": "Reported and predicted state" }),
        charts: h("section", { class: "panel", "aria-label": "History" }),
        alarms: h("section", { class: "panel", "aria-label": "Alarms" }),
        cues: h("section", { class: "panel", "aria-label": "Patient reports", hidden: true }),
        commands: h("section", { class: "panel", "aria-label": "Commands" }),
      };
      main.append(
        h("p", {}, h("a", { href: "#/fleet" }, "← Fleet")),
        h("h2", {}, `Pump ${deviceId}`, site ? h("span", { class: "muted", dataset: { testid: "device-site" } }, ` at ${site}`) : null),
        h("div", { class: "columns" }, sections.identity, sections.state),
        h("div", { class: "columns" }, sections.charts, h("div", {}, sections.alarms, sections.cues, sections.commands, ctx.can("command") ? h("section", { class: "panel" }, commandForm()) : null)),
      );
      drawAlarms();
      drawCues();
      loadDetail();
      loadHistory();
    },
    update(changed) {
      if (changed.cues) drawCues();
      if (changed.alarms || changed.guidance) {
        drawAlarms();
        refreshHistory(changed.keys);
      }
      const touched = site ? changed.deviceKeys.has(deviceKey(site, deviceId)) : [...changed.deviceKeys].some((k) => k.endsWith(`/${deviceId}`));
      if (touched) detailSoon();
      if (changed.commands && touched && detail) drawCommands();
      if (changed.responses) refreshHistory(changed.keys);
    },
    unmount() {
      clearTimeout(detailTimer);
      clearTimeout(historyTimer);
    },
  };
}
