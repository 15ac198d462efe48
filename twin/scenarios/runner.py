"""Playing a scenario: against its own fleet as fast as possible (headless), or live on a running
simulation and twin.

Both ways, a :class:`ScenarioRun` hands each cue of the timeline to the :class:`Stage` that owns
the simulation clock, to be played when the simulation reaches the cue's time; the simulation
stands still while a cue is played and until the commands it sent reached the simulated pumps.
So a fault lands at the same simulated second live (over MQTT, at 600x) as headless (in the
same process), and a live run reproduces its headless result. Every command (faults, refills,
reprograms, boluses) goes through the twin (:meth:`TwinService.send_command` with actor
``scenario:<name>``), so the twin's safety rule holds: a real pump (``simulated: false``) is
refused, and the run records the refusal and goes on. What the run observes:

* the twin's alarm transitions (its event stream, :meth:`EventHub.listen`): device alarms and the
  twin's own alerts, as the twin journaled them;
* what the simulated pumps publish (:meth:`FleetSimulation.observe`): the pumps' clinical events,
  and the simulator's truth about the dose reaching each patient, which only the run's own
  abort conditions (a safety net for the exercise, the instructor's) ever look at;
* the outcome of every command it sent (the twin's command tracking).

**Headless** (:func:`run_headless`, composed in :mod:`twin.app.headless`): the simulation wired
straight into a twin service, no broker, the twin's clock the simulation's; the scenario's own
fleet and seed, as fast as possible or paced at ``speed`` x real time. The report is a function
of the scenario and its seed.

**Live** (:class:`ScenarioRunner`), in a process that runs the twin (``pumptwin demo``): each run
owns its pumps. It starts the scenario's own fleet from its baseline (the headless run's pumps,
seed and epoch: :func:`~twin.scenarios.fleet.owned_fleet`) in a simulation of its own, driven over
MQTT by its own :class:`~twin.sim.driver.SimDriver` at the run's speed, on sites named
``tr-<run id>.<site>``: the rest of the twin's fleet keeps its own pace, and two runs (even of the
same scenario) never share a pump. The timeline begins at simulation second 0 once the twin
mirrors every pump of the run; pause stops the timeline *and* the run's clock; resume restarts
both; abort is the kill switch: pending steps are dropped, every pump the run sent a command to
gets ``clear_fault: all`` through the twin (the safe baseline), and the run is recorded as aborted
with its reason. A scenario's own abort conditions pull the same switch. When a run ends its
simulation stops (its pumps close their sessions: "shutdown", neither offline nor silent). At most
:data:`MAX_LIVE_RUNS` run at once. Run status changes go out on the twin's event stream as
``scenario`` notices.

Live and headless share the rules that make them agree: a cue lands on its simulated second (the
clock stands still while it plays), and the twin runs a simulated pump's time thresholds on its
site's simulated clock (:mod:`twin.mirror.clock`), so a live run at 600x reproduces its headless
result (``tests/integration/test_catalogue_live.py`` checks the whole catalogue).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from twin.alarms.lifecycle import Transition
from twin.contract.alarms import Priority
from twin.contract.messages import Action, ClearFaultAction, Telemetry
from twin.mirror.alerts import PatientReport
from twin.mirror.commands import CommandRefused, CommandState
from twin.scenarios.evaluation import (
    AlarmObservation,
    ClinicalRecord,
    DoseSample,
    RunStatus,
    ScenarioReport,
    StepOutcome,
    StepStatus,
    Vigil,
    abort_due,
    evaluate,
    report_json,
    watch_alarm,
    watch_dose,
)
from twin.scenarios.fleet import ScenarioFleet, owned_fleet, scenario_simulation
from twin.scenarios.model import SYMPTOM_PRIORITY, Scenario, ScenarioInvalid
from twin.scenarios.timeline import Cue, Timeline, expand
from twin.service.events import AlarmTransitioned, Notice, TwinEvent
from twin.service.twin_service import TwinService
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.simulation import FleetSimulation

log = logging.getLogger(__name__)

PROGRESS_SLICES: Final = 200
"""A headless run reports progress (and, when paced, sleeps) this many times over its duration."""

ABORT_STEP_ID: Final = "abort"
"""Step id of the ``clear_fault: all`` commands an abort sends (in the report's steps)."""

Mode = Literal["headless", "live"]

_FAILED: Final[dict[CommandState, StepStatus]] = {
    CommandState.REJECTED: "rejected",
    CommandState.TIMED_OUT: "timed_out",
}


Handler = Callable[[], Awaitable[None]]


class Stage(Protocol):
    """Who owns the simulation clock: the live driver (:class:`twin.sim.driver.SimDriver`) or a
    headless loop (:class:`twin.app.headless.HeadlessStage`)."""

    @property
    def sim(self) -> FleetSimulation: ...

    def at(self, sim_s: float, handler: Handler) -> None:
        """Call ``handler`` when the simulation reaches ``sim_s`` (at once if it has); the
        simulation stands still until the handler returns."""
        ...

    async def delivered(self, command_ids: Sequence[str]) -> None:
        """Return once these commands reached their simulated pumps (applied at the current
        simulated time, or held by a pump whose radio is down)."""
        ...


def scenario_actor(scenario: Scenario) -> str:
    """Who the twin's journal and command log say acted: ``scenario:<name>``."""
    return f"scenario:{scenario.name}"


@dataclass
class _StepState:
    cue: Cue
    status: StepStatus = "scheduled"
    command_ids: list[str] = field(default_factory=list)
    reason: str | None = None


class ScenarioRun:
    """One run of one scenario on one simulation, observed through one twin (see the module docstring).

    ``transition_time`` gives a transition's simulation second (the twin's clock may be wall time);
    ``on_change`` hears about status changes and patient symptoms. Failure modes: a command the
    twin refuses is recorded on its step, never raised; :meth:`abort` of a finished run raises
    :class:`ScenarioRefused`.
    """

    def __init__(
        self,
        run_id: str,
        scenario: Scenario,
        timeline: Timeline,
        *,
        stage: Stage,
        service: TwinService,
        mode: Mode,
        seed: int,
        started_by: str,
        transition_time: Callable[[Transition], float],
        abort_conditions: bool = True,
        on_change: Callable[[ScenarioRun, str], None] = lambda run, event: None,
        start_s: float | None = None,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.scenario = scenario
        self.timeline = timeline
        self.stage = stage
        sim = stage.sim
        self.sim = sim
        self.service = service
        self.mode: Mode = mode
        self.seed = seed
        self.started_by = started_by
        self.actor = scenario_actor(scenario)
        self._transition_time = transition_time
        self._settle = settle
        self._abort_conditions = abort_conditions
        self._on_change = on_change
        self.status = RunStatus.RUNNING
        self.start_s = sim.now if start_s is None else max(sim.now, start_s)
        self.started_at = sim.at(self.start_s)
        self.ended_s: float | None = None
        self.aborted_reason: str | None = None
        self.aborted_by: str | None = None
        self.alarms: list[AlarmObservation] = []
        self.events: list[ClinicalRecord] = []
        self.dose_samples = 0
        self.vigil = Vigil()
        self.steps = [_StepState(cue) for cue in timeline.cues]
        self._sites = frozenset(timeline.sites.values())
        self.restores: list[_StepState] = []
        self._log_seen: dict[str, int] = {}
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._began = False
        self._observing = False
        self._stops: list[Callable[[], None]] = []
        self._abort_check_at: float | None = None
        self._now_s: float | None = None  # set while the run itself makes the twin raise something

    # ------------------------------------------------------------------------------ lifecycle

    def observe(self) -> None:
        """Start hearing the twin's transitions and the pumps' messages (before the pumps first
        publish, so that an alarm their first state raises is the run's too)."""
        if self._observing:
            return
        self._observing = True
        for device_id, device in self.sim.devices.items():
            self._log_seen[device_id] = len(device.clinical_log)
        self._stops.append(self.service.hub.listen(self.on_event))
        self._stops.append(self.sim.observe(self.on_device_message))

    def begin(self, *, announce: bool = True) -> None:
        """Observe (if not yet), and hand every cue to the stage from the simulation's current
        time; ``announce``: say ``started`` (a live run said so when it was asked to start)."""
        if self._began:
            raise RuntimeError("a run begins once")
        self._began = True
        self.observe()
        for index, step in enumerate(self.steps):
            self.stage.at(self.start_s + step.cue.at_s, self._cue_handler(index))
        self.stage.at(self.start_s + self.timeline.duration_s, self._timeline_done)
        self._schedule_abort_check()
        if announce:
            self._on_change(self, "started")

    def _cue_handler(self, index: int) -> Handler:
        async def play() -> None:
            await self._while_paused()
            if not self.status.final:
                await self._dispatch(index)

        return play

    async def _timeline_done(self) -> None:
        await self._while_paused()
        if not self.status.final:
            await self.settle()  # what the pumps published up to the end is the run's too
            if not self.status.final:
                self._complete()

    async def settle(self) -> None:
        """Wait until the twin has heard what the run's pumps published so far (live: their
        messages travel over MQTT after the clock moved on; headless: at once)."""
        if self._settle is not None:
            await self._settle()

    @property
    def elapsed_s(self) -> float:
        end = self.ended_s if self.ended_s is not None else self.sim.now
        return max(0.0, end - self.start_s)

    def pause(self) -> None:
        """Hold the timeline (the caller stops the simulation clock)."""
        self._require_active()
        if self.status is RunStatus.PAUSED:
            return
        self.status = RunStatus.PAUSED
        self._resumed.clear()
        self._on_change(self, "paused")

    def resume(self) -> None:
        self._require_active()
        if self.status is RunStatus.RUNNING:
            return
        self.status = RunStatus.RUNNING
        self._resumed.set()
        self._on_change(self, "resumed")

    async def _while_paused(self) -> None:
        while self.status is RunStatus.PAUSED:
            await self._resumed.wait()

    async def abort(self, reason: str, *, by: str) -> None:
        """The kill switch: drop pending steps, send ``clear_fault: all`` through the twin to every
        pump the run sent a command to, record the run as aborted with ``reason``. Listeners hear
        ``aborting`` first, before any restore is sent: the moment the run ended, as its trainees
        left it (what the restores then change lies after it)."""
        self._require_active()
        self._on_change(self, "aborting")
        self.status = RunStatus.ABORTED
        self.aborted_reason = reason
        self.aborted_by = by
        self.ended_s = self.sim.now
        self._resumed.set()
        for step in self.steps:
            if step.status == "scheduled":
                step.status = "dropped"
        touched = {s.cue.device_id for s in self.steps if s.command_ids}
        at_s = self.elapsed_s
        sent: list[str] = []
        for device_id in (d for d in self.timeline.device_ids if d in touched):
            action = ClearFaultAction(fault="all")
            cue = Cue(at_s, -1, ABORT_STEP_ID, "clear_fault", device_id, (action,), note=f"abort: {reason}")
            restore = _StepState(cue)
            await self._send(restore, action)
            sent += restore.command_ids
            self.restores.append(restore)
        await self.stage.delivered(sent)
        log.info("scenario %s (run %s) aborted by %s: %s", self.scenario.name, self.run_id, by, reason)
        self._finalise("aborted")

    def _complete(self) -> None:
        self.status = RunStatus.COMPLETED
        self.ended_s = self.sim.now
        self._finalise("completed")

    def _finalise(self, event: str) -> None:
        for stop in self._stops:
            stop()
        self._stops.clear()
        self._on_change(self, event)

    def _require_active(self) -> None:
        if self.status.final:
            raise ScenarioRefused("run_finished", f"run {self.run_id} is already {self.status.value}")

    def _schedule_abort_check(self) -> None:
        """Hand the stage the time of the earliest abort condition that could hold (if any)."""
        if not self._abort_conditions or self.status.final:
            return
        due = abort_due(self.timeline.aborts, self.vigil)
        if due is None:
            return
        at = self.start_s + due.at_s
        if self._abort_check_at is not None and self._abort_check_at <= at:
            return
        self._abort_check_at = at
        self.stage.at(at, self._check_abort)

    async def _check_abort(self) -> None:
        self._abort_check_at = None
        if self.status.final:
            return
        due = abort_due(self.timeline.aborts, self.vigil)
        if due is not None and self.start_s + due.at_s <= self.sim.now:
            await self.abort(due.reason, by=self.actor)
            return
        self._schedule_abort_check()

    # ------------------------------------------------------------------------------- dispatch

    async def _dispatch(self, index: int) -> None:
        step = self.steps[index]
        cue = step.cue
        if cue.symptom is not None:
            step.status = "recorded"
            self.events.append(ClinicalRecord(cue.at_s, cue.device_id, "patient_symptom", cue.symptom, cue.severity))
            await self._report(cue)
            self._on_change(self, "patient_symptom")
            return
        for action in cue.actions:
            if not await self._send(step, action):
                break
        await self.stage.delivered(step.command_ids)
        self._on_change(self, "step")

    async def _report(self, cue: Cue) -> None:
        """The clinic records what the patient reports: the twin shows it as a ``patient_report``
        alert, timed at the cue's simulation time (the simulation stands still while it plays)."""
        key = self._device_key(cue.device_id)
        if key is None or cue.symptom is None:
            return
        priority = SYMPTOM_PRIORITY[cue.severity] if cue.severity is not None else Priority.MEDIUM
        self._now_s = cue.at_s
        at = self.sim.at(self.start_s + cue.at_s)
        try:
            await self.service.patient_report(key, PatientReport(at, cue.symptom, priority))
        finally:
            self._now_s = None

    async def _send(self, step: _StepState, action: Action) -> bool:
        key = self._device_key(step.cue.device_id)
        try:
            if key is None:
                raise CommandRefused("unknown_device", f"the twin mirrors no device {step.cue.device_id!r}")
            tracked = await self.service.send_command(key, action, self.actor)
        except CommandRefused as exc:
            step.status = "refused"
            step.reason = f"{exc.reason}: {exc}"
            log.info(
                "scenario %s: the twin refused %s for %s: %s", self.scenario.name, action.type, step.cue.device_id, exc
            )
            return False
        step.command_ids.append(tracked.command_id)
        step.status = "pending"
        return True

    def _device_key(self, device_id: str) -> tuple[str, str] | None:
        site = self.sim.sites.get(device_id)
        if site is not None and (site, device_id) in self.service.fleet.devices:
            return (site, device_id)
        found = self.service.fleet.by_id(device_id)
        return found[0].key if len(found) == 1 else None

    # ---------------------------------------------------------------------------- observation

    def on_event(self, event: TwinEvent) -> None:
        """What the twin did (its event stream): the run keeps the alarm transitions."""
        if isinstance(event, AlarmTransitioned):
            self.on_transition(event.transition, event.device_time)

    def on_transition(self, transition: Transition, device_time: datetime | None = None) -> None:
        """A transition the twin journaled (of the run's own sites: other runs' and the rest of the
        fleet's are not this run's business), timed at ``device_time`` (the simulation's time at
        the step that made it, when the twin says) or by the run's ``transition_time``."""
        if self.status.final or transition.site not in self._sites:
            return
        if self._now_s is not None:
            at_s = self._now_s
        elif device_time is not None:
            at_s = (device_time - self.sim.epoch).total_seconds() - self.start_s
        else:
            at_s = self._transition_time(transition) - self.start_s
        observation = AlarmObservation(at_s, transition)
        self.alarms.append(observation)
        vigil = watch_alarm(self.vigil, observation)
        if vigil is not self.vigil:
            self.vigil = vigil
            self._schedule_abort_check()

    def on_device_message(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        """Something a simulated pump published at simulation second ``t`` (from the sink)."""
        if self.status.final or not self._observing:
            return
        device_id = device.device_id
        log_entries = device.clinical_log
        seen = self._log_seen.get(device_id, 0)
        for event in log_entries[seen:]:
            self.events.append(ClinicalRecord(event.at - self.start_s, device_id, event.kind, event.detail))
        self._log_seen[device_id] = len(log_entries)
        message = outgoing.message
        if isinstance(message, Telemetry) and message.sim_truth is not None:
            self.dose_samples += 1
            sample = DoseSample(t - self.start_s, device_id, message.sim_truth.actual_dose_mg_per_day)
            vigil = watch_dose(self.vigil, sample)
            if vigil is not self.vigil:
                self.vigil = vigil
                self._schedule_abort_check()

    # --------------------------------------------------------------------------------- report

    def _step_outcome(self, step: _StepState) -> StepOutcome:
        if step.status != "pending":
            return StepOutcome(step.cue, step.status, step.reason)
        commands = self.service.fleet.commands
        states = [commands[c] for c in step.command_ids if c in commands]
        for tracked in states:
            failed = _FAILED.get(tracked.state)
            if failed is not None:
                return StepOutcome(step.cue, failed, tracked.reason)
        if states and all(t.state is CommandState.APPLIED for t in states):
            return StepOutcome(step.cue, "applied")
        return StepOutcome(step.cue, "pending")

    def report(self) -> ScenarioReport:
        """The report so far (final once the run is)."""
        elapsed = self.elapsed_s
        return ScenarioReport(
            scenario=self.scenario.name,
            title=self.scenario.title,
            seed=self.seed,
            mode=self.mode,
            status=self.status,
            started_at=self.started_at,
            elapsed_s=elapsed,
            duration_s=self.timeline.duration_s,
            expectations=evaluate(
                self.timeline, self.alarms, now_s=elapsed, finished=self.status.final, started_at=self.started_at
            ),
            steps=tuple(self._step_outcome(s) for s in [*self.steps, *self.restores]),
            events=tuple(sorted(self.events, key=lambda e: e.at_s)),
            alarms=tuple(self.alarms),
            aborted_reason=self.aborted_reason,
            aborted_by=self.aborted_by,
        )

    def progress(self) -> dict[str, Any]:
        done = sum(1 for s in self.steps if s.status not in ("scheduled", "dropped"))
        upcoming = [s.cue.at_s for s in self.steps if s.status == "scheduled"]
        return {
            "elapsed_s": round(self.elapsed_s, 3),
            "duration_s": self.timeline.duration_s,
            "fraction": round(min(1.0, self.elapsed_s / self.timeline.duration_s), 4),
            "steps_done": done,
            "steps_total": len(self.steps),
            "next_step_at_s": min(upcoming) if upcoming else None,
            "sim_time": self.sim.at(self.sim.now).isoformat(),
        }


def run_json(run: ScenarioRun, *, detail: bool = True) -> dict[str, Any]:
    """A run as the API shows it: status, timeline progress, and the report so far (``detail``) or
    just its counts (met, missed, pending: for lists and the live stream, which stay small however
    long a run lasts)."""
    report = run.report()
    counts = Counter(r.status for r in report.expectations)
    body: dict[str, Any] = {
        "run_id": run.run_id,
        "scenario": run.scenario.name,
        "title": run.scenario.title,
        "mode": run.mode,
        "status": run.status.value,
        "started_by": run.started_by,
        "actor": run.actor,
        "aborted_reason": run.aborted_reason,
        "aborted_by": run.aborted_by,
        "progress": run.progress(),
        "expectations": {"met": counts["met"], "missed": counts["missed"], "pending": counts["pending"]},
    }
    if detail:
        body["report"] = report_json(report)
    return body


def run_summary(run: ScenarioRun) -> str:
    """One line: the run's status and how many expectations it met so far."""
    report = run.report()
    met = sum(1 for r in report.expectations if r.status == "met")
    line = f"scenario {run.scenario.name} ({run.run_id}): {run.status.value}; {met} of {len(report.expectations)} expectations met"
    return line + (f"; aborted: {run.aborted_reason}" if run.aborted_reason else "")


class ScenarioRefused(ValueError):
    """A scenario action that cannot be done; ``reason`` is a stable code for the API."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ----------------------------------------------------------------------------------------- live


class LiveStage(Stage, Protocol):
    """A stage that follows the wall clock (the live driver): it can be paused and stopped."""

    speed: float | None

    @property
    def paused(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> None: ...

    async def run(self) -> None: ...


StageFactory = Callable[[FleetSimulation, float], LiveStage]
"""Makes the live stage of a run: its own simulation at the run's speed (``pumptwin demo``: a
:class:`~twin.sim.driver.SimDriver` on the twin's broker, with ``session_base=1``: the run's pumps
are new to the twin, so their sessions count from 1 as headless; a session number from the wall
clock would be an implausible jump from what a pump published before its first session)."""

MAX_LIVE_RUNS: Final = 4
"""Live runs at once: each runs its own simulation, one MQTT connection per pump, at up to
thousands of times real time; four sessions of a dozen pumps keep a laptop's twin responsive. [A]"""

MIRROR_TIMEOUT_S: Final = 60.0
"""How long a live run waits for the twin to mirror its pumps before it gives up (aborted)."""

NOT_MIRRORED: Final = "the twin did not mirror the run's pumps in time"

SETTLE_TIMEOUT_S: Final = 3.0
"""How long the end of a live run waits for the twin to hear its pumps' last messages."""


@dataclass
class _Owned:
    """What a live run owns besides itself: its stage (simulation and driver) and their task."""

    stage: LiveStage
    keys: tuple[tuple[str, str], ...]
    task: asyncio.Task[None] | None = None


class ScenarioRunner:
    """Live scenario runs, each on its own simulation, observed through the twin of this process
    (see the module docstring).

    Built with the scenarios it offers; :meth:`attach` joins it to the running twin service and
    gives it the factory of its stages (until then, starting a run is refused with
    ``not_attached``). A run starts from the scenario's own fleet and baseline (the headless run's
    pumps, seed and epoch), on sites of its own (``tr-<run id>.<site>``), at the run's speed, and
    its simulation stops when the run ends: the rest of the twin's fleet keeps its own pace.
    """

    def __init__(self, library: Mapping[str, Scenario], *, max_live_runs: int = MAX_LIVE_RUNS) -> None:
        self.library = dict(library)
        self.max_live_runs = max_live_runs
        self.runs: dict[str, ScenarioRun] = {}
        self.service: TwinService | None = None
        self.stages: StageFactory | None = None
        self._owned: dict[str, _Owned] = {}
        self._ids = itertools.count(1)
        self._token = uuid.uuid4().hex[:4]  # run ids (and so sites) differ from a previous process's
        self._fits: dict[str, str | None] = {}
        self.listeners: list[Callable[[ScenarioRun, str], None]] = []
        """Called with each live run and the event (``started``, ``began``: the twin mirrors its
        pumps and the timeline runs, ``paused``, ``resumed``, ``completed``, ``aborted``,
        ``patient_symptom``, ``step``), after the run changed."""

    def attach(self, service: TwinService, stages: StageFactory) -> None:
        """Join the twin, and the factory of the runs' stages."""
        self.service = service
        self.stages = stages

    @property
    def active(self) -> list[ScenarioRun]:
        """The runs that are running or paused."""
        return [r for r in self.runs.values() if not r.status.final]

    def get(self, run_id: str) -> ScenarioRun:
        run = self.runs.get(run_id)
        if run is None:
            raise ScenarioRefused("unknown_run", f"no scenario run {run_id!r}")
        return run

    def keys_of(self, run: ScenarioRun) -> tuple[tuple[str, str], ...]:
        """The (site, pump) keys a run owns."""
        owned = self._owned.get(run.run_id)
        return owned.keys if owned is not None else ()

    def fits(self, scenario: Scenario) -> str | None:
        """Why ``scenario`` cannot start live (``None``: it can): nothing attached, or a fleet or
        timeline that does not resolve."""
        if self.service is None or self.stages is None:
            return "no simulation is running in this process"
        if scenario.name not in self._fits:
            try:
                _prepare(scenario, "tr-check.")
                self._fits[scenario.name] = None
            except ScenarioInvalid as exc:
                self._fits[scenario.name] = f"cannot run: {exc}"
        return self._fits[scenario.name]

    def start(self, name: str, *, speed: float | None = None, started_by: str = "trainer") -> ScenarioRun:
        """Start scenario ``name`` now on its own pumps, at ``speed`` (default: the scenario's) x
        real time. The run's timeline begins once the twin mirrors every pump of it (the
        simulation stands still until then).

        Raises :class:`ScenarioRefused`: ``unknown_scenario``, ``not_attached``,
        ``too_many_runs`` (:attr:`max_live_runs` running or paused), ``invalid_scenario`` (a fleet
        or timeline that does not resolve)."""
        scenario = self.library.get(name)
        if scenario is None:
            known = ", ".join(sorted(self.library)) or "none"
            raise ScenarioRefused("unknown_scenario", f"no scenario {name!r} (the catalogue: {known})")
        service, stages = self.service, self.stages
        if service is None or stages is None:
            raise ScenarioRefused("not_attached", "no simulation is running in this process")
        active = self.active
        if len(active) >= self.max_live_runs:
            running = ", ".join(f"{r.run_id} ({r.scenario.name})" for r in active)
            raise ScenarioRefused(
                "too_many_runs", f"{len(active)} live runs at once is the most this twin runs: {running}"
            )
        run_id = f"run-{next(self._ids)}-{self._token}"
        try:
            renamed, fleet, timeline = _prepare(scenario, f"tr-{run_id}.")
        except ScenarioInvalid as exc:
            raise ScenarioRefused("invalid_scenario", f"{name} cannot run: {exc}") from None
        sim = scenario_simulation(renamed, fleet)
        stage = stages(sim, speed if speed is not None else scenario.speed)
        stage.pause()  # until the twin mirrors every pump: the run starts from second 0, as headless
        run = ScenarioRun(
            run_id,
            renamed,
            timeline,
            stage=stage,
            service=service,
            mode="live",
            seed=fleet.seed,
            started_by=started_by,
            transition_time=self._transition_time,
            on_change=self._announce,
            settle=lambda: self._caught_up(sim),
        )
        keys = tuple((sim.sites[d], d) for d in sorted(sim.devices))
        owned = _Owned(stage, keys)
        self.runs[run_id] = run
        self._owned[run_id] = owned
        owned.task = asyncio.get_running_loop().create_task(self._play(run, owned), name=f"scenario-{run_id}")
        self._announce(run, "started")
        return run

    async def _play(self, run: ScenarioRun, owned: _Owned) -> None:
        """A live run's life: its simulation runs (paused) while the twin mirrors its pumps, then
        the timeline begins and the clock goes; when the run ends its simulation stops."""
        stage = owned.stage
        run.observe()  # the pumps' first states may raise alarms: the run hears them, as headless
        driving = asyncio.create_task(stage.run(), name=f"sim-{run.run_id}")
        try:
            if await self._mirrored(run, owned.keys, driving):
                run.begin(announce=False)
                if run.status is RunStatus.RUNNING:  # not paused by the instructor meanwhile
                    stage.resume()
                self._announce(run, "began")
            elif not run.status.final:
                await run.abort(NOT_MIRRORED, by=run.actor)
            await driving
        except Exception:
            log.exception("scenario run %s failed", run.run_id)
            if not run.status.final:
                run.status = RunStatus.ABORTED
                run.aborted_reason = "the run's simulation failed"
                run.aborted_by = run.actor
                run.ended_s = run.sim.now
                run._finalise("aborted")
        finally:
            stage.stop()
            if not driving.done():
                with contextlib.suppress(Exception):
                    await driving

    async def _mirrored(self, run: ScenarioRun, keys: Sequence[tuple[str, str]], driving: asyncio.Task[None]) -> bool:
        """Wait until the twin mirrors (birth and state) every pump of ``keys``; False if the
        simulation ended, the run was aborted meanwhile, or it took too long."""
        service = self.service
        assert service is not None

        def mirrored() -> bool:
            devices = service.fleet.devices
            return all((t := devices.get(k)) is not None and t.reported is not None for k in keys)

        changed = asyncio.Event()
        stop = service.hub.listen(lambda event: changed.set())
        try:
            async with asyncio.timeout(MIRROR_TIMEOUT_S):
                while not mirrored():
                    if driving.done() or run.status.final:
                        return False
                    changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await changed.wait()
        except TimeoutError:
            log.warning("scenario run: %s within %g s", NOT_MIRRORED, MIRROR_TIMEOUT_S)
            return False
        finally:
            stop()
        return True

    async def _caught_up(self, sim: FleetSimulation) -> None:
        """Wait (at most :data:`SETTLE_TIMEOUT_S`) until the twin's clock of every site of ``sim``
        reached the simulation's time: the clock message at that time comes after the pumps'
        messages before it."""
        service = self.service
        assert service is not None
        target = sim.at(sim.now)
        sites = set(sim.sites.values())

        def heard() -> bool:
            marks = service.fleet.watermarks
            return all((m := marks.get(site)) is not None and m >= target for site in sites)

        changed = asyncio.Event()
        stop = service.hub.listen(lambda event: changed.set())
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                while not heard():
                    changed.clear()
                    with contextlib.suppress(TimeoutError):  # a clock message tells the hub nothing: look again
                        async with asyncio.timeout(0.02):
                            await changed.wait()
        except TimeoutError:
            log.info("a live run ended before the twin heard its pumps' last messages")
        finally:
            stop()

    def stage_of(self, run: ScenarioRun) -> LiveStage:
        """The stage (simulation driver) a live run owns."""
        return self._stage(run)

    def _stage(self, run: ScenarioRun) -> LiveStage:
        owned = self._owned.get(run.run_id)
        if owned is None:
            raise ScenarioRefused("unknown_run", f"no live stage for run {run.run_id!r}")
        return owned.stage

    def pause(self, run_id: str) -> ScenarioRun:
        """Hold the run's timeline and stop its simulation clock."""
        run = self.get(run_id)
        run.pause()
        self._stage(run).pause()
        return run

    def resume(self, run_id: str) -> ScenarioRun:
        run = self.get(run_id)
        run.resume()
        if run._began:
            self._stage(run).resume()
        return run

    async def abort(self, run_id: str, reason: str, *, by: str) -> ScenarioRun:
        """The kill switch (see :meth:`ScenarioRun.abort`); the clock runs again if the run was
        paused (the clear_fault commands must reach the pumps)."""
        run = self.get(run_id)
        run._require_active()
        self._stage(run).resume()
        await run.abort(reason, by=by)
        return run

    async def close(self) -> None:
        """Stop every live run's simulation (the process is stopping)."""
        for owned in list(self._owned.values()):
            owned.stage.stop()
        for owned in list(self._owned.values()):
            if owned.task is not None and not owned.task.done():
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await owned.task

    def _transition_time(self, transition: Transition) -> float:
        """A transition's simulation second: its site's watermark, the device time of the step
        that made it (the run hears of it as the step is committed)."""
        assert self.service is not None
        run = self._run_at(transition.site)
        if run is None:
            return 0.0
        sim = run.sim
        fleet = self.service.fleet
        twin = fleet.devices.get((transition.site, transition.device_id))
        device_time = fleet.alert_now(twin, transition.at) if twin is not None else None
        if device_time is None:
            return sim.now
        return (device_time - sim.epoch).total_seconds()

    def _run_at(self, site: str) -> ScenarioRun | None:
        for run_id, owned in self._owned.items():
            if any(s == site for s, _ in owned.keys):
                return self.runs[run_id]
        return None

    def _announce(self, run: ScenarioRun, event: str) -> None:
        if run.status.final:
            owned = self._owned.get(run.run_id)
            if owned is not None:
                owned.stage.stop()  # the run's pumps go quiet ("shutdown"): no silence, no alarms
        for listener in list(self.listeners):
            listener(run, event)
        if self.service is None or event == "aborting":  # the consoles hear "aborted" once it has
            return
        body = run_json(run, detail=False)
        body["event"] = event
        if event == "patient_symptom":
            symptom = next(e for e in reversed(run.events) if e.kind == "patient_symptom")
            body["symptom"] = {
                "device_id": symptom.device_id,
                "at_s": symptom.at_s,
                "symptom": symptom.detail,
                "severity": symptom.severity.value if symptom.severity else None,
            }
        self.service.hub.publish(Notice("scenario", body))


def _prepare(scenario: Scenario, prefix: str) -> tuple[Scenario, ScenarioFleet, Timeline]:
    renamed, fleet = owned_fleet(scenario, prefix)
    return renamed, fleet, expand(renamed, fleet.members, fleet.epoch)


def scenario_json(scenario: Scenario) -> dict[str, Any]:
    """What the catalogue shows of a scenario."""
    return {
        "name": scenario.name,
        "title": scenario.title,
        "description": scenario.description,
        "learning_objectives": list(scenario.learning_objectives),
        "duration_s": scenario.duration.total_seconds(),
        "speed": scenario.speed,
        "steps": len(scenario.timeline),
        "expectations": len(scenario.expect),
        "abort_conditions": [c.kind for c in scenario.abort_when],
    }
