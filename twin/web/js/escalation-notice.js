// "Escalated to you": the strip under the header while an alarm nobody acknowledged in time has
// been escalated to the signed-in user (by name or by role) and is still unanswered. Read from
// GET /api/escalations/mine at sign-in and whenever the stream (re)opens, then kept from the
// stream: an `escalation` event that names the user adds one; an alarm acknowledged (or shelved,
// or gone back to normal) drops it. A twin without escalation routes (404) shows none.

import { api } from "./api.js";
import { fill, h } from "./dom.js";

const PRIORITY_WORD = { high: "High", medium: "Medium", low: "Low" };
const ASKING = new Set(["active_unacknowledged", "cleared_unacknowledged"]);

/**
 * The escalations still standing, given the alarms the console knows (key -> alarm): an
 * escalation stands while its alarm asks for an acknowledgement since the same moment. Pure.
 */
export function standing(escalations, alarms) {
  return [...escalations.values()].filter((e) => {
    const alarm = alarms.get(e.key);
    if (!alarm) return true; // not loaded yet: keep it, the snapshot will tell
    return ASKING.has(alarm.state) && (!alarm.unacknowledged_since || Date.parse(alarm.unacknowledged_since) === Date.parse(e.unacknowledged_since));
  });
}

export class EscalationNotice {
  constructor(el, getUsername) {
    this.el = el;
    this.getUsername = getUsername;
    this.escalations = new Map(); // alarm key -> the highest escalation that told the user
  }

  async refresh(alarms) {
    let mine = [];
    try {
      mine = (await api("/api/escalations/mine")) || [];
    } catch {
      mine = []; // no escalations on this twin, or signed out
    }
    this.escalations = new Map();
    for (const e of mine) this.put(e);
    this.show(alarms);
  }

  put(e) {
    const kept = this.escalations.get(e.key);
    if (!kept || kept.unacknowledged_since !== e.unacknowledged_since || e.level > kept.level) this.escalations.set(e.key, e);
  }

  /** A stream `escalation` event. */
  onEscalation(e, alarms) {
    if (!(e.notified || []).includes(this.getUsername())) return;
    this.put(e);
    this.show(alarms);
  }

  show(alarms) {
    const list = standing(this.escalations, alarms);
    for (const key of [...this.escalations.keys()]) if (!list.some((e) => e.key === key)) this.escalations.delete(key);
    if (!list.length) {
      fill(this.el);
      return;
    }
    fill(
      this.el,
      h("strong", {}, "Escalated to you"),
      h(
        "ul",
        {},
        list.map((e) =>
          h(
            "li",
            { dataset: { testid: "escalation-item", key: e.key, level: String(e.level) } },
            h("span", { class: `badge prio-${e.priority}` }, PRIORITY_WORD[e.priority] || e.priority),
            ` ${e.device_id}: ${e.message} — unanswered for ${Math.round(e.waited_s)} s, escalated to the ${e.tier} (tier ${e.level}) `,
            h("a", { href: "#/alarms" }, "Open the alarms"),
          ),
        ),
      ),
    );
  }

  clear() {
    this.escalations = new Map();
    fill(this.el);
  }
}
