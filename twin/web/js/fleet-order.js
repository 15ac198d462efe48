// The fleet page's order and filters: urgency first. Pure (no DOM; the server's now is an
// argument), so tests/web checks the order in node.
//
// Urgency: the highest alarm priority the pump is signalling (high, medium, low, none), then
// unanswered before answered, then the soonest of its deadlines (empty, planned refill, ERI, on
// the pump's clock), then site and name. A pump without any figure sorts after those with one.

import { daysUntil, deviceAgeS } from "./device-clock.js";

const RANK = { high: 3, medium: 2, low: 1 };

export const SORTS = {
  urgency: "Urgency (alarms, then soonest deadline)",
  empty: "Days to empty",
  refill: "Next refill date",
  eri: "ERI date (battery)",
  report: "Oldest report first",
  implant: "Implant age",
  name: "Site and name",
};

export const PRIORITY_FILTERS = {
  "": "Any priority",
  high: "High alarms",
  medium: "Medium alarms",
  low: "Low alarms",
  any: "Any alarm",
  none: "No alarm",
};

/** The figures a pump's tile shows and the page sorts by, at the server's `nowMs`. */
export function figures(summary, nowMs) {
  return {
    daysToEmpty: daysUntil(summary.empty_at, summary, nowMs),
    daysToRefill: daysUntil(summary.refill_due_at, summary, nowMs),
    daysToEri: daysUntil(summary.eri_at, summary, nowMs),
    reportAgeS: deviceAgeS(summary.reported_device_time, summary, nowMs),
    messageAgeS: deviceAgeS(summary.device_time, summary, nowMs),
    implantAgeS: deviceAgeS(summary.implant_date, summary, nowMs),
  };
}

const desc = (v) => (v === null ? null : -v);
const nullsLast = (a, b) => (a === null ? (b === null ? 0 : 1) : b === null ? -1 : a - b);

function soonest(f) {
  const all = [f.daysToEmpty, f.daysToRefill, f.daysToEri].filter((x) => x !== null);
  return all.length ? Math.min(...all) : null;
}

/**
 * The pumps to show, in order. `alarmsOf(id, site)` -> {priority, unanswered} (the highest signalling
 * priority, or null, and whether any alarm of the pump waits for an acknowledgement).
 * Options: sort (a key of SORTS), site, priority (a key of PRIORITY_FILTERS), search (matched,
 * case-insensitive, against id, site, drug and model).
 */
export function orderFleet(summaries, alarmsOf, nowMs, { sort = "urgency", site = "", priority = "", search = "" } = {}) {
  const needle = search.trim().toLowerCase();
  const rows = summaries
    .map((d) => ({ d, f: figures(d, nowMs), a: alarmsOf(d.device_id, d.site) }))
    .filter(({ d, a }) => {
      if (site && d.site !== site) return false;
      if (priority === "none" && a.priority) return false;
      if (priority === "any" && !a.priority) return false;
      if (RANK[priority] && a.priority !== priority) return false;
      if (needle && ![d.device_id, d.site, d.drug, d.model].some((v) => v && String(v).toLowerCase().includes(needle))) return false;
      return true;
    });
  const byName = (x, y) => x.d.site.localeCompare(y.d.site) || x.d.device_id.localeCompare(y.d.device_id);
  const compare = {
    urgency: (x, y) =>
      (RANK[y.a.priority] || 0) - (RANK[x.a.priority] || 0) ||
      Number(y.a.unanswered) - Number(x.a.unanswered) ||
      nullsLast(soonest(x.f), soonest(y.f)) ||
      byName(x, y),
    empty: (x, y) => nullsLast(x.f.daysToEmpty, y.f.daysToEmpty) || byName(x, y),
    refill: (x, y) => nullsLast(x.f.daysToRefill, y.f.daysToRefill) || byName(x, y),
    eri: (x, y) => nullsLast(x.f.daysToEri, y.f.daysToEri) || byName(x, y),
    report: (x, y) => nullsLast(desc(x.f.reportAgeS), desc(y.f.reportAgeS)) || byName(x, y),
    implant: (x, y) => nullsLast(desc(x.f.implantAgeS), desc(y.f.implantAgeS)) || byName(x, y),
    name: byName,
  }[sort] || byName;
  return rows.sort(compare);
}
