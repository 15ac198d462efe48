"""The training desk: starts, watches and ends training sessions in a process that runs the
simulation (``pumptwin demo``); the imperative shell around :mod:`twin.training.scoring`.

An instructor starts a session with a scenario and trainees: the desk checks that every trainee
is an active ``trainee`` account, starts the scenario live through the
:class:`~twin.scenarios.runner.ScenarioRunner` (so the runner's refusals apply: at most
:data:`~twin.scenarios.runner.MAX_LIVE_RUNS` at once) and journals ``started``. The session owns its
pumps: the run's own simulation of the scenario's fleet, from its baseline, on sites of its own
(``tr-<run>.<site>``), at the session's speed; the session's score, frames and live updates cover
those sites alone, so several sessions (of the same scenario too) run side by side, and the rest
of the fleet is none of their business. Pause, resume and abort go to the
run; when the run ends (its timeline done, aborted by the instructor or by one of its own abort
conditions) the desk freezes the score, journals ``completed``/``aborted`` with it, writes the
``training`` points to InfluxDB and says so on the live stream. The report also says whether the
*drill* did what the scenario promised (``drill``): an expectation of the scenario itself that was
missed (a scheduled alarm that never came, an alarm that should not have come) means the drill
misfired, and the trainees' score is not the measure of that session.

While a session runs, its score is computed on demand from the journal (the trainees'
acknowledgements, silences and responses, the escalations of unanswered alarms, the floods at the
scenario's flood sites), and a ``training`` event (the session without anyone's scores: every
console hears the stream) goes out on the live stream whenever an alarm on a session pump is
raised or a trainee acts, so the instructor's page refetches and follows the trainees as they work.

For the debrief (``twin.training.replay``) the desk also journals what a replay plays back and the
rest of the journal does not hold: each scenario step as it happens (training events ``step-<n>``:
the fault, refill, reprogram, bolus or patient symptom, its pump, its simulated offset and outcome),
and a :class:`~twin.training.frames.PumpFrame` of every session pump whose figures moved
(:func:`~twin.training.frames.worth_recording`), from the start to the end, timed at the arrival of
the message that moved them.

A twin restarted during a session finds it ``running`` in the journal with no run behind it: the
desk ends it as ``aborted`` ("the twin restarted during the session"), scored on what the journal
holds up to then.

The desk hears the twin and the runner through their event streams (synchronous callbacks that
must not wait); what it has to journal or compute in answer goes onto a queue that the desk's own
task (:meth:`TrainingDesk.run`, one named task of the process) works off, in order.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from twin.alarms.lifecycle import Transition, TransitionEvent
from twin.alarms.responses import AlarmResponse
from twin.roles import Role
from twin.scenarios.evaluation import ScenarioReport
from twin.scenarios.runner import ScenarioRefused, ScenarioRun, ScenarioRunner
from twin.service.events import AlarmTransitioned, DeviceUpdated, Notice, ResponseMade, TwinEvent
from twin.service.twin_service import TwinService
from twin.store.protocol import Batch
from twin.store.users import UserStore
from twin.timeseries.points import training_response_point
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame, frame_state, worth_recording
from twin.training.replay import STEP_EVENT_PREFIX
from twin.training.scoring import (
    TrainingScore,
    acts,
    expected_responses,
    flood_sites,
    floods,
    occurrences,
    score,
    scored_devices,
)
from twin.training.session import (
    SessionStatus,
    TrainingSession,
    ended_event,
    fold,
    only_trainee,
    session_json,
    started_event,
    training_points,
)

log = logging.getLogger(__name__)

RESTARTED = "the twin restarted during the session"


class TrainingRefused(ScenarioRefused):
    """A request the desk will not carry out; ``reason`` is stable (the API's error reason). A
    kind of :class:`ScenarioRefused`, so callers handle the desk's and the runner's refusals alike."""


_WATCHED: frozenset[TransitionEvent] = frozenset(
    {TransitionEvent.RAISE, TransitionEvent.RERAISE, TransitionEvent.ACKNOWLEDGE, TransitionEvent.SILENCE}
)


class TrainingDesk:
    """Training sessions on ``runner``'s live runs, observed through ``service`` (see the module docstring)."""

    def __init__(self, runner: ScenarioRunner, service: TwinService, users: UserStore | None) -> None:
        self.runner = runner
        self.service = service
        self.users = users
        self._actor = ""  # who pulled the run's lever, while the runner calls back
        self.sessions: dict[str, TrainingSession] = {}
        self._work: deque[tuple[ScenarioRun, str, str]] = deque()
        self._wake = asyncio.Event()
        self._scored: set[str] = set()
        self._moved: set[tuple[str, str]] = set()  # session pumps changed since their last frame
        # (session, site, pump) -> the last frame's seq, state and time
        self._frames: dict[tuple[str, str, str], tuple[int, dict[str, Any] | None, datetime]] = {}
        self._steps: dict[str, int] = {}  # session -> steps journaled
        # run -> when its abort was taken and its pumps' frames then (see _on_run)
        self._ending: dict[str, tuple[datetime, list[PumpFrame]]] = {}
        runner.listeners.append(self._on_run)
        service.hub.listen(self._on_event)

    async def restore(self) -> None:
        """Load the sessions from the journal; one that was running when the twin stopped ends as aborted."""
        self.sessions = fold(await self.service.store.training_events())
        for session in list(self.sessions.values()):
            if session.active:  # no run survives a restart
                await self._end(session, "aborted", actor="twin", reason=RESTARTED)

    async def run(self) -> None:
        """The desk's task: answer what the runner and the twin told it, in order."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.drain()

    async def drain(self) -> None:
        """Work off what is queued (the task does it; awaited methods do it before they return)."""
        while self._work:
            run, event, actor = self._work.popleft()
            await self._handle_run(run, event, actor)
        if self._moved:
            moved, self._moved = self._moved, set()
            for active in self.active:
                mine = {k for k in moved if _owns(active, *k)}
                if mine:
                    await self._record_frames(active, self.service.clock(), mine)
        for session_id in list(self._scored):
            self._scored.discard(session_id)
            session = self.sessions.get(session_id)
            if session is not None and session.active:
                await self._announce(session, "scored")

    # ---------------------------------------------------------------------------------- queries

    def get(self, session_id: str) -> TrainingSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise TrainingRefused("unknown_session", f"no training session {session_id!r}")
        return session

    @property
    def active(self) -> list[TrainingSession]:
        """The sessions running or paused."""
        return [s for s in self.sessions.values() if s.active]

    def current_for(self, username: str) -> TrainingSession | None:
        """The running or paused session ``username`` is a trainee of (the latest, if several)."""
        mine = [s for s in self.active if username in s.trainees]
        return mine[-1] if mine else None

    def _watching(self, site: str, device_id: str) -> list[TrainingSession]:
        """The active sessions a pump belongs to (once their run began: before that the pumps are
        still appearing, and the baseline frames come when it begins)."""
        return [s for s in self.active if _owns(s, site, device_id) and self._began(s)]

    def _began(self, session: TrainingSession) -> bool:
        run = self.runner.runs.get(session.run_id)
        return run is None or run._began

    def trainees(self) -> list[str]:
        """The active trainee accounts, by name."""
        if self.users is None:
            return []
        return sorted(u.username for u in self.users.all() if u.role is Role.TRAINEE and not u.disabled)

    async def score(self, session: TrainingSession) -> TrainingScore:
        """The final score of an ended session, or the score so far of a running one."""
        if session.final is not None:
            return session.final
        return await self._compute(session, end=None, ended=False)

    async def json(
        self, session: TrainingSession, *, detail: bool = True, reveal: bool = True, only: str | None = None
    ) -> dict[str, Any]:
        """The session as the API shows it (:func:`~twin.training.session.session_json`), with its
        run's timeline ``progress`` (simulated seconds, pauses excluded) while it runs. With
        ``only``, the report holds that trainee's rows, summary and acts alone (a trainee's view)."""
        result = await self.score(session)
        if only is not None:
            result = only_trainee(result, only)
        body = session_json(session, result, detail=detail, reveal=reveal)
        # only while it runs: a restarted twin has none of the runs it had
        run = self.runner.runs.get(session.run_id) if session.active else None
        body["progress"] = run.progress() if run is not None else None
        if run is not None:
            body["drill"] = drill_json(run.report())
        return body

    async def _compute(self, session: TrainingSession, *, end: datetime | None, ended: bool) -> TrainingScore:
        store = self.service.store
        devices = frozenset(session.devices)
        trainees = frozenset(session.trainees)
        transitions = [t for t in await store.transitions(since=session.started_at) if _site_of(session, t.site)]
        responses = [r for r in await store.responses(since=session.started_at) if _site_of(session, r.site)]
        escalations = [e for e in await store.escalations(since=session.started_at) if _site_of(session, e.site)]
        sites = flood_sites(session.expected)
        window_end = end if end is not None else self.service.clock()
        return score(
            occurrences(transitions, devices, session.started_at, end),
            acts(transitions, responses, trainees, devices, session.started_at, end),
            session.trainees,
            session.expected,
            ended=ended,
            escalations=[e for e in escalations if e.device_id in devices and (end is None or e.due_at <= end)],
            flood_periods=floods(transitions, sites, session.started_at, window_end) if sites else (),
        )

    def sites_of(self, session: TrainingSession) -> dict[str, str]:
        """Pump -> site, for the session's pumps the twin knows."""
        return {t.device_id: t.site for t in self.service.fleet.devices.values() if _owns(session, t.site, t.device_id)}

    # --------------------------------------------------------------------------------- commands

    async def start(
        self, scenario: str, trainees: Sequence[str], *, instructor: str, speed: float | None = None
    ) -> TrainingSession:
        """Start ``scenario`` live as a session for ``trainees``. Raises :class:`TrainingRefused`
        (``no_trainees``, ``unknown_trainee``, ``not_a_trainee``) or the runner's
        :class:`~twin.scenarios.runner.ScenarioRefused`."""
        names = tuple(dict.fromkeys(trainees))
        if not names:
            raise TrainingRefused("no_trainees", "a training session needs at least one trainee")
        for name in names:
            user = self.users.get(name) if self.users is not None else None
            if user is None or user.disabled:
                raise TrainingRefused("unknown_trainee", f"no active account {name!r}")
            if user.role is not Role.TRAINEE:
                raise TrainingRefused("not_a_trainee", f"{name!r} is a {user.role.value}, not a trainee")
        run = self.runner.start(scenario, speed=speed, started_by=instructor)
        session = TrainingSession(
            session_id=f"t-{uuid.uuid4().hex[:8]}",
            scenario=run.scenario.name,
            title=run.scenario.title,
            run_id=run.run_id,
            instructor=instructor,
            trainees=names,
            devices=scored_devices(run.timeline),
            speed=float(self.runner.stage_of(run).speed or run.scenario.speed),
            started_at=self.service.clock(),
            expected=expected_responses(run.timeline),
            sites=tuple(sorted(set(run.timeline.sites.values()))),
        )
        await self.service.store.commit(Batch(training_events=[started_event(session)]))
        self.sessions[session.session_id] = session
        log.info("training session %s: %s for %s, by %s", session.session_id, session.scenario, names, instructor)
        await self._announce(session, "started")
        await self.drain()
        return session

    async def pause(self, session_id: str, *, by: str) -> TrainingSession:
        return await self._run_action(session_id, by, "pause")

    async def resume(self, session_id: str, *, by: str) -> TrainingSession:
        return await self._run_action(session_id, by, "resume")

    async def abort(self, session_id: str, reason: str, *, by: str) -> TrainingSession:
        return await self._run_action(session_id, by, "abort", reason)

    async def _run_action(self, session_id: str, by: str, verb: str, reason: str = "") -> TrainingSession:
        session = self.get(session_id)
        if not session.active:
            raise TrainingRefused("session_finished", f"session {session_id} is already {session.status}")
        self._actor = by
        try:
            if verb == "pause":
                self.runner.pause(session.run_id)
            elif verb == "resume":
                self.runner.resume(session.run_id)
            else:
                await self.runner.abort(session.run_id, reason, by=by)
        finally:
            self._actor = ""
        await self.drain()
        return self.sessions[session_id]

    # -------------------------------------------------------------------------------- listeners

    def _session_of(self, run: ScenarioRun) -> TrainingSession | None:
        return next((s for s in self.sessions.values() if s.run_id == run.run_id and s.active), None)

    def _on_run(self, run: ScenarioRun, event: str) -> None:
        if event == "aborting":
            # the session ends now, before the kill switch's restores reach its pumps: its end, its
            # score and how its pumps were left are the trainees' doing, whenever the twin hears
            # the restores (taken here, synchronously, so no message can slip in between)
            session = self._session_of(run)
            if session is not None:
                at = self.service.clock()
                self._ending[run.run_id] = (at, self._frames_now(session, at))
            return
        if event in ("began", "paused", "resumed", "completed", "aborted", "step", "patient_symptom"):
            self._work.append((run, event, self._actor or run.aborted_by or "scenario"))
            self._wake.set()

    async def _handle_run(self, run: ScenarioRun, event: str, actor: str) -> None:
        session = self._session_of(run)
        if session is None:
            return
        await self._record_steps(session, run)
        if event == "began":  # the twin mirrors the session's pumps: the baseline the replay starts from
            await self._record_frames(session, self.service.clock(), baseline=True)
        elif event in ("paused", "resumed"):
            status: SessionStatus = "paused" if event == "paused" else "running"
            if session.status == status:
                return
            earlier = await self.service.store.training_events(session.session_id)
            count = 1 + sum(1 for e in earlier if e.event.startswith(event))
            at = self.service.clock()
            await self.service.store.commit(
                Batch(training_events=[TrainingEvent(session.session_id, f"{event}-{count}", actor, at, {})])
            )
            session = replace(session, status=status)
            self.sessions[session.session_id] = session
            await self._announce(session, event)
        elif event in ("completed", "aborted"):
            await self._end(session, event, actor=actor, reason=run.aborted_reason, drill=drill_json(run.report()))

    async def _end(
        self,
        session: TrainingSession,
        status: str,
        *,
        actor: str,
        reason: str | None,
        drill: dict[str, Any] | None = None,
    ) -> None:
        ending = self._ending.pop(session.run_id, None) if session.run_id else None
        if ending is not None:  # aborted: it ended when the abort was taken (see _on_run)
            at, left = ending
            if left:
                await self.service.store.commit(Batch(frames=left))
        else:
            at = self.service.clock()
            if reason != RESTARTED:
                await self._record_frames(session, at)  # how the pumps were left
        final = await self._compute(session, end=at, ended=True)
        ended = replace(
            session,
            status="completed" if status == "completed" else "aborted",
            ended_at=at,
            aborted_reason=reason,
            final=final,
            drill=drill,
        )
        await self.service.store.commit(Batch(training_events=[ended_event(ended, actor)]))
        self.sessions[session.session_id] = ended
        points = self.service.points
        if points is not None:
            lines = [training_response_point(p).line_protocol().encode() for p in training_points(ended, final)]
            try:
                points.persist([(line, False) for line in lines])
            except OSError:
                log.exception("training session %s: its points could not be spooled", session.session_id)
        log.info("training session %s %s", session.session_id, ended.status)
        await self._announce(ended, ended.status)

    def _on_event(self, event: TwinEvent) -> None:
        if isinstance(event, AlarmTransitioned):
            self._on_transition(event.transition)
        elif isinstance(event, ResponseMade):
            self._on_response(event.response)
        elif isinstance(event, DeviceUpdated) and self._watching(*event.key):
            self._moved.add(event.key)
            self._wake.set()

    # ------------------------------------------------------------------------- replay records

    async def _record_steps(self, session: TrainingSession, run: ScenarioRun) -> None:
        """Journal the run's steps dispatched since the last call (``step-<n>``), and the abort's
        restores; a step dropped by an abort never happened and is not journaled."""
        done = self._steps.get(session.session_id, 0)
        happened = [s for s in [*run.steps, *run.restores] if s.status not in ("scheduled", "dropped")]
        if len(happened) <= done:
            return
        at = self.service.clock()
        sim = run.sim
        events = []
        for number, step in enumerate(happened[done:], start=done + 1):
            cue = step.cue
            detail = {
                "index": number,
                "step_id": cue.step_id,
                "step": cue.step,
                "device_id": cue.device_id,
                "at_s": cue.at_s,
                "sim_time": sim.at(run.start_s + cue.at_s).isoformat(),
                "note": cue.note,
                "symptom": cue.symptom,
                "severity": cue.severity.value if cue.severity is not None else None,
                "responses": [r.value for r in cue.responses],
                "actions": [a.type for a in cue.actions],
                "status": step.status,
                "reason": step.reason,
                "command_ids": list(step.command_ids),
            }
            events.append(TrainingEvent(session.session_id, f"{STEP_EVENT_PREFIX}{number}", run.actor, at, detail))
        await self.service.store.commit(Batch(training_events=events))
        self._steps[session.session_id] = len(happened)

    async def _record_frames(
        self,
        session: TrainingSession,
        now: datetime,
        keys: set[tuple[str, str]] | None = None,
        *,
        baseline: bool = False,
    ) -> None:
        """Journal a frame of each session pump (of ``keys``, if given) whose figures moved since
        its last frame, timed at the message that moved them; the ``baseline`` frames (when the
        run begins) at the session's start: the run's clock stood still at second 0 until then."""
        frames = self._frames_now(session, now, keys, baseline=baseline)
        if frames:
            await self.service.store.commit(Batch(frames=frames))

    def _frames_now(
        self,
        session: TrainingSession,
        now: datetime,
        keys: set[tuple[str, str]] | None = None,
        *,
        baseline: bool = False,
    ) -> list[PumpFrame]:
        """The frames :meth:`_record_frames` journals, taken now (and counted as recorded)."""
        frames: list[PumpFrame] = []
        for key, twin in self.service.fleet.devices.items():
            if not _owns(session, twin.site, twin.device_id) or (keys is not None and key not in keys):
                continue
            where = (session.session_id, twin.site, twin.device_id)
            state = frame_state(
                {"presence": twin.presence.value},
                twin.reported.model_dump(mode="json") if twin.reported is not None else None,
                twin.telemetry.model_dump(mode="json") if twin.telemetry is not None else None,
            )
            seq, previous, previous_at = self._frames.get(where, (0, None, session.started_at))
            if not worth_recording(previous, state):
                continue
            made = [t for t in (twin.last_seen_at, twin.presence_since) if t is not None]
            at = session.started_at if baseline else min(now, max([previous_at, *made]))
            frames.append(PumpFrame(session.session_id, twin.site, twin.device_id, seq + 1, at, state))
            self._frames[where] = (seq + 1, state, at)
        return frames

    def _on_transition(self, transition: Transition) -> None:
        if transition.event not in _WATCHED:
            return
        staff = transition.event in (TransitionEvent.ACKNOWLEDGE, TransitionEvent.SILENCE)
        for session in self._watching(transition.site, transition.device_id):
            if staff and transition.actor not in session.trainees:
                continue
            self._scored.add(session.session_id)
            self._wake.set()

    def _on_response(self, response: AlarmResponse) -> None:
        for session in self._watching(response.site, response.device_id):
            if response.actor in session.trainees:
                self._scored.add(session.session_id)
                self._wake.set()

    async def _announce(self, session: TrainingSession, event: str) -> None:
        """The session, with its per-trainee summary, on the live stream (``training``). Never
        raises: the stream is a courtesy, the journal is the record."""
        if event == "scored" and self.service.hub.subscribers == 0:
            return
        try:
            body = await self.json(session, detail=False, reveal=not session.active)  # trainees hear it too
            # every console hears the stream: nobody's scores on it (the pages fetch what their user may see)
            body["report"]["trainees"] = []
            body["event"] = event
            self.service.hub.publish(Notice("training", body, coalesce=session.session_id))
        except Exception:
            log.exception("training session %s: the live update failed", session.session_id)


def _site_of(session: TrainingSession, site: str) -> bool:
    """Is ``site`` one of the session's (every site, for a session journaled before sessions had
    sites of their own)?"""
    return not session.sites or site in session.sites


def _owns(session: TrainingSession, site: str, device_id: str) -> bool:
    return _site_of(session, site) and device_id in session.devices


MISFIRE_KINDS: Final = frozenset({"alarm", "no_alarm", "alarm_flood"})
"""Expectations about what the drill itself does (the alarms it should raise, or not): one of
them missed means the drill misfired."""


def drill_json(report: ScenarioReport) -> dict[str, Any]:
    """Did the drill do what its scenario promised? ``misfired`` with the expectations of the
    scenario itself that were missed (each with its code, pumps and why), and the counts."""
    missed = [r for r in report.expectations if r.status == "missed" and r.expected.kind in MISFIRE_KINDS]
    return {
        "misfired": bool(missed),
        "met": sum(1 for r in report.expectations if r.status == "met"),
        "missed": len(missed),
        "pending": sum(1 for r in report.expectations if r.status == "pending"),
        "expectations": [
            {
                "index": r.expected.index,
                "kind": r.expected.kind,
                "code": r.expected.code,
                "event": r.expected.event,
                "device_ids": list(r.expected.device_ids),
                "site": r.expected.site,
                "detail": r.detail,
            }
            for r in missed
        ],
    }


__all__ = ["MISFIRE_KINDS", "RESTARTED", "TrainingDesk", "TrainingRefused", "drill_json"]
