// Plays the alarm sound with the Web Audio API: the patterns come from alarm-sound.js; this file
// only turns pulses into tones on the audio clock.
//
// Browsers start audio only after a user gesture, so sound begins with the "Enable sound" button
// (enable()). Pulses are scheduled ahead on the AudioContext's clock (SCHEDULE_AHEAD_S), refilled
// every REFILL_MS: the audio clock keeps exact timing even when timers are late (a busy page, a
// background tab). A change of priority stops what was scheduled and starts the new pattern at once.

import { burst, HARMONICS, pulsesBetween, RISE_FRACTION } from "./alarm-sound.js";

/** How far ahead pulses are scheduled, s: long enough to bridge a late timer, short enough that
 * scheduled nodes stay few. */
export const SCHEDULE_AHEAD_S = 8;
/** How often the schedule is topped up, ms. */
export const REFILL_MS = 1000;
/** Output level of a pulse (0-1): loud enough to notice, leaving headroom for the harmonics. */
export const LEVEL = 0.25;

export class AlarmAudio {
  constructor() {
    this.context = null;
    this.muted = false;
    this.priority = null; // what should sound (null: nothing)
    this.playing = null; // what is scheduled
    this.nodes = [];
    this.originS = 0;
    this.scheduledUntilS = 0;
    this.timer = null;
    this.onchange = () => {};
  }

  get enabled() {
    return this.context !== null;
  }

  /** Must run inside a user gesture (a click). */
  async enable() {
    if (!this.context) {
      this.context = new AudioContext();
      // sine partials: index 0 is DC, index n the n-th harmonic
      const imag = new Float32Array([0, ...HARMONICS]);
      this.wave = this.context.createPeriodicWave(new Float32Array(imag.length), imag);
      this.master = this.context.createGain();
      this.master.gain.value = LEVEL;
      this.master.connect(this.context.destination);
      this.timer = setInterval(() => this.refill(), REFILL_MS);
    }
    await this.context.resume();
    this.apply();
  }

  setMuted(muted) {
    this.muted = muted;
    this.apply();
  }

  /** What should sound now ("high", "medium", "low" or null), from soundingPriority(). */
  setPriority(priority) {
    this.priority = priority;
    this.apply();
  }

  /** The pattern actually heard: null when muted, not enabled, or nothing sounds. */
  get audible() {
    return this.enabled && !this.muted ? this.priority : null;
  }

  apply() {
    const want = this.audible;
    if (want === this.playing) return;
    this.stop();
    this.playing = want;
    if (want !== null) {
      this.originS = this.context.currentTime + 0.05;
      this.scheduledUntilS = this.originS;
      this.refill();
    }
    this.onchange(this);
  }

  refill() {
    if (this.playing === null || !this.context) return;
    const horizon = this.context.currentTime + SCHEDULE_AHEAD_S;
    const pulses = pulsesBetween(this.playing, this.originS * 1000, this.scheduledUntilS * 1000, horizon * 1000);
    const hz = burst(this.playing).frequencyHz;
    for (const p of pulses) this.tone(p.atMs / 1000, p.durationMs / 1000, hz);
    this.scheduledUntilS = horizon;
    const now = this.context.currentTime;
    this.nodes = this.nodes.filter((n) => n.endS > now);
  }

  tone(startS, lengthS, hz) {
    const osc = this.context.createOscillator();
    osc.setPeriodicWave(this.wave);
    osc.frequency.value = hz;
    const envelope = this.context.createGain();
    const rise = lengthS * RISE_FRACTION;
    envelope.gain.setValueAtTime(0, startS);
    envelope.gain.linearRampToValueAtTime(1, startS + rise);
    envelope.gain.setValueAtTime(1, startS + lengthS - rise);
    envelope.gain.linearRampToValueAtTime(0, startS + lengthS);
    osc.connect(envelope).connect(this.master);
    osc.start(startS);
    osc.stop(startS + lengthS);
    this.nodes.push({ osc, envelope, endS: startS + lengthS });
  }

  stop() {
    for (const n of this.nodes) {
      try {
        n.osc.stop();
      } catch {
        // a node that already ended cannot be stopped again: nothing to do
      }
      n.envelope.disconnect();
    }
    this.nodes = [];
  }
}
