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

**Live** (:class:`ScenarioRunner`): attached to a :class:`~twin.sim.driver.SimDriver` and the
:class:`~twin.service.twin_service.TwinService` of the same process (``pumptwin demo``). Start
picks the pumps among the devices the twin mirrors; pause stops the timeline *and* the simulation
clock (``SimDriver.pause``); resume restarts both; abort is the kill switch: pending steps are
dropped, every pump the run sent a command to gets ``clear_fault: all`` through the twin (the safe
baseline), and the run is recorded as aborted with its reason. A run sets the clock to its speed
and gives the clock its earlier speed back when it ends. A scenario's own abort conditions
pull the same switch. Run status changes go out on the twin's event stream as ``scenario`` notices.

One live run at a time: a second would share, and fight over, the one simulation clock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from twin.scenarios.fleet import FleetMember, ordered_members
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
        self.restores: list[_StepState] = []
        self._log_seen: dict[str, int] = {}
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._began = False
        self._stops: list[Callable[[], None]] = []
        self._abort_check_at: float | None = None
        self._now_s: float | None = None  # set while the run itself makes the twin raise something

    # ------------------------------------------------------------------------------ lifecycle

    def begin(self) -> None:
        """Start observing, and hand every cue to the stage from the simulation's current time."""
        if self._began:
            raise RuntimeError("a run begins once")
        self._began = True
        for device_id, device in self.sim.devices.items():
            self._log_seen[device_id] = len(device.clinical_log)
        self._stops.append(self.service.hub.listen(self.on_event))
        self._stops.append(self.sim.observe(self.on_device_message))
        for index, step in enumerate(self.steps):
            self.stage.at(self.start_s + step.cue.at_s, self._cue_handler(index))
        self.stage.at(self.start_s + self.timeline.duration_s, self._timeline_done)
        self._schedule_abort_check()
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
            self._complete()

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
        pump the run sent a command to, record the run as aborted with ``reason``."""
        self._require_active()
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
            self.on_transition(event.transition)

    def on_transition(self, transition: Transition) -> None:
        """A transition the twin journaled."""
        if self.status.final:
            return
        at_s = self._now_s if self._now_s is not None else self._transition_time(transition) - self.start_s
        observation = AlarmObservation(at_s, transition)
        self.alarms.append(observation)
        vigil = watch_alarm(self.vigil, observation)
        if vigil is not self.vigil:
            self.vigil = vigil
            self._schedule_abort_check()

    def on_device_message(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        """Something a simulated pump published at simulation second ``t`` (from the sink)."""
        if self.status.final or not self._began:
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
    """A stage that follows the wall clock (the live driver): it can be paused and change speed."""

    speed: float | None

    @property
    def paused(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_speed(self, speed: float) -> None: ...

    def sim_target(self) -> float: ...


class ScenarioRunner:
    """Live scenario runs on the simulation and twin of this process (see the module docstring).

    Built with the scenarios it offers; :meth:`attach` joins it to the running twin service and
    simulation driver (until then, starting a run is refused with ``not_attached``).
    """

    def __init__(self, library: Mapping[str, Scenario]) -> None:
        self.library = dict(library)
        self.runs: dict[str, ScenarioRun] = {}
        self.service: TwinService | None = None
        self.driver: LiveStage | None = None
        self._ids = itertools.count(1)
        self._paused_clock = False
        self._speed_before: float | None = None
        self.listeners: list[Callable[[ScenarioRun, str], None]] = []
        """Called with each live run and the event (``started``, ``paused``, ``resumed``,
        ``completed``, ``aborted``, ``patient_symptom``, ``step``), after the run changed."""

    def attach(self, service: TwinService, driver: LiveStage) -> None:
        """Join the twin and the driver (the stage live runs play on)."""
        self.service = service
        self.driver = driver

    @property
    def active(self) -> ScenarioRun | None:
        """The run that is running or paused, if any."""
        return next((r for r in self.runs.values() if not r.status.final), None)

    def get(self, run_id: str) -> ScenarioRun:
        run = self.runs.get(run_id)
        if run is None:
            raise ScenarioRefused("unknown_run", f"no scenario run {run_id!r}")
        return run

    def members(self) -> tuple[FleetMember, ...]:
        """The devices the twin mirrors (with a birth), as selections see them."""
        assert self.service is not None
        rows = []
        for twin in self.service.fleet.devices.values():
            if twin.birth is None:
                continue
            state = twin.reported
            rows.append(
                FleetMember(
                    0,
                    twin.device_id,
                    twin.site,
                    state.drug if state else None,
                    state.concentration_mg_per_ml if state else None,
                    twin.birth.reservoir_capacity_ml,
                    twin.birth.simulated,
                )
            )
        return ordered_members(rows)

    def fits(self, scenario: Scenario) -> str | None:
        """Why ``scenario`` cannot start live on the running fleet (``None``: it can): no
        simulation attached, or a selection the mirrored fleet cannot satisfy."""
        if self.service is None or self.driver is None:
            return "no simulation is running in this process"
        sim = self.driver.sim
        try:
            expand(scenario, self.members(), sim.at(sim.now))
        except ScenarioInvalid as exc:
            return f"cannot run on this fleet: {exc}"
        return None

    def start(self, name: str, *, speed: float | None = None, started_by: str = "trainer") -> ScenarioRun:
        """Start scenario ``name`` now, at ``speed`` (default: the scenario's) x real time.

        Raises :class:`ScenarioRefused`: ``unknown_scenario``, ``not_attached``, ``run_active``,
        ``flat_out`` (the simulation runs as fast as possible: no clock to pace a live run),
        ``invalid_for_fleet`` (a selection the running fleet cannot satisfy)."""
        scenario = self.library.get(name)
        if scenario is None:
            known = ", ".join(sorted(self.library)) or "none"
            raise ScenarioRefused("unknown_scenario", f"no scenario {name!r} (the catalogue: {known})")
        service, driver = self.service, self.driver
        if service is None or driver is None:
            raise ScenarioRefused("not_attached", "no simulation is running in this process")
        active = self.active
        if active is not None:
            raise ScenarioRefused(
                "run_active", f"run {active.run_id} ({active.scenario.name}) is {active.status.value}"
            )
        if driver.speed is None:
            raise ScenarioRefused("flat_out", "the simulation runs as fast as possible; a live run needs a speed")
        sim = driver.sim
        try:
            timeline = expand(scenario, self.members(), sim.at(sim.now))
        except ScenarioInvalid as exc:
            raise ScenarioRefused("invalid_for_fleet", f"{name} cannot run on this fleet: {exc}") from None
        self._speed_before = driver.speed
        driver.set_speed(speed if speed is not None else scenario.speed)
        run_id = f"run-{next(self._ids)}"
        run = ScenarioRun(
            run_id,
            scenario,
            timeline,
            stage=driver,
            service=service,
            mode="live",
            seed=sim.seed,
            started_by=started_by,
            transition_time=self._transition_time,
            on_change=self._announce,
            # the simulation has only run up to its last event; the wall clock says it is later:
            # time the timeline from when the start was asked for, or its first steps come early
            start_s=driver.sim_target(),
        )
        self.runs[run_id] = run
        run.begin()
        return run

    def pause(self, run_id: str) -> ScenarioRun:
        """Hold the run's timeline and stop the simulation clock."""
        run = self.get(run_id)
        run.pause()
        assert self.driver is not None
        if not self.driver.paused:
            self.driver.pause()
            self._paused_clock = True
        return run

    def resume(self, run_id: str) -> ScenarioRun:
        run = self.get(run_id)
        run.resume()
        self._release_clock()
        return run

    async def abort(self, run_id: str, reason: str, *, by: str) -> ScenarioRun:
        """The kill switch (see :meth:`ScenarioRun.abort`); the clock runs again if the run had stopped it."""
        run = self.get(run_id)
        self._release_clock()  # the clear_fault commands must reach the pumps
        await run.abort(reason, by=by)
        return run

    def _release_clock(self) -> None:
        if self._paused_clock and self.driver is not None:
            self.driver.resume()
        self._paused_clock = False

    def _transition_time(self, transition: Transition) -> float:
        """A transition's simulation second: the device's clock at that wall time, as the twin knows it."""
        assert self.service is not None
        assert self.driver is not None
        sim = self.driver.sim
        fleet = self.service.fleet
        twin = fleet.devices.get((transition.site, transition.device_id))
        # the site's watermark: the device time of the step that made the transition (the run hears
        # of it as that step is committed)
        device_time = fleet.alert_now(twin, transition.at) if twin is not None else None
        if device_time is None:
            return sim.now
        return (device_time - sim.epoch).total_seconds()

    def _announce(self, run: ScenarioRun, event: str) -> None:
        if run.status.final and self._paused_clock:
            self._release_clock()  # a run that aborts itself while paused gives the clock back
        if run.status.final and self.driver is not None and self._speed_before is not None:
            self.driver.set_speed(self._speed_before)  # the run borrowed the clock's pace: give it back
            self._speed_before = None
        for listener in list(self.listeners):
            listener(run, event)
        if self.service is None:
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


async def start_when_mirrored(
    runner: ScenarioRunner, name: str, *, started_by: str, speed: float | None = None, timeout_s: float = 60.0
) -> ScenarioRun | None:
    """Start ``name`` (at ``speed``, default the scenario's) once the twin mirrors (birth and state)
    every simulated pump of the attached driver; None (logged) if that does not happen within
    ``timeout_s`` or the start is refused."""
    assert runner.driver is not None
    assert runner.service is not None
    sim = runner.driver.sim
    keys = [(sim.sites[d], d) for d in sim.devices]
    service = runner.service

    def mirrored() -> bool:
        devices = service.fleet.devices
        return all((t := devices.get(k)) is not None and t.reported is not None for k in keys)

    changed = asyncio.Event()
    stop = service.hub.listen(lambda event: changed.set())
    try:
        async with asyncio.timeout(timeout_s):
            while not mirrored():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        log.warning("scenario %s not started: the twin did not mirror every pump within %g s", name, timeout_s)
        return None
    finally:
        stop()
    try:
        return runner.start(name, speed=speed, started_by=started_by)
    except ScenarioRefused as exc:
        log.warning("scenario %s not started: %s", name, exc)
        return None
