// The console's alarm sound patterns and the choice of what sounds (twin/web/js/alarm-sound.js),
// against DOMAIN.md's figures and IEC 60601-1-8's structure. Run: node --test tests/web
// (tests/core/test_web_console_js.py runs it inside pytest).

import assert from "node:assert/strict";
import { test } from "node:test";

import * as sound from "../../twin/web/js/alarm-sound.js";

const within = (value, [lo, hi], what) => assert.ok(value >= lo && value <= hi, `${what} = ${value} not in [${lo}, ${hi}]`);

/** Silent gaps between consecutive pulses of one burst. */
function gaps(b) {
  return b.pulses.slice(1).map((p, i) => p.startMs - (b.pulses[i].startMs + b.pulses[i].durationMs));
}

test("every named figure lies in its DOMAIN.md / IEC 60601-1-8 range", () => {
  const R = sound.RANGES;
  within(sound.HIGH_PULSE_MS, R.highPulseMs, "HIGH_PULSE_MS");
  within(sound.HIGH_PULSE_GAP_MS, R.highPulseGapMs, "HIGH_PULSE_GAP_MS");
  within(sound.HIGH_HALF_PAUSE_MS, R.highHalfPauseMs, "HIGH_HALF_PAUSE_MS");
  within(sound.HIGH_BURST_PAUSE_MS, R.highBurstPauseMs, "HIGH_BURST_PAUSE_MS");
  within(sound.MEDIUM_PULSE_MS, R.mediumPulseMs, "MEDIUM_PULSE_MS");
  within(sound.MEDIUM_PULSE_GAP_MS, R.mediumPulseGapMs, "MEDIUM_PULSE_GAP_MS");
  within(sound.MEDIUM_BURST_PAUSE_MS, R.mediumBurstPauseMs, "MEDIUM_BURST_PAUSE_MS");
  within(sound.LOW_PULSE_MS, R.lowPulseMs, "LOW_PULSE_MS");
  within(sound.LOW_BURST_PAUSE_MS, R.lowBurstPauseMs, "LOW_BURST_PAUSE_MS");
  within(sound.RISE_FRACTION, R.riseFraction, "RISE_FRACTION");
  for (const p of sound.PRIORITIES) within(sound.FREQUENCY_HZ[p], R.fundamentalHz, `FREQUENCY_HZ.${p}`);
  // at least 4 harmonics, none more than 15 dB below the fundamental
  assert.ok(sound.HARMONICS.length >= 5);
  for (const a of sound.HARMONICS) assert.ok(20 * Math.log10(a) >= -15, `harmonic at ${a}`);
});

test("high: a burst of 10 pulses as 3 + 2, pause, 3 + 2", () => {
  const b = sound.burst("high");
  assert.equal(b.pulses.length, 10);
  for (const p of b.pulses) assert.equal(p.durationMs, sound.HIGH_PULSE_MS);
  const ts = sound.HIGH_PULSE_GAP_MS;
  const group = 2 * ts + sound.HIGH_PULSE_MS; // IEC: one pulse slot left silent
  assert.deepEqual(gaps(b), [ts, ts, group, ts, sound.HIGH_HALF_PAUSE_MS, ts, ts, group, ts]);
  // the pause between the halves is longer than any gap inside a half, so the ear hears 3+2, 3+2
  assert.ok(sound.HIGH_HALF_PAUSE_MS > group);
  assert.equal(b.burstMs, b.pulses[9].startMs + sound.HIGH_PULSE_MS);
  assert.equal(b.periodMs - b.burstMs, sound.HIGH_BURST_PAUSE_MS);
  assert.equal(b.burstMs, 2700); // 10 x 100 + 6 x 80 + 2 x 260 + 700, worked out by hand
});

test("medium: a burst of 3 pulses, repeating every few seconds", () => {
  const b = sound.burst("medium");
  assert.equal(b.pulses.length, 3);
  assert.deepEqual(gaps(b), [sound.MEDIUM_PULSE_GAP_MS, sound.MEDIUM_PULSE_GAP_MS]);
  assert.equal(b.periodMs - b.burstMs, sound.MEDIUM_BURST_PAUSE_MS);
  assert.equal(b.burstMs, 900);
});

test("low: 1 or 2 pulses, repeating rarely (16 s or more)", () => {
  const b = sound.burst("low");
  assert.ok(b.pulses.length === 1 || b.pulses.length === 2);
  assert.ok(b.periodMs - b.burstMs >= 16000);
});

test("each priority has its own pitch; an unknown priority is an error", () => {
  assert.equal(new Set(sound.PRIORITIES.map((p) => sound.burst(p).frequencyHz)).size, 3);
  assert.throws(() => sound.burst("urgent"), RangeError);
});

test("pulsesBetween repeats the burst once per period and cuts at the window", () => {
  const b = sound.burst("medium");
  const origin = 1000;
  const all = sound.pulsesBetween("medium", origin, 0, origin + 3 * b.periodMs);
  assert.equal(all.length, 9);
  assert.deepEqual(
    all.slice(3, 6).map((p) => p.atMs),
    b.pulses.map((p) => origin + b.periodMs + p.startMs),
  );
  // windows that tile the time line give every pulse exactly once (the player refills like this)
  const pieces = [];
  for (let t = 0; t < origin + 3 * b.periodMs; t += 777) {
    pieces.push(...sound.pulsesBetween("medium", origin, t, Math.min(t + 777, origin + 3 * b.periodMs)));
  }
  assert.deepEqual(pieces, all);
  assert.deepEqual(sound.pulsesBetween("medium", origin, 0, origin), []);
});

const NOW = Date.parse("2026-04-01T12:00:00Z");
const alarm = (priority, state, extra = {}) => ({ key: `${priority}-${state}`, priority, state, silenced_until: null, ...extra });

test("only unanswered alarms sound, and the highest priority wins", () => {
  assert.equal(sound.soundingPriority([], NOW), null);
  assert.equal(sound.soundingPriority([alarm("low", "active_unacknowledged")], NOW), "low");
  assert.equal(
    sound.soundingPriority([alarm("low", "active_unacknowledged"), alarm("high", "cleared_unacknowledged"), alarm("medium", "active_unacknowledged")], NOW),
    "high",
  );
  for (const quiet of ["active_acknowledged", "shelved", "out_of_service", "normal"]) {
    assert.equal(sound.soundingPriority([alarm("high", quiet), alarm("medium", "active_unacknowledged")], NOW), "medium", quiet);
  }
});

test("a silenced alarm is quiet until its pause ends, then sounds again", () => {
  const until = new Date(NOW + 120_000).toISOString();
  const alarms = [alarm("high", "active_unacknowledged", { silenced_until: until }), alarm("low", "active_unacknowledged")];
  assert.equal(sound.soundingPriority(alarms, NOW), "low");
  assert.equal(sound.soundingPriority(alarms, NOW + 119_999), "low");
  assert.equal(sound.soundingPriority(alarms, NOW + 120_000), "high"); // the deadline is exclusive
  assert.equal(sound.nextSilenceEnd(alarms, NOW), NOW + 120_000);
  assert.equal(sound.nextSilenceEnd(alarms, NOW + 120_000), null);
});
