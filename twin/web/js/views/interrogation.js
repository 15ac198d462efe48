// A real pump between visits: the last interrogation and its age, what the twin predicts since then
// (low reservoir, empty, ERI, end of service: each date, and whether it has passed), when the next visit is
// due (overdue exactly when the twin's "interrogation overdue" alert is up: the server applies one rule to
// both), and the refill checks of consecutive read-outs (the residual the twin predicted from the visit
// before, less the logged patient boluses, against the one measured). Fed by the `interrogation` block of
// GET /api/devices/{id}; null for simulated pumps.

import { duration, when } from "../clock.js";
import { h } from "../dom.js";

function ml(v) {
  return v === null || v === undefined ? "—" : `${Number(v).toFixed(2)} mL`;
}

function signed(v) {
  return v === null || v === undefined ? "—" : `${v > 0 ? "+" : ""}${Number(v).toFixed(2)} mL`;
}

function visit(next) {
  if (!next) return "—";
  const late = next.overdue ? `; overdue since ${when(next.overdue_from)}` : "";
  return `${when(next.due_at)} (${next.basis})${late}`;
}

function dated(entry) {
  if (!entry || !entry.at) return "not within the forecast (3 years)";
  return `${when(entry.at)}${entry.passed ? " (passed)" : ""}`;
}

/** The panel's nodes, or null when there is no block (a simulated pump, or no read-out yet). */
export function interrogationPanel(block) {
  if (!block) return null;
  const p = block.predicted || {};
  const checks = block.refill_checks || [];
  return [
    h("h3", {}, "Between interrogations"),
    h(
      "dl",
      { class: "facts" },
      [
        ["Last interrogation", `${when(block.last_interrogation_at)}, ${duration(block.age_s)} ago`],
        ["Reservoir then (calculated)", ml(block.reported_reservoir_ml)],
        ["Reservoir now (predicted)", ml(p.reservoir_ml)],
        ["Low reservoir", dated(p.low_reservoir)],
        ["Empty", dated(p.empty)],
        ["Elective replacement (ERI)", dated(p.eri)],
        ["End of service", dated(p.eos)],
        ["Planned refill", when(block.next_refill_at)],
        ["Next visit due", visit(block.next_visit)],
      ].map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
    checks.length
      ? h(
          "table",
          { class: "compare" },
          h("caption", {}, "Refill checks: predicted from the visit before, against the residual measured"),
          h(
            "thead",
            {},
            h("tr", {}, ["Refill", "Predicted", "Pump calculated", "Measured", "Difference", "", "Patient boluses"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h(
            "tbody",
            {},
            checks
              .slice()
              .reverse()
              .map((c) =>
                h(
                  "tr",
                  { class: c.exceeded ? "discrepancy" : null },
                  h("th", { scope: "row" }, when(c.refill_at)),
                  h("td", {}, ml(c.predicted_residual_ml)),
                  h("td", {}, ml(c.calculated_residual_ml)),
                  h("td", {}, ml(c.measured_residual_ml)),
                  h("td", {}, signed(c.difference_ml)),
                  h("td", {}, c.exceeded ? `beyond ±${c.tolerance_ml} mL` : "within tolerance"),
                  h(
                    "td",
                    {},
                    c.compared_with === "pump_calculation"
                      ? `${c.patient_boluses}+ logged (log too short: compared with the pump's figure)`
                      : `${c.patient_boluses} logged, ${ml(c.patient_bolus_ml)}`,
                  ),
                ),
              ),
          ),
        )
      : h("p", {}, "No refill checked yet: the twin needs two consecutive read-outs."),
  ];
}
