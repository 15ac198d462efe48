// What the console knows: devices, alarms, commands and responses, kept from the API's snapshots
// and the live stream's events (a `training` event, a training session's status and scores, is
// passed on as it is: the pages that show sessions refetch them). Pure (no DOM, no fetch), so the merge rules are testable in node.
//
// Merge rule: a snapshot and the stream overlap (the stream opens first, then the snapshot is
// fetched, so nothing falls between them); whatever arrives, the copy with the higher `version`
// wins, so applying an older copy after a newer one changes nothing.

const OPEN_STATES = new Set([
  "active_unacknowledged",
  "active_acknowledged",
  "cleared_unacknowledged",
  "shelved",
  "out_of_service",
]);
/** States in which an alarm colours its device's tile: the condition still asks for attention. */
const SIGNALLING_STATES = new Set(["active_unacknowledged", "active_acknowledged", "cleared_unacknowledged"]);
const RANK = { high: 3, medium: 2, low: 1 };
/** Hours of wall time an alarm that went back to normal stays on the alarm list (a shift): long
 * enough to record the follow-up ("re-interrogate after recovery"), unless dismissed sooner. */
export const FOLLOW_UP_HOURS = 12;
/** Transition events after which an alarm asks anew for an answer (announced to screen readers). */
const ANNOUNCING_EVENTS = new Set(["raise", "reraise", "unshelve", "shelve_expired", "return_to_service"]);

/** A device is its site and its id (the same id can exist at two sites, e.g. two training
 * sessions of one scenario run the same pump ids on `tr-<run1>.<site>` and `tr-<run2>.<site>`).
 * Neither contains a "/" (each is one MQTT topic level), so `<site>/<id>` names one pump. */
export function deviceKey(site, deviceId) {
  return `${site}/${deviceId}`;
}

/** Whether `item` (an alarm, command, cue card: anything with device_id and site) is of the pump
 * `deviceId` at `site`; without a site (an old `#/device/<id>` link), of that id at any site. */
export function isOf(item, deviceId, site = null) {
  return item.device_id === deviceId && (!site || !item.site || item.site === site);
}

/** The device page's hash route: `#/device/<site>/<id>` (`#/device/<id>` when the site is unknown). */
export function deviceHref(site, deviceId) {
  return site ? `#/device/${encodeURIComponent(site)}/${encodeURIComponent(deviceId)}` : `#/device/${encodeURIComponent(deviceId)}`;
}

/** The pump a device route names (its decoded argument): { site (null if not given), deviceId }. */
export function deviceOfRoute(arg) {
  const slash = arg.indexOf("/");
  return slash < 0 ? { site: null, deviceId: arg } : { site: arg.slice(0, slash), deviceId: arg.slice(slash + 1) };
}

export class ConsoleState {
  constructor() {
    this.devices = new Map(); // deviceKey(site, device_id) -> summary
    this.alarms = new Map(); // key -> alarm
    this.commands = new Map(); // command_id -> command
    this.responses = new Map(); // alarm key -> [response]
  }

  loadDevices(list) {
    for (const d of list) this.putDevice(d);
  }

  loadAlarms(list) {
    for (const a of list) this.putAlarm(a);
  }

  putDevice(summary) {
    const key = deviceKey(summary.site, summary.device_id);
    const old = this.devices.get(key);
    if (old && old.version > summary.version) return false;
    this.devices.set(key, summary);
    return true;
  }

  putAlarm(alarm) {
    const old = this.alarms.get(alarm.key);
    if (old && old.version >= alarm.version) return false;
    this.alarms.set(alarm.key, alarm);
    return true;
  }

  putResponse(response) {
    const list = this.responses.get(response.key) || [];
    if (list.some((r) => r.response_id === response.response_id)) return false;
    list.push(response);
    this.responses.set(response.key, list);
    return true;
  }

  /**
   * Apply one stream event (`kind`, parsed `data`); return what changed:
   * { devices, alarms, commands, responses: booleans, announce: alarm or null, keys: alarm keys
   * touched, deviceKeys: the deviceKey of each device touched, training: the session of a `training` event or null }.
   */
  apply(kind, data) {
    const changed = {
      devices: false,
      alarms: false,
      commands: false,
      responses: false,
      announce: null,
      training: null,
      scenario: null,
      guidance: null,
      keys: new Set(),
      deviceKeys: new Set(),
    };
    if (kind === "device") {
      changed.devices = this.putDevice(data);
      changed.deviceKeys.add(deviceKey(data.site, data.device_id));
    } else if (kind === "alarm" && data.alarm) {
      changed.alarms = this.putAlarm(data.alarm);
      changed.keys.add(data.key);
      if (changed.alarms && ANNOUNCING_EVENTS.has(data.event) && data.to_state === "active_unacknowledged") {
        changed.announce = data.alarm;
      }
    } else if (kind === "command") {
      this.commands.set(data.command_id, data);
      changed.commands = true;
      changed.deviceKeys.add(deviceKey(data.site, data.device_id));
    } else if (kind === "response") {
      changed.responses = this.putResponse(data);
      changed.keys.add(data.key);
    } else if (kind === "training") {
      changed.training = data;
    } else if (kind === "scenario") {
      changed.scenario = data; // a run started, ended, or a patient reported a symptom: cue cards refetch
    } else if (kind === "guidance") {
      changed.guidance = data;
    }
    return changed;
  }

  /** Alarms staff see (not normal, unless `withNormal`), most urgent first: open before back to
   * normal, then priority, then unanswered, then newest. `followUp` ({ sinceMs, dismissed }): also the alarms that went back
   * to normal at or after `sinceMs` (server clock, epoch ms) whose `followUpId` is not in the set
   * `dismissed`: an alarm that cleared or was acknowledged stays until its follow-up is done. */
  openAlarms({ withNormal = false, followUp = null } = {}) {
    const unanswered = (a) => (a.state === "active_unacknowledged" || a.state === "cleared_unacknowledged" ? 0 : 1);
    const following = (a) =>
      followUp !== null &&
      a.state === "normal" &&
      resolvedAtMs(a) >= followUp.sinceMs &&
      !followUp.dismissed.has(followUpId(a));
    return [...this.alarms.values()]
      .filter((a) => withNormal || OPEN_STATES.has(a.state) || following(a))
      .sort(
        (a, b) =>
          Number(a.state === "normal") - Number(b.state === "normal") || // follow-ups after what is open
          RANK[b.priority] - RANK[a.priority] ||
          unanswered(a) - unanswered(b) ||
          Date.parse(b.raised_at) - Date.parse(a.raised_at) ||
          a.key.localeCompare(b.key),
      );
  }

  /** The open alarms of pump `deviceId` at `site` (at any site when no site is given). */
  alarmsOf(deviceId, site = null) {
    return this.openAlarms().filter((a) => isOf(a, deviceId, site));
  }

  /** The highest priority among the device's signalling alarms (colours its tile), or null. */
  highestPriority(deviceId, site = null) {
    let best = null;
    for (const a of this.alarms.values()) {
      if (!isOf(a, deviceId, site) || !SIGNALLING_STATES.has(a.state)) continue;
      if (best === null || RANK[a.priority] > RANK[best]) best = a.priority;
    }
    return best;
  }

  sites() {
    return [...new Set([...this.devices.values()].map((d) => d.site))].sort();
  }
}

/** When an alarm went back to normal (server clock, epoch ms): the later of its clear and its
 * acknowledgement; -Infinity if neither is known. */
export function resolvedAtMs(alarm) {
  const times = [alarm.cleared_at, alarm.acknowledged_at].map((t) => (t ? Date.parse(t) : NaN)).filter((t) => !Number.isNaN(t));
  return times.length ? Math.max(...times) : -Infinity;
}

/** One occurrence of an alarm point (a point raised again is a new occurrence to follow up). */
export function followUpId(alarm) {
  return `${alarm.key}@${alarm.raised_at}`;
}
