// A replay (GET /api/training/sessions/<id>/replay, or /api/training/replay for a journal window)
// at a moment of its timeline: what each pump showed, what state each alarm was in and how far it
// had escalated, which steps had happened, what each trainee had done. Pure (no DOM, no fetch, no
// clock read: the playhead `t`, epoch ms, is an argument), so tests/web checks it in node.

export const SPEEDS = [1, 2, 5, 10, 30, 60];
/** The playback speed a replay opens at (x the recorded pace): a few-minute session in about a minute. */
export const DEFAULT_SPEED = 5;

const ms = (iso) => Date.parse(iso);
const RAISES = new Set(["raise", "reraise"]);
const ASKING = new Set(["active_unacknowledged", "cleared_unacknowledged"]);

/** The replay's span, epoch ms: { start, end, length }. */
export function bounds(replay) {
  const start = ms(replay.start);
  const end = Math.max(start, ms(replay.end));
  return { start, end, length: end - start };
}

/** The last item of `items` (sorted by `.at`) at or before `t`, or null. Binary search. */
export function lastAt(items, t) {
  let lo = 0;
  let hi = (items || []).length - 1;
  let found = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ms(items[mid].at) <= t) {
      found = items[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Each pump at `t`: its latest frame (null before its first). */
export function pumpsAt(replay, t) {
  return (replay.pumps || []).map((p) => ({ device_id: p.device_id, site: p.site, frame: lastAt(p.frames, t) }));
}

/**
 * Each alarm at `t` that had been raised by then: its state after the last transition at or before
 * `t`, who made it, whether it asks for an acknowledgement, the escalation tier it had reached in
 * its current occurrence, and the expected responses.
 */
export function alarmsAt(replay, t) {
  const out = [];
  for (const a of replay.alarms || []) {
    const last = lastAt(a.transitions, t);
    if (!last) continue;
    const raised = [...a.transitions].reverse().find((x) => RAISES.has(x.event) && ms(x.at) <= t);
    const since = raised ? ms(raised.at) : -Infinity;
    const asking = ASKING.has(last.to_state);
    const tiers = (a.escalations || []).filter((e) => ms(e.at) <= t && ms(e.unacknowledged_since) <= t && ms(e.at) >= since);
    const escalation = asking && tiers.length ? tiers.reduce((x, y) => (y.level > x.level ? y : x)) : null;
    out.push({
      key: a.key,
      device_id: a.device_id,
      code: a.code,
      priority: a.priority,
      state: last.to_state,
      event: last.event,
      actor: last.actor,
      at: last.at,
      asking,
      escalation,
      everEscalated: tiers.length > 0,
      expected: a.expected || [],
    });
  }
  const rank = { high: 0, medium: 1, low: 2 };
  return out.sort((x, y) => Number(y.asking) - Number(x.asking) || rank[x.priority] - rank[y.priority] || x.key.localeCompare(y.key));
}

/** The scenario's steps, each marked done (happened at or before `t`) or not. */
export function stepsAt(replay, t) {
  return (replay.steps || []).map((s) => ({ ...s, done: ms(s.at) <= t }));
}

/** The names of the replay's trainees, in its order. */
export function traineeNames(replay) {
  return (replay.trainees || []).map((x) => x.trainee);
}

/**
 * One trainee at `t`: the acts done by then, and their score rows for the alarms raised by then
 * (with the expected responses and the verdict: the verdict is the session's final one).
 */
export function traineeAt(replay, name, t) {
  const who = (replay.trainees || []).find((x) => x.trainee === name);
  if (!who) return null;
  return {
    trainee: name,
    summary: who.summary,
    acts: (who.acts || []).filter((a) => ms(a.at) <= t),
    rows: (who.rows || []).filter((r) => ms(r.raised_at) <= t),
    actsTotal: (who.acts || []).length,
  };
}

/** Every moment something happened, sorted: alarm transitions, escalations, steps, acts, session events. */
export function moments(replay) {
  const out = [];
  for (const a of replay.alarms || []) {
    for (const x of a.transitions) out.push({ at: ms(x.at), kind: RAISES.has(x.event) ? "raise" : "alarm", key: a.key, priority: a.priority });
    for (const e of a.escalations || []) out.push({ at: ms(e.at), kind: "escalation", key: a.key, level: e.level });
  }
  for (const s of replay.steps || []) out.push({ at: ms(s.at), kind: s.step === "patient_symptom" ? "symptom" : "step", device_id: s.device_id });
  for (const who of replay.trainees || []) for (const a of who.acts || []) out.push({ at: ms(a.at), kind: "act", trainee: who.trainee });
  for (const e of replay.session_events || []) out.push({ at: ms(e.at), kind: "session", event: e.event });
  return out.sort((x, y) => x.at - y.at);
}

/** The first raise strictly after `t` (epoch ms), or null: "jump to the next alarm". */
export function nextAlarm(replay, t) {
  let best = null;
  for (const a of replay.alarms || []) {
    for (const x of a.transitions) {
      const at = ms(x.at);
      if (RAISES.has(x.event) && at > t && (best === null || at < best)) best = at;
    }
  }
  return best;
}

/** Where the playhead is after `wallMs` of playing at `speed`, stopping at the end. */
export function advance(t, wallMs, speed, end) {
  return Math.min(end, t + Math.max(0, wallMs) * speed);
}

/** "m:ss" (or "h:mm:ss") of an offset in ms from the replay's start. */
export function offsetText(offsetMs) {
  const s = Math.max(0, Math.floor(offsetMs / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** A figure with its unit, or a dash: fixed(12.345, 2, "mL") -> "12.35 mL". */
export function fixed(value, digits, unit) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return `${Number(value).toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}
