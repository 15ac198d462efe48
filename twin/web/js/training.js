// Training sessions as the console shows them: verdict words, scores, seconds, elapsed time and
// the trainee banner's text, from the Session JSON of /api/training/... and the `training` stream
// event. Pure (no DOM, no fetch, no clock read: times are arguments), so tests/web checks it in node.

/** Statuses in which a session is still under way (the trainee banner shows, the scoreboard is live). */
export const LIVE_STATUSES = new Set(["running", "paused"]);

export const STATUS_WORDS = {
  running: "Running",
  paused: "Paused",
  completed: "Completed",
  aborted: "Aborted",
};

/** Verdicts of an alarm row, as the report and the scoreboard write them (never by colour alone). */
export const VERDICT_WORDS = {
  correct: "Correct",
  incorrect: "Incorrect",
  missed: "Missed",
  pending: "Pending",
};

export function isLive(session) {
  return Boolean(session) && LIVE_STATUSES.has(session.status);
}

export function statusWord(status) {
  return STATUS_WORDS[status] || String(status ?? "—");
}

export function verdictWord(verdict) {
  return VERDICT_WORDS[verdict] || String(verdict ?? "—");
}

/** "4.2 s" (one decimal), "—" for no value. */
export function seconds(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return `${Number(value).toFixed(digits)} s`;
}

/** A trainee's score (0..100) as "62.5"; "—" for none. */
export function traineeScore(score) {
  if (score === null || score === undefined) return "—";
  return Number(score).toFixed(1);
}

/** An alarm row's score (0..1 in the API) on the trainees' scale, out of 100: 0.931 -> "93"; "—" for none. */
export function rowScore(score) {
  if (score === null || score === undefined) return "—";
  return String(Math.round(Number(score) * 100));
}

/** "rotor_study" -> "rotor study"; a list joined with commas; "—" for none. */
export function actionWords(actions) {
  const list = Array.isArray(actions) ? actions : actions ? [actions] : [];
  return list.length ? list.map((a) => String(a).replaceAll("_", " ")).join(", ") : "—";
}

/** Seconds the session has lasted: to its end, or to `nowMs` (epoch ms, server clock) while live. */
export function elapsedSeconds(session, nowMs) {
  if (!session || !session.started_at) return null;
  const start = Date.parse(session.started_at);
  const end = session.ended_at ? Date.parse(session.ended_at) : nowMs;
  if (Number.isNaN(start) || Number.isNaN(end)) return null;
  return Math.max(0, (end - start) / 1000);
}

/** "m:ss" or "h:mm:ss" for an elapsed time in seconds; "—" for none. */
export function clockTime(totalSeconds) {
  if (totalSeconds === null || totalSeconds === undefined) return "—";
  const s = Math.floor(totalSeconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** Is `username` one of the session's trainees? */
export function isTraineeOf(session, username) {
  return Boolean(session && username && (session.trainees || []).includes(username));
}

/**
 * What the banner at the top of every page says, or null for no banner: a live session the user
 * is a trainee of ("Training session: <title> — your responses are being scored"), or, once that
 * session has ended, where to find its report.
 */
export function bannerMessage(session, username) {
  if (!isTraineeOf(session, username)) return null;
  const title = session.title || session.scenario;
  if (session.status === "running") {
    return { live: true, text: `Training session: ${title} — your responses are being scored`, status: "Running" };
  }
  if (session.status === "paused") {
    return { live: true, text: `Training session: ${title} — your responses are being scored`, status: "Paused by the instructor" };
  }
  return { live: false, text: `Training session ended: ${title}`, status: statusWord(session.status) };
}

/** The session's alarm rows in the order they were raised (then trainee, then key). */
export function alarmRows(report) {
  return [...((report && report.alarms) || [])].sort(
    (a, b) =>
      Date.parse(a.raised_at) - Date.parse(b.raised_at) ||
      String(a.trainee).localeCompare(String(b.trainee)) ||
      String(a.key).localeCompare(String(b.key)),
  );
}

/** The actions timeline in time order. */
export function actionRows(report) {
  return [...((report && report.actions) || [])].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

/** Sessions newest first; the live one (running or paused), if any. */
export function sortSessions(sessions) {
  return [...(sessions || [])].sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at));
}

export function liveSession(sessions) {
  return sortSessions(sessions).find(isLive) || null;
}

/** How long a scenario of `durationS` simulated seconds lasts at `speed` x real time: "30 min". */
/** A run's progress as simulated time: "2 h 05 min of 1 d 00 h (steps 1/3)"; pauses do not count. */
export function scenarioTime(progress) {
  if (!progress) return "—";
  const span = (x) => {
    const s = Math.max(0, Math.floor(x || 0));
    const d = Math.floor(s / 86400);
    const hh = Math.floor((s % 86400) / 3600);
    const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
    return d ? `${d} d ${String(hh).padStart(2, "0")} h` : `${hh} h ${mm} min`;
  };
  return `${span(progress.elapsed_s)} of ${span(progress.duration_s)} (steps ${progress.steps_done}/${progress.steps_total})`;
}

/** ``progress`` as it stands ``wallS`` seconds after it was read, the run going at ``speed``
 * (capped at the run's duration): the simulation only reports its time at its own events. */
export function projectProgress(progress, speed, wallS) {
  if (!progress) return progress;
  const ahead = Math.max(0, wallS) * (speed || 0);
  return { ...progress, elapsed_s: Math.min(progress.duration_s, progress.elapsed_s + ahead) };
}

export function wallDuration(durationS, speed) {
  if (!durationS || !speed || speed <= 0) return "—";
  const s = durationS / speed;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
