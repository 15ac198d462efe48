// The alarm list: priority, state, age, device, message, what the alarm means and what staff do
// (unless the instructor hid it), and the actions the user may take. Rows are kept per alarm key
// and updated in place; each row records when it was first drawn (data-rendered-at, epoch ms),
// which the browser test compares with the publish time.
//
// An alarm that goes back to normal (acknowledged then cleared, or cleared then acknowledged)
// stays on the list, marked "back to normal: follow-up", for FOLLOW_UP_HOURS or until the user
// marks its follow-up done: what comes after the alarm (re-interrogate after a stall recovered,
// check the refill) is recorded against it like any response. "Done" is the user's own list
// (kept in this browser), not a change to the alarm.
//
// A trainee in a training session sees the session's own pumps (its sites, `tr-<run>.<site>`):
// the alarms of the rest of the fleet are counted under the table and shown, greyed, on request.

import { actionsSignature, alarmButtons, refreshHistory, stateWords } from "../alarm-actions.js";
import { age, serverNow } from "../clock.js";
import { fill, h } from "../dom.js";
import { guidance, guidanceBlock } from "../guidance.js";
import { FOLLOW_UP_HOURS, deviceHref, followUpId } from "../state.js";

const PRIORITY_WORD = { high: "High", medium: "Medium", low: "Low" };
const FLASHING = new Set(["active_unacknowledged", "active_acknowledged", "cleared_unacknowledged"]);
const DONE_STORAGE = "pumptwin.followUpsDone";
const DONE_KEPT = 500; // follow-ups remembered as done (the oldest are forgotten first)

function loadDone() {
  try {
    return new Set(JSON.parse(localStorage.getItem(DONE_STORAGE) || "[]"));
  } catch {
    return new Set();
  }
}

function saveDone(done) {
  try {
    localStorage.setItem(DONE_STORAGE, JSON.stringify([...done].slice(-DONE_KEPT)));
  } catch {
    // a browser without storage forgets the list at reload: the rows come back, nothing is lost
  }
}

export function alarmsView(ctx) {
  let body;
  let caption;
  let status;
  let withNormal = false;
  let withOutside = false;
  let outsideToggle;
  const done = loadDone();
  const rows = new Map();

  const report = (text) => {
    status.textContent = text;
  };

  function markDone(alarm) {
    done.add(followUpId(alarm));
    saveDone(done);
    update();
  }

  function row(alarm) {
    let tr = rows.get(alarm.key);
    if (!tr) {
      tr = h(
        "tr",
        { dataset: { key: alarm.key, renderedAt: String(Date.now()) } },
        h("td", { class: "priority", "data-label": "Priority" }),
        h("td", { class: "state", "data-label": "State" }),
        h("td", { class: "age", "data-label": "Age" }),
        h("td", { class: "device", "data-label": "Device" }),
        h("td", { class: "message", "data-label": "Alarm" }),
        h("td", { class: "actions-cell", "data-label": "Actions" }, h("div", { class: "actions" })),
      );
      rows.set(alarm.key, tr);
    }
    const [priority, state, ageCell, device, message, actionsCell] = tr.children;
    const followUp = alarm.state === "normal" && !withNormal;
    tr.className = `state-${alarm.state}${followUp ? " follow-up" : ""}`;
    tr.dataset.state = alarm.state;
    tr.dataset.priority = alarm.priority;
    tr.dataset.followUp = followUp ? "true" : "";
    const badgeClass = FLASHING.has(alarm.state) ? `badge prio-${alarm.priority}` : "badge quiet";
    fill(priority, h("span", { class: badgeClass }, PRIORITY_WORD[alarm.priority]));
    fill(
      state,
      followUp ? "back to normal: follow-up" : stateWords(alarm.state),
      alarm.silenced_until ? h("div", { class: "muted" }, "audio paused") : null,
      alarm.acknowledged_by ? h("div", { class: "muted" }, `acknowledged by ${alarm.acknowledged_by}`) : null,
    );
    ageCell.textContent = age(alarm.raised_at);
    fill(device, h("a", { href: deviceHref(alarm.site, alarm.device_id) }, alarm.device_id), h("div", { class: "muted" }, alarm.site));
    const messageSig = `${alarm.message}|${guidance().hidden}|${Boolean(guidance().codes[alarm.code])}`;
    if (message.dataset.sig !== messageSig) {
      message.dataset.sig = messageSig; // rebuilt only when it changes: an opened guidance stays open
      fill(message, h("div", { class: "text" }, alarm.message), guidanceBlock(alarm.code));
    }
    const signature = `${actionsSignature(ctx, alarm)}|${followUp}`;
    const actions = actionsCell.firstChild;
    if (actions.dataset.signature !== signature) {
      actions.dataset.signature = signature;
      fill(
        actions,
        alarmButtons(ctx, alarm, report),
        followUp ? h("button", { type: "button", dataset: { action: "follow-up-done" }, "aria-label": `Follow-up of ${alarm.code} on ${alarm.device_id} done`, onclick: () => markDone(alarm) }, "Follow-up done") : null,
      );
    }
    return tr;
  }

  function update() {
    const followUp = { sinceMs: serverNow() - FOLLOW_UP_HOURS * 3_600_000, dismissed: done };
    const everything = ctx.state.openAlarms({ withNormal, followUp });
    const sites = ctx.sessionSites ? ctx.sessionSites() : [];
    const inSession = (a) => !sites.length || sites.includes(a.site);
    const alarms = withOutside ? everything : everything.filter(inSession);
    const outside = everything.length - everything.filter(inSession).length;
    if (outsideToggle) outsideToggle.hidden = !sites.length;
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
      tr.classList.toggle("outside-session", !inSession(alarm));
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (expected !== tr) body.insertBefore(tr, expected);
      previous = tr;
    }
    const following = alarms.filter((a) => a.state === "normal").length;
    const what = withNormal ? "alarm" : "open alarm";
    const open = alarms.length - (withNormal ? 0 : following);
    caption.textContent = alarms.length
      ? `${open} ${what}${open === 1 ? "" : "s"}${!withNormal && following ? `, ${following} back to normal awaiting follow-up` : ""}, most urgent first`
      : `No ${what}s.`;
    if (sites.length && outside && !withOutside) {
      caption.textContent += ` (your training session's pumps; ${outside} alarm${outside === 1 ? "" : "s"} of pumps outside it not shown)`;
    }
  }

  return {
    mount(main) {
      body = h("tbody");
      caption = h("caption");
      status = h("p", { class: "error", role: "alert" });
      const toggle = h("input", { type: "checkbox", id: "with-normal" });
      toggle.addEventListener("change", () => {
        withNormal = toggle.checked;
        for (const tr of rows.values()) tr.remove();
        rows.clear();
        update();
      });
      const outsideBox = h("input", { type: "checkbox", id: "with-outside" });
      outsideBox.addEventListener("change", () => {
        withOutside = outsideBox.checked;
        update();
      });
      outsideToggle = h("label", { for: "with-outside", hidden: true, dataset: { testid: "with-outside" } }, outsideBox, " Show pumps outside the training session");
      main.append(
        h("h2", {}, "Alarms"),
        h("div", { class: "toolbar" }, h("label", { for: "with-normal" }, toggle, " Show every alarm back to normal (their history)"), " ", outsideToggle),
        status,
        h(
          "table",
          { class: "alarms" },
          caption,
          h("thead", {}, h("tr", {}, ["Priority", "State", "Age", "Device", "Alarm", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
          body,
        ),
      );
      update();
    },
    update(changed) {
      if (changed.alarms || changed.responses || changed.guidance || changed.training) {
        update();
        refreshHistory(changed.keys || new Set());
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
