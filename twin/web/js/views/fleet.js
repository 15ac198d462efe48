// The fleet, urgency first: a tile per pump, coloured by its highest signalling alarm (high red
// flashing, medium yellow flashing, low cyan steady), with the figures a pump clinic plans by: days
// to empty, the next planned refill, the ERI date, the age of the last report and of the implant,
// all on the pump's own clock (the simulation's, for simulated pumps). Sorted by urgency unless
// the user picks another order; filtered by site, alarm priority and a search. Tiles are kept per
// device and updated in place, so focus and scroll survive live updates.

import { serverNow } from "../clock.js";
import { inDays, span } from "../device-clock.js";
import { fill, h } from "../dom.js";
import { PRIORITY_FILTERS, SORTS, orderFleet } from "../fleet-order.js";
import { deviceHref, deviceKey } from "../state.js";

const PRIORITY_WORD = { high: "HIGH", medium: "MEDIUM", low: "LOW" };
/** Days under which a deadline is written as urgent (a refill is booked about a week ahead; ERI
 * leaves 90 days to plan a replacement, 30 is late). Text marks them too, not only colour. */
const SOON_DAYS = { empty: 7, refill: 7, eri: 30 };
const RETICK_EVERY = 5; // seconds between re-drawing the figures as the pumps' clocks run on

function fmt(v, digits = 1) {
  return v === null || v === undefined ? "—" : Number(v).toFixed(digits);
}

/** A deadline's cell: "in 12.3 d", marked when soon; beyond the forecast, said so (not "—"). */
function deadline(days, soon, testid, d) {
  const urgent = days !== null && days < soon;
  const beyond = days === null && d.reported_device_time && d.forecast_days ? `beyond ${Math.round(d.forecast_days / 365)} y` : null;
  return h("dd", { class: urgent ? "soon" : null, dataset: { testid } }, beyond || inDays(days), urgent ? h("span", { class: "visually-hidden" }, " (soon)") : null);
}

export function fleetView(ctx) {
  let list;
  let count;
  let controls;
  let ticks = 0;
  const options = { sort: "urgency", site: "", priority: "", search: "" };
  const tiles = new Map();

  function alarmsOf(id, site) {
    const alarms = ctx.state.alarmsOf(id, site);
    return {
      priority: ctx.state.highestPriority(id, site),
      unanswered: alarms.some((a) => a.state === "active_unacknowledged" || a.state === "cleared_unacknowledged"),
      count: alarms.length,
    };
  }

  function tileContent({ d, f, a }) {
    const label = [
      d.device_id,
      d.site,
      a.priority ? `${a.priority} priority alarm` : "no active alarm",
      d.presence,
      `reservoir ${fmt(d.reservoir_ml)} of ${fmt(d.capacity_ml, 0)} mL`,
      `empty ${inDays(f.daysToEmpty)}`,
      `refill ${inDays(f.daysToRefill)}`,
      `ERI ${inDays(f.daysToEri)}`,
    ].join(", ");
    return {
      cls: `tile${a.priority ? ` prio-${a.priority}` : ""}`,
      label,
      priority: a.priority,
      children: [
        h("span", { class: "name" }, h("span", {}, d.device_id), a.priority ? h("span", { class: "badge quiet" }, PRIORITY_WORD[a.priority]) : null),
        h(
          "dl",
          {},
          h("dt", {}, "Site"),
          h("dd", {}, d.site),
          h("dt", {}, "Drug"),
          h("dd", {}, d.drug || "—"),
          h("dt", {}, "Reservoir"),
          h("dd", {}, `${fmt(d.reservoir_ml)} / ${fmt(d.capacity_ml, 0)} mL`, d.capacity_ml ? h("meter", { min: 0, max: d.capacity_ml, value: d.reservoir_ml ?? 0, "aria-hidden": "true" }) : null),
          h("dt", {}, "Empty"),
          f.daysToEmpty === null && d.infusing === false ? h("dd", { dataset: { testid: "days-to-empty" } }, "not infusing") : deadline(f.daysToEmpty, SOON_DAYS.empty, "days-to-empty", d),
          h("dt", {}, "Next refill"),
          f.daysToRefill === null ? h("dd", { dataset: { testid: "next-refill" } }, "not planned") : deadline(f.daysToRefill, SOON_DAYS.refill, "next-refill", d),
          h("dt", {}, "ERI"),
          deadline(f.daysToEri, SOON_DAYS.eri, "eri", d),
          h("dt", {}, "Report"),
          h("dd", { dataset: { testid: "report-age" } }, f.reportAgeS === null ? "none yet" : `${span(f.reportAgeS)} ago`),
          h("dt", {}, "Implanted"),
          h("dd", { dataset: { testid: "implant-age" } }, f.implantAgeS === null ? "—" : `${span(f.implantAgeS)} ago`),
          h("dt", {}, "Presence"),
          h("dd", { class: `presence-${d.presence}` }, d.presence),
          h("dt", {}, "Alarms"),
          h("dd", {}, a.count ? String(a.count) : "none"),
        ),
      ],
    };
  }

  function syncSites() {
    const select = controls.site;
    const sites = ctx.state.sites();
    if (select.options.length !== sites.length + 1) {
      fill(select, h("option", { value: "" }, "All sites"), sites.map((s) => h("option", { value: s }, s)));
      select.value = options.site;
    }
  }

  function update() {
    syncSites();
    const rows = orderFleet([...ctx.state.devices.values()], alarmsOf, serverNow(), options);
    const total = ctx.state.devices.size;
    count.textContent = rows.length === total ? `${total} pump${total === 1 ? "" : "s"}` : `${rows.length} of ${total} pumps`;
    const wanted = new Set(rows.map((r) => deviceKey(r.d.site, r.d.device_id)));
    for (const [id, li] of tiles) {
      if (!wanted.has(id)) {
        li.remove();
        tiles.delete(id);
      }
    }
    let previous = null;
    for (const row of rows) {
      const id = deviceKey(row.d.site, row.d.device_id);
      let li = tiles.get(id);
      if (!li) {
        li = h("li", {}, h("a", { href: deviceHref(row.d.site, row.d.device_id), dataset: { device: row.d.device_id, site: row.d.site } }));
        tiles.set(id, li);
      }
      const link = li.firstChild;
      const content = tileContent(row);
      link.className = content.cls;
      link.dataset.priority = content.priority || "";
      link.setAttribute("aria-label", content.label);
      fill(link, content.children);
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (expected !== li) list.insertBefore(li, expected);
      previous = li;
    }
  }

  function control(id, label, el, key, event = "change") {
    el.id = id;
    el.addEventListener(event, () => {
      options[key] = el.value;
      update();
    });
    return h("span", { class: "control" }, h("label", { for: id }, label), el);
  }

  return {
    mount(main) {
      controls = {
        search: h("input", { type: "search", placeholder: "id, site, drug, model", autocomplete: "off" }),
        site: h("select"),
        priority: h("select", {}, Object.entries(PRIORITY_FILTERS).map(([v, t]) => h("option", { value: v }, t))),
        sort: h("select", {}, Object.entries(SORTS).map(([v, t]) => h("option", { value: v }, t))),
      };
      count = h("span", { class: "muted", role: "status", id: "fleet-count" });
      list = h("ul", { class: "tiles", "aria-label": "Pumps" });
      main.append(
        h("h2", {}, "Fleet"),
        h(
          "div",
          { class: "toolbar" },
          control("fleet-search", "Search ", controls.search, "search", "input"),
          control("site-filter", "Site ", controls.site, "site"),
          control("priority-filter", "Alarms ", controls.priority, "priority"),
          control("fleet-sort", "Sort ", controls.sort, "sort"),
          count,
        ),
        h("p", { class: "muted small" }, "Days and ages on each pump's own clock (simulation time for simulated pumps)."),
        list,
      );
      update();
    },
    update(changed) {
      if (changed.devices || changed.alarms) update();
    },
    tick() {
      ticks += 1;
      if (ticks % RETICK_EVERY === 0) update();
    },
  };
}
