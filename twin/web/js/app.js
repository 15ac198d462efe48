// The console's shell: sign-in, hash routes (the ROUTES table), the live stream, the alarm sound,
// the header, the latest-alarm strip, the trainee banner and the "escalated to you" notice. Views
// (views/*.js) render from the shared ConsoleState.
//
// A page is one row of ROUTES: its name (the hash #/<name>[/<arg>]), the view to build (given the
// context and the decoded argument, or undefined), the permission it needs (null: any signed-in
// user; a user without it gets the fleet) and its nav link, if any. Adding a page is adding a row.

import { api, onSignedOut } from "./api.js";
import { AlarmAudio } from "./alarm-audio.js";
import { nextSilenceEnd, soundingPriority } from "./alarm-sound.js";
import { serverNow, syncTo } from "./clock.js";
import { fill, h } from "./dom.js";
import { EscalationNotice } from "./escalation-notice.js";
import { ConsoleState } from "./state.js";
import { LiveStream } from "./stream.js";
import { TrainingBanner } from "./training-banner.js";
import { alarmsView } from "./views/alarms.js";
import { deviceView } from "./views/device.js";
import { fleetView } from "./views/fleet.js";
import { loginView } from "./views/login.js";
import { patientReportsView } from "./views/patient-reports.js";
import { recordView } from "./views/record.js";
import { replayView } from "./views/replay.js";
import { trainingView } from "./views/training.js";
import { trainingReportView } from "./views/training-report.js";
import { usersView } from "./views/users.js";
import { loadGuidance } from "./guidance.js";
import { CueBoard } from "./cues.js";

/** name -> { view(ctx, arg), permission, nav }: see the header comment. Order = nav order. */
export const ROUTES = {
  fleet: { view: (ctx) => fleetView(ctx), permission: null, nav: "nav-fleet" },
  alarms: { view: (ctx) => alarmsView(ctx), permission: null, nav: "nav-alarms" },
  reports: { view: (ctx) => patientReportsView(ctx), permission: null, nav: "nav-reports" },
  device: { view: (ctx, arg) => (arg ? deviceView(ctx, arg) : fleetView(ctx)), permission: null, nav: null },
  training: { view: (ctx, arg) => (arg ? trainingReportView(ctx, arg) : trainingView(ctx)), permission: null, nav: "nav-training", navPermission: "run_scenario" },
  replay: { view: (ctx, arg) => (arg ? replayView(ctx, arg) : fleetView(ctx)), permission: null, nav: null },
  // trainees and up have a record (instructors pick whose)
  record: { view: (ctx, arg) => recordView(ctx, arg ?? null), permission: null, nav: "nav-record", navPermission: "respond" },
  users: { view: (ctx) => usersView(ctx), permission: "manage_users", nav: "nav-users" },
};
const DEFAULT_ROUTE = "fleet";

const PRIORITY_WORD = { high: "High", medium: "Medium", low: "Low" };

const ctx = {
  state: new ConsoleState(),
  me: null,
  audio: new AlarmAudio(),
  can: (permission) => Boolean(ctx.me && ctx.me.permissions.includes(permission)),
  changed: () => scheduleRender({ alarms: true, devices: true, commands: true, responses: true }),
  cues: null,
};
let cuesSeen = null; // cue ids already shown (null until the first load: old reports are not announced)
ctx.cues = new CueBoard(() => {
  const open = ctx.cues.unanswered();
  document.getElementById("report-count").textContent = open.length ? String(open.length) : "";
  const fresh = cuesSeen === null ? [] : open.filter((c) => !cuesSeen.has(c.cue_id));
  cuesSeen = new Set(ctx.cues.cards.map((c) => c.cue_id));
  if (fresh.length) announceCue(fresh[0]);
  else clearAnsweredCue();
  scheduleRender({ cues: true });
});

const main = document.getElementById("main");
const header = document.getElementById("top");
const soundToggle = document.getElementById("sound-toggle");
const soundState = document.getElementById("sound-state");
const streamStatus = document.getElementById("stream-status");
const latest = document.getElementById("latest-alarm");
const banner = new TrainingBanner(document.getElementById("training-banner"), () => ctx.me?.username);
ctx.sessionSites = () => banner.liveSites(); // a trainee's alarm list shows the session's own pumps
const escalated = new EscalationNotice(document.getElementById("escalation-notice"), () => ctx.me?.username);
let view = null;
let stream = null;
let pending = null;
let silenceTimer = null;

// ------------------------------------------------------------------------------------- render

function scheduleRender(changed) {
  if (pending) {
    for (const k of ["devices", "alarms", "commands", "responses"]) pending[k] = pending[k] || changed[k];
    pending.training = changed.training || pending.training;
    pending.scenario = changed.scenario || pending.scenario;
    pending.guidance = changed.guidance || pending.guidance;
    pending.cues = changed.cues || pending.cues;
    for (const key of changed.keys || []) pending.keys.add(key);
    for (const key of changed.deviceKeys || []) pending.deviceKeys.add(key);
    return;
  }
  pending = { ...changed, keys: new Set(changed.keys || []), deviceKeys: new Set(changed.deviceKeys || []) };
  // a timer, not requestAnimationFrame: an alarm console in a background tab must still update
  setTimeout(() => {
    const what = pending;
    pending = null;
    render(what);
  }, 0);
}

function render(what) {
  if (what.alarms) {
    updateAlarmSignals();
    clearAnsweredAnnouncement();
    escalated.show(ctx.state.alarms);
  }
  if (what.training) banner.onSession(what.training);
  if (view && view.update) view.update(what);
}

/** Sound, counter and title follow the alarms; a pause ending re-evaluates at that moment. */
function updateAlarmSignals() {
  const alarms = [...ctx.state.alarms.values()];
  const now = serverNow();
  ctx.audio.setPriority(soundingPriority(alarms, now));
  const unanswered = alarms.filter((a) => a.state === "active_unacknowledged" || a.state === "cleared_unacknowledged");
  document.getElementById("alarm-count").textContent = unanswered.length ? String(unanswered.length) : "";
  document.title = unanswered.length ? `(${unanswered.length}) PumpTwin console` : "PumpTwin console";
  clearTimeout(silenceTimer);
  const end = nextSilenceEnd(alarms, now);
  if (end !== null) silenceTimer = setTimeout(updateAlarmSignals, end - now + 50);
}

function showSoundState() {
  const audio = ctx.audio;
  soundToggle.dataset.sounding = audio.audible || "";
  if (!audio.enabled) {
    soundToggle.textContent = "Enable sound";
    soundToggle.removeAttribute("aria-pressed");
  } else {
    soundToggle.textContent = "Mute alarms";
    soundToggle.setAttribute("aria-pressed", String(audio.muted));
  }
  const off = !audio.enabled || audio.muted;
  soundState.textContent = off ? "Sound off" : audio.audible ? `Sounding: ${audio.audible}` : "Sound on";
  soundState.classList.toggle("off", off);
}

ctx.audio.onchange = showSoundState;
soundToggle.addEventListener("click", async () => {
  if (!ctx.audio.enabled) await ctx.audio.enable();
  else ctx.audio.setMuted(!ctx.audio.muted);
  showSoundState();
});

/** The strip says the latest alarm that asks for an answer, until it is answered (acknowledged,
 * cleared, shelved ...): then it empties, so it never shows an alarm nobody needs to act on. */
function clearAnsweredAnnouncement() {
  const key = latest.firstChild?.dataset?.key;
  if (!key) return;
  const alarm = ctx.state.alarms.get(key);
  if (!alarm || alarm.state !== "active_unacknowledged") fill(latest);
}

/** A new patient report is said in the same strip as a new alarm, until someone answers it. */
function announceCue(card) {
  fill(latest, h("span", { dataset: { cue: card.cue_id } }, `Patient report (${card.severity.replaceAll("_", "-")}) on ${card.device_id}: ${card.symptom}`));
}

function clearAnsweredCue() {
  const id = latest.firstChild?.dataset?.cue;
  if (id && !ctx.cues.unanswered().some((c) => c.cue_id === id)) fill(latest);
}

function announce(alarm) {
  fill(
    latest,
    h(
      "span",
      { dataset: { key: alarm.key } },
      `${PRIORITY_WORD[alarm.priority]} priority alarm on ${alarm.device_id}: ${alarm.message}`,
    ),
  );
}

// ------------------------------------------------------------------------------------- stream

async function loadSnapshot() {
  const [devices, alarms, me] = await Promise.all([api("/api/devices"), api("/api/alarms"), api("/api/me")]);
  syncTo(me.now);
  ctx.state.loadDevices(devices);
  ctx.state.loadAlarms(alarms);
  ctx.changed();
  escalated.refresh(ctx.state.alarms);
}

function startStream() {
  stream = new LiveStream({
    onOpen: () => {
      loadSnapshot().catch(() => {});
      ctx.cues.refetch.request();
      banner.refresh().then(() => scheduleRender({ alarms: true })); // events missed while disconnected may have started or ended a session
    },
    onEvent: (kind, data) => {
      if (kind === "escalation") escalated.onEscalation(data, ctx.state.alarms);
      const changed = ctx.state.apply(kind, data);
      if (changed.announce) announce(changed.announce);
      ctx.cues.noticed(changed);
      if (changed.guidance) {
        loadGuidance().then(() => scheduleRender({ alarms: true, guidance: changed.guidance }));
        return;
      }
      scheduleRender(changed);
    },
    onStatus: (up) => {
      streamStatus.textContent = up ? "Live" : "Reconnecting…";
      streamStatus.classList.toggle("down", !up);
    },
    checkSession: async () => {
      await api("/api/me"); // throws (and signs out) on 401
    },
  });
  stream.start();
}

// ------------------------------------------------------------------------------------- routes

function allowed(spec, key = "permission") {
  return !spec[key] || ctx.can(spec[key]);
}

function route() {
  if (!ctx.me) return;
  const hash = location.hash || `#/${DEFAULT_ROUTE}`;
  const [, asked, rawArg] = hash.match(/^#\/([a-z-]+)(?:\/(.+))?$/) || [];
  const name = ROUTES[asked] && allowed(ROUTES[asked]) ? asked : DEFAULT_ROUTE;
  if (view && view.unmount) view.unmount();
  for (const link of document.querySelectorAll(".top nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view = ROUTES[name].view(ctx, name === asked && rawArg ? decodeURIComponent(rawArg) : undefined);
  fill(main);
  view.mount(main);
  main.focus({ preventScroll: true });
}

function showNav() {
  for (const spec of Object.values(ROUTES)) {
    if (!spec.nav) continue;
    const link = document.getElementById(spec.nav);
    if (link) link.hidden = !allowed(spec) || !allowed(spec, "navPermission");
  }
}

window.addEventListener("hashchange", route);

// ------------------------------------------------------------------------------------ session

function signedIn(me) {
  ctx.me = me;
  syncTo(me.now);
  document.getElementById("who").textContent = `${me.username} (${me.role})`;
  header.hidden = false;
  showNav();
  loadGuidance().then(() => scheduleRender({ alarms: true, guidance: {} }));
  banner.refresh().then(() => scheduleRender({ alarms: true }));
  showSoundState();
  startStream();
  route();
}

function signedOut() {
  if (stream) stream.stop();
  stream = null;
  ctx.me = null;
  ctx.state = new ConsoleState();
  ctx.cues.cards = [];
  cuesSeen = null;
  document.getElementById("report-count").textContent = "";
  ctx.audio.setPriority(null);
  header.hidden = true;
  fill(latest);
  banner.clear();
  escalated.clear();
  if (view && view.unmount) view.unmount();
  view = loginView(ctx, signedIn);
  fill(main);
  view.mount(main);
}

onSignedOut(() => {
  if (ctx.me) signedOut();
});

document.getElementById("sign-out").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" }).catch(() => {});
  signedOut();
});

setInterval(() => {
  if (view && view.tick) view.tick();
}, 1000);

async function boot() {
  try {
    signedIn(await api("/api/me"));
  } catch (error) {
    if (error.status === 401) signedOut();
    else fill(main, h("p", { class: "error", role: "alert" }, `The twin did not answer: ${error.message}`));
  }
}

// for the browser test and for anyone debugging in the devtools console
window.pumptwinConsole = ctx;
boot();
