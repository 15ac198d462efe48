// The fleet: a tile per pump, coloured by its highest signalling alarm (high red flashing, medium
// yellow flashing, low cyan steady), with reservoir, drug and presence; filterable by site.
// Tiles are kept per device and updated in place, so focus and scroll survive live updates.

import { fill, h } from "../dom.js";

const PRIORITY_WORD = { high: "HIGH", medium: "MEDIUM", low: "LOW" };

function fmt(v, digits = 1) {
  return v === null || v === undefined ? "—" : Number(v).toFixed(digits);
}

export function fleetView(ctx) {
  let list;
  let site = "";
  let siteSelect;
  let count;
  const tiles = new Map();

  function tileContent(d) {
    const priority = ctx.state.highestPriority(d.device_id);
    const alarms = ctx.state.alarmsOf(d.device_id).length;
    const label = [
      d.device_id,
      d.site,
      priority ? `${priority} priority alarm` : "no active alarm",
      `${d.presence}`,
      `reservoir ${fmt(d.reservoir_ml)} of ${fmt(d.capacity_ml, 0)} mL`,
    ].join(", ");
    return {
      cls: `tile${priority ? ` prio-${priority}` : ""}`,
      label,
      priority,
      children: [
        h(
          "span",
          { class: "name" },
          h("span", {}, d.device_id),
          priority ? h("span", { class: "badge quiet" }, PRIORITY_WORD[priority]) : null,
        ),
        h(
          "dl",
          {},
          h("dt", {}, "Site"),
          h("dd", {}, d.site),
          h("dt", {}, "Drug"),
          h("dd", {}, d.drug || "—"),
          h("dt", {}, "Reservoir"),
          h(
            "dd",
            {},
            `${fmt(d.reservoir_ml)} / ${fmt(d.capacity_ml, 0)} mL`,
            d.capacity_ml
              ? h("meter", { min: 0, max: d.capacity_ml, value: d.reservoir_ml ?? 0, "aria-hidden": "true" })
              : null,
          ),
          h("dt", {}, "Presence"),
          h("dd", { class: `presence-${d.presence}` }, d.presence),
          h("dt", {}, "Alarms"),
          h("dd", {}, alarms ? String(alarms) : "none"),
        ),
      ],
    };
  }

  function update() {
    const sites = ctx.state.sites();
    if (siteSelect.options.length !== sites.length + 1) {
      fill(siteSelect, h("option", { value: "" }, "All sites"), sites.map((s) => h("option", { value: s }, s)));
      siteSelect.value = site;
    }
    const devices = [...ctx.state.devices.values()]
      .filter((d) => !site || d.site === site)
      .sort((a, b) => a.site.localeCompare(b.site) || a.device_id.localeCompare(b.device_id));
    count.textContent = `${devices.length} pump${devices.length === 1 ? "" : "s"}`;
    const wanted = new Set(devices.map((d) => d.device_id));
    for (const [id, li] of tiles) {
      if (!wanted.has(id)) {
        li.remove();
        tiles.delete(id);
      }
    }
    let previous = null;
    for (const d of devices) {
      let li = tiles.get(d.device_id);
      if (!li) {
        li = h("li", {}, h("a", { href: `#/device/${encodeURIComponent(d.device_id)}`, dataset: { device: d.device_id } }));
        tiles.set(d.device_id, li);
      }
      const link = li.firstChild;
      const content = tileContent(d);
      link.className = content.cls;
      link.dataset.priority = content.priority || "";
      link.setAttribute("aria-label", content.label);
      fill(link, content.children);
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (expected !== li) list.insertBefore(li, expected);
      previous = li;
    }
  }

  return {
    mount(main) {
      siteSelect = h("select", { id: "site-filter" });
      siteSelect.addEventListener("change", () => {
        site = siteSelect.value;
        update();
      });
      count = h("span", { class: "muted", role: "status" });
      list = h("ul", { class: "tiles", "aria-label": "Pumps" });
      main.append(
        h("h2", {}, "Fleet"),
        h("div", { class: "toolbar" }, h("label", { for: "site-filter" }, "Site "), siteSelect, count),
        list,
      );
      update();
    },
    update(changed) {
      if (changed.devices || changed.alarms) update();
    },
  };
}
