// The alarm list: priority, state, age, device, message, and the actions the user may take. Rows
// are kept per alarm key and updated in place; each row records when it was first drawn
// (data-rendered-at, epoch ms), which the browser test compares with the publish time.

import { actionsSignature, alarmButtons, refreshHistory, stateWords } from "../alarm-actions.js";
import { age } from "../clock.js";
import { fill, h } from "../dom.js";

const PRIORITY_WORD = { high: "High", medium: "Medium", low: "Low" };
const FLASHING = new Set(["active_unacknowledged", "active_acknowledged", "cleared_unacknowledged"]);

export function alarmsView(ctx) {
  let body;
  let caption;
  let status;
  let withNormal = false;
  const rows = new Map();

  const report = (text) => {
    status.textContent = text;
  };

  function row(alarm) {
    let tr = rows.get(alarm.key);
    if (!tr) {
      tr = h(
        "tr",
        { dataset: { key: alarm.key, renderedAt: String(Date.now()) } },
        h("td", { class: "priority" }),
        h("td", { class: "state" }),
        h("td", { class: "age" }),
        h("td", { class: "device" }),
        h("td", { class: "message" }),
        h("td", {}, h("div", { class: "actions" })),
      );
      rows.set(alarm.key, tr);
    }
    const [priority, state, ageCell, device, message, actionsCell] = tr.children;
    tr.className = `state-${alarm.state}`;
    tr.dataset.state = alarm.state;
    tr.dataset.priority = alarm.priority;
    const badgeClass = FLASHING.has(alarm.state) ? `badge prio-${alarm.priority}` : "badge quiet";
    fill(priority, h("span", { class: badgeClass }, PRIORITY_WORD[alarm.priority]));
    fill(state, stateWords(alarm.state), alarm.silenced_until ? h("div", { class: "muted" }, "audio paused") : null);
    ageCell.textContent = age(alarm.raised_at);
    fill(device, h("a", { href: `#/device/${encodeURIComponent(alarm.device_id)}` }, alarm.device_id), h("div", { class: "muted" }, alarm.site));
    message.textContent = alarm.message;
    const signature = actionsSignature(ctx, alarm);
    const actions = actionsCell.firstChild;
    if (actions.dataset.signature !== signature) {
      actions.dataset.signature = signature;
      fill(actions, alarmButtons(ctx, alarm, report));
    }
    return tr;
  }

  function update() {
    const alarms = ctx.state.openAlarms({ withNormal });
    const wanted = new Set(alarms.map((a) => a.key));
    for (const [key, tr] of rows) {
      if (!wanted.has(key)) {
        tr.remove();
        rows.delete(key);
      }
    }
    let previous = null;
    for (const alarm of alarms) {
      const tr = row(alarm);
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (expected !== tr) body.insertBefore(tr, expected);
      previous = tr;
    }
    const what = withNormal ? "alarm" : "open alarm";
    caption.textContent = alarms.length ? `${alarms.length} ${what}${alarms.length === 1 ? "" : "s"}, most urgent first` : `No ${what}s.`;
  }

  return {
    mount(main) {
      body = h("tbody");
      caption = h("caption");
      status = h("p", { class: "error", role: "alert" });
      const toggle = h("input", { type: "checkbox", id: "with-normal" });
      toggle.addEventListener("change", () => {
        withNormal = toggle.checked;
        update();
      });
      main.append(
        h("h2", {}, "Alarms"),
        h("div", { class: "toolbar" }, h("label", { for: "with-normal" }, toggle, " Show alarms back to normal (their history)")),
        status,
        h(
          "table",
          { class: "alarms" },
          caption,
          h("thead", {}, h("tr", {}, ["Priority", "State", "Age", "Device", "Message", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
          body,
        ),
      );
      update();
    },
    update(changed) {
      if (changed.alarms || changed.responses) {
        update();
        refreshHistory(changed.keys);
      }
    },
    tick() {
      for (const [key, tr] of rows) {
        const alarm = ctx.state.alarms.get(key);
        if (alarm) tr.children[2].textContent = age(alarm.raised_at);
      }
    },
  };
}
