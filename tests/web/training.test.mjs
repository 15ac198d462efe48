// Training sessions in the console: the words and numbers the pages show (twin/web/js/training.js)
// and the throttled refetch behind the live scoreboard (twin/web/js/refetch.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { Refetcher } from "../../twin/web/js/refetch.js";
import * as t from "../../twin/web/js/training.js";

const session = (extra = {}) => ({
  session_id: "t-1",
  scenario: "stall-drill",
  title: "Motor stall drill",
  trainees: ["trainee"],
  status: "running",
  started_at: "2026-04-01T12:00:00Z",
  ended_at: null,
  ...extra,
});

test("times to acknowledge have one decimal; missing values are a dash", () => {
  assert.equal(t.seconds(4.2), "4.2 s");
  assert.equal(t.seconds(4.25), "4.3 s");
  assert.equal(t.seconds(0), "0.0 s");
  assert.equal(t.seconds(null), "—");
  assert.equal(t.seconds(undefined), "—");
  assert.equal(t.traineeScore(62.5), "62.5");
  assert.equal(t.traineeScore(null), "—");
  assert.equal(t.rowScore(0.931), "93");
  assert.equal(t.rowScore(1), "100");
  assert.equal(t.scenarioTime({ elapsed_s: 7500, duration_s: 86400, steps_done: 1, steps_total: 3 }), "2 h 05 min of 1 d 00 h (steps 1/3)");
  assert.equal(t.scenarioTime(null), "—");
  const at = { elapsed_s: 60, duration_s: 3600, steps_done: 0, steps_total: 2 };
  assert.equal(t.projectProgress(at, 600, 3).elapsed_s, 1860);
  assert.equal(t.projectProgress(at, 600, 30).elapsed_s, 3600);
  assert.equal(t.projectProgress(at, 600, 0).elapsed_s, 60);
});

test("verdicts and statuses are written out, unknown ones passed through", () => {
  assert.equal(t.verdictWord("correct"), "Correct");
  assert.equal(t.verdictWord("missed"), "Missed");
  assert.equal(t.verdictWord("weird"), "weird");
  assert.equal(t.statusWord("aborted"), "Aborted");
  assert.equal(t.actionWords(["rotor_study", "interrogate"]), "rotor study, interrogate");
  assert.equal(t.actionWords([]), "—");
});

test("elapsed time runs to now while live and stops at the end", () => {
  const start = Date.parse("2026-04-01T12:00:00Z");
  assert.equal(t.elapsedSeconds(session(), start + 65_000), 65);
  assert.equal(t.elapsedSeconds(session({ status: "completed", ended_at: "2026-04-01T12:01:30Z" }), start + 999_000), 90);
  assert.equal(t.elapsedSeconds(null, start), null);
  assert.equal(t.clockTime(65), "1:05");
  assert.equal(t.clockTime(3725), "1:02:05");
  assert.equal(t.clockTime(null), "—");
});

test("the banner is for the session's trainees only, and says when it is paused or over", () => {
  assert.equal(t.bannerMessage(session(), "someone-else"), null);
  assert.equal(t.bannerMessage(null, "trainee"), null);
  const running = t.bannerMessage(session(), "trainee");
  assert.equal(running.live, true);
  assert.equal(running.text, "Training session: Motor stall drill — your responses are being scored");
  assert.match(t.bannerMessage(session({ status: "paused" }), "trainee").status, /Paused/);
  const over = t.bannerMessage(session({ status: "aborted" }), "trainee");
  assert.equal(over.live, false);
  assert.match(over.text, /ended/);
});

test("the live session is the newest running or paused one", () => {
  const list = [
    session({ session_id: "old", status: "completed", started_at: "2026-04-01T10:00:00Z" }),
    session({ session_id: "now", status: "paused", started_at: "2026-04-01T11:00:00Z" }),
  ];
  assert.equal(t.liveSession(list).session_id, "now");
  assert.equal(t.liveSession([list[0]]), null);
  assert.deepEqual(t.sortSessions(list).map((s) => s.session_id), ["now", "old"]);
});

test("alarm rows and actions come in time order", () => {
  const report = {
    alarms: [
      { trainee: "b", key: "p/x", raised_at: "2026-04-01T12:00:05Z" },
      { trainee: "a", key: "p/x", raised_at: "2026-04-01T12:00:05Z" },
      { trainee: "a", key: "p/y", raised_at: "2026-04-01T12:00:01Z" },
    ],
    actions: [{ at: "2026-04-01T12:00:09Z" }, { at: "2026-04-01T12:00:02Z" }],
  };
  assert.deepEqual(t.alarmRows(report).map((r) => `${r.trainee}:${r.key}`), ["a:p/y", "a:p/x", "b:p/x"]);
  assert.deepEqual(t.actionRows(report).map((r) => r.at), ["2026-04-01T12:00:02Z", "2026-04-01T12:00:09Z"]);
  assert.deepEqual(t.alarmRows({}), []);
});

/** A fake clock: timers fire only when the test advances time. */
function fakeClock() {
  let now = 0;
  const timers = new Map();
  let ids = 0;
  return {
    now: () => now,
    setTimer: (fn, ms) => {
      ids += 1;
      timers.set(ids, { at: now + ms, fn });
      return ids;
    },
    clearTimer: (id) => timers.delete(id),
    async advance(ms) {
      now += ms;
      for (const [id, timer] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at <= now) {
          timers.delete(id);
          timer.fn();
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

test("a burst of requests is one refetch at once and one more after the period", async () => {
  const clock = fakeClock();
  let calls = 0;
  const r = new Refetcher(async () => {
    calls += 1;
  }, 1000, clock);
  r.request();
  await clock.advance(0);
  assert.equal(calls, 1);
  for (let i = 0; i < 50; i += 1) r.request();
  await clock.advance(500);
  assert.equal(calls, 1, "not before the period has passed");
  await clock.advance(500);
  assert.equal(calls, 2, "the burst is served by one trailing refetch");
  await clock.advance(5000);
  assert.equal(calls, 2, "nothing more without a request");
});

test("a request during a slow refetch runs once more after it, never two at once", async () => {
  const clock = fakeClock();
  let inFlight = 0;
  let most = 0;
  let release;
  const r = new Refetcher(() => {
    inFlight += 1;
    most = Math.max(most, inFlight);
    return new Promise((resolve) => {
      release = () => {
        inFlight -= 1;
        resolve();
      };
    });
  }, 1000, clock);
  r.request();
  await clock.advance(0);
  r.request();
  r.request();
  await clock.advance(3000);
  assert.equal(r.runs, 1, "waits for the running fetch");
  release();
  await clock.advance(0);
  await clock.advance(0);
  assert.equal(r.runs, 2);
  release();
  assert.equal(most, 1);
  r.stop();
  r.request();
  await clock.advance(5000);
  assert.equal(r.runs, 2, "stopped: no more refetches");
});

test("a scenario's length in real time at the chosen speed", () => {
  assert.equal(t.wallDuration(3600, 60), "60 s");
  assert.equal(t.wallDuration(86400, 600), "2 min");
  assert.equal(t.wallDuration(86400, 60), "24 min");
  assert.equal(t.wallDuration(86400, 1), "24.0 h");
  assert.equal(t.wallDuration(3600, 0), "—");
});
