// Alarm sound patterns in the style of IEC 60601-1-8, and which alarm sounds: pure functions, no
// Web Audio, no DOM, no clock (time is an argument), so node tests them (tests/web) and the
// player (alarm-audio.js) only turns their output into tones.
//
// Figures (DOMAIN.md, "Alarm sounds in a console"): high = a burst of 10 pulses (3 + 2, pause,
// 3 + 2) repeating every few seconds; medium = a burst of 3 pulses repeating every few seconds;
// low = 1 or 2 pulses, rarely. Pulse lengths of about 80-150 ms (high) and 130-250 ms
// (medium/low); pauses between bursts of about 2.5-4 s (high, medium) and 16 s or more (low).
// Inside a burst the spacing follows IEC 60601-1-8's table: pulse spacing ts 50-125 ms (high) and
// 125-250 ms (medium/low); between pulses 3 and 4 (and 8 and 9) of the high burst 2*ts + td (one
// pulse slot left silent); between pulses 5 and 6 0.35-1.30 s.

/** Ranges the named figures must stay within (DOMAIN.md, IEC 60601-1-8); the tests hold them to it. */
export const RANGES = Object.freeze({
  highPulseMs: [80, 150],
  highPulseGapMs: [50, 125],
  highHalfPauseMs: [350, 1300],
  highBurstPauseMs: [2500, 4000],
  mediumPulseMs: [130, 250],
  mediumPulseGapMs: [125, 250],
  mediumBurstPauseMs: [2500, 4000],
  lowPulseMs: [130, 250],
  lowBurstPauseMs: [16000, Infinity],
  fundamentalHz: [150, 1000],
  riseFraction: [0.1, 0.2],
});

/** High priority: pulse length (td), the silence between pulses of a group (ts), the pause between
 * the two halves, and the pause after each burst. The group gap is 2*ts + td by the standard. */
export const HIGH_PULSE_MS = 100;
export const HIGH_PULSE_GAP_MS = 80;
export const HIGH_GROUP_GAP_MS = 2 * HIGH_PULSE_GAP_MS + HIGH_PULSE_MS;
export const HIGH_HALF_PAUSE_MS = 700;
export const HIGH_BURST_PAUSE_MS = 3000;
/** The high burst: groups of pulses; a half is [3, 2], and the burst is two halves. */
export const HIGH_HALF = Object.freeze([3, 2]);

export const MEDIUM_PULSE_MS = 180;
export const MEDIUM_PULSE_GAP_MS = 180;
export const MEDIUM_PULSE_COUNT = 3;
export const MEDIUM_BURST_PAUSE_MS = 3500;

/** Low priority: 2 pulses (the standard allows 1 or 2), then a long quiet. */
export const LOW_PULSE_MS = 180;
export const LOW_PULSE_GAP_MS = 180;
export const LOW_PULSE_COUNT = 2;
export const LOW_BURST_PAUSE_MS = 20000;

/** Fundamental frequency per priority, Hz; each tone gets harmonics (HARMONICS) so that it stays
 * audible and locatable over ward noise, as the standard asks (at least 4 harmonics in 300-4000 Hz). */
export const FREQUENCY_HZ = Object.freeze({ high: 660, medium: 523, low: 440 });
/** Relative amplitudes of the fundamental and 4 harmonics (the weakest is -14 dB: within +/-15 dB). */
export const HARMONICS = Object.freeze([1, 0.6, 0.4, 0.3, 0.2]);
/** Rise and fall of each pulse as a share of its length (IEC: rise time 10-20 % of td): no clicks. */
export const RISE_FRACTION = 0.15;

export const PRIORITIES = Object.freeze(["high", "medium", "low"]);
const RANK = Object.freeze({ high: 3, medium: 2, low: 1 });

/** Alarm states whose alarm signal sounds (unless its audio is paused): the condition asks for an
 * answer that has not come. Acknowledged, shelved, out-of-service and normal alarms are quiet. */
export const SOUNDING_STATES = Object.freeze(["active_unacknowledged", "cleared_unacknowledged"]);

function evenly(count, pulseMs, gapMs, startMs) {
  const out = [];
  for (let i = 0; i < count; i += 1) out.push({ startMs: startMs + i * (pulseMs + gapMs), durationMs: pulseMs });
  return out;
}

/**
 * One burst of `priority` ("high", "medium", "low"): its pulses (start relative to the burst's
 * start, length, both in ms), how long the burst sounds, and its period (burst + pause: the next
 * burst starts one period after this one).
 */
export function burst(priority) {
  let pulses = [];
  let pauseMs;
  if (priority === "high") {
    let t = 0;
    HIGH_HALF.concat(HIGH_HALF).forEach((count, group) => {
      if (group === 2) t += HIGH_HALF_PAUSE_MS - HIGH_GROUP_GAP_MS; // between the halves
      const groupPulses = evenly(count, HIGH_PULSE_MS, HIGH_PULSE_GAP_MS, t);
      pulses = pulses.concat(groupPulses);
      t = groupPulses[groupPulses.length - 1].startMs + HIGH_PULSE_MS + HIGH_GROUP_GAP_MS;
    });
    pauseMs = HIGH_BURST_PAUSE_MS;
  } else if (priority === "medium") {
    pulses = evenly(MEDIUM_PULSE_COUNT, MEDIUM_PULSE_MS, MEDIUM_PULSE_GAP_MS, 0);
    pauseMs = MEDIUM_BURST_PAUSE_MS;
  } else if (priority === "low") {
    pulses = evenly(LOW_PULSE_COUNT, LOW_PULSE_MS, LOW_PULSE_GAP_MS, 0);
    pauseMs = LOW_BURST_PAUSE_MS;
  } else {
    throw new RangeError(`no alarm sound for priority ${priority}`);
  }
  const last = pulses[pulses.length - 1];
  const burstMs = last.startMs + last.durationMs;
  return { priority, pulses, burstMs, periodMs: burstMs + pauseMs, frequencyHz: FREQUENCY_HZ[priority] };
}

/** Every pulse (absolute ms) of `priority` bursts that start at `originMs`, one per period, whose
 * start lies in [fromMs, untilMs): what the player schedules ahead of the audio clock. */
export function pulsesBetween(priority, originMs, fromMs, untilMs) {
  const b = burst(priority);
  const out = [];
  const firstBurst = Math.max(0, Math.floor((fromMs - originMs - b.burstMs) / b.periodMs));
  for (let n = firstBurst; originMs + n * b.periodMs < untilMs; n += 1) {
    const base = originMs + n * b.periodMs;
    for (const p of b.pulses) {
      const at = base + p.startMs;
      if (at >= fromMs && at < untilMs) out.push({ atMs: at, durationMs: p.durationMs });
    }
  }
  return out;
}

/** Does `alarm` (the API's alarm JSON) sound at `nowMs` (epoch ms, server clock)? Its state asks
 * for an answer and its audio is not paused (a pause ends at `silenced_until`, exclusive). */
export function isSounding(alarm, nowMs) {
  if (!SOUNDING_STATES.includes(alarm.state)) return false;
  if (alarm.silenced_until && Date.parse(alarm.silenced_until) > nowMs) return false;
  return true;
}

/** The priority to sound now: the highest among sounding alarms, or null. IEC 60601-1-8: only the
 * highest-priority alarm signal is heard, so several alarms never make a cacophony. */
export function soundingPriority(alarms, nowMs) {
  let best = null;
  for (const alarm of alarms) {
    if (isSounding(alarm, nowMs) && (best === null || RANK[alarm.priority] > RANK[best])) best = alarm.priority;
  }
  return best;
}

/** When the answer of soundingPriority next changes by time alone (an audio pause ends), or null. */
export function nextSilenceEnd(alarms, nowMs) {
  let next = null;
  for (const alarm of alarms) {
    if (!SOUNDING_STATES.includes(alarm.state) || !alarm.silenced_until) continue;
    const end = Date.parse(alarm.silenced_until);
    if (end > nowMs && (next === null || end < next)) next = end;
  }
  return next;
}
