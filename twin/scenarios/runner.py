"""Playing a scenario: against its own fleet as fast as possible (headless), or live on a running
simulation and twin.

Both ways, a :class:`ScenarioRun` schedules the scenario's cues as SimPy processes on the
simulation's environment, so the timeline runs on simulation time and stops when the simulation
clock stops. Every command (faults, refills, reprograms, boluses) goes through the twin
(:meth:`TwinService.send_command` with actor ``scenario:<name>``), so the twin's safety rule holds:
a real pump (``simulated: false``) is refused, and the run records the refusal and goes on.
What the run observes:

* the twin's alarm transitions (``TwinService.transition_listeners``): device alarms and the
  twin's own alerts, as the twin journaled them;
* what the simulated pumps publish (a hook on the simulation's sink): the simulator's truth about
  the dose reaching each patient (telemetry) and the pumps' clinical events;
* the outcome of every command it sent (the twin's command tracking).

**Headless** (:func:`run_headless`): an :class:`~twin.service.inprocess.InProcessTwin` (the
simulation wired straight into a twin service, no broker; the twin's clock is the simulation's),
the scenario's own fleet and seed, as fast as possible or paced at ``speed`` x real time. The
report is a function of the scenario and its seed.

**Live** (:class:`ScenarioRunner`): attached to a :class:`~twin.sim.driver.SimDriver` and the
:class:`~twin.service.twin_service.TwinService` of the same process (``pumptwin demo``). Start
picks the pumps among the devices the twin mirrors; pause stops the timeline *and* the simulation
clock (``SimDriver.pause``); resume restarts both; abort is the kill switch: pending steps are
dropped, every pump the run sent a command to gets ``clear_fault: all`` through the twin (the safe
baseline), and the run is recorded as aborted with its reason. A run sets the clock to its speed
and gives the clock its earlier speed back when it ends. A scenario's own abort conditions
pull the same switch. Run status changes go out on the service bus as ``scenario`` events.

One live run at a time: a second would share, and fight over, the one simulation clock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import simpy

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
from twin.scenarios.fleet import FleetMember, ordered_members, resolve_fleet
from twin.scenarios.model import SYMPTOM_PRIORITY, Scenario, ScenarioInvalid
from twin.scenarios.timeline import Cue, Timeline, expand
from twin.service.inprocess import InProcessTwin
from twin.service.twin_service import TwinService
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.driver import SimDriver
from twin.sim.simulation import FleetSimulation
from twin.store.journal import Journal

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
    ``deliver`` hands the twin's queued commands to the simulation at once (headless) or does
    nothing (live: the twin's MQTT link carries them); ``on_change`` hears about status changes and
    patient symptoms. Failure modes: a command the twin refuses is recorded on its step, never
    raised; :meth:`abort` of a finished run raises :class:`ScenarioRefused`.
    """

    def __init__(
        self,
        run_id: str,
        scenario: Scenario,
        timeline: Timeline,
        *,
        sim: FleetSimulation,
        service: TwinService,
        mode: Mode,
        seed: int,
        started_by: str,
        transition_time: Callable[[Transition], float],
        deliver: Callable[[], object] = lambda: None,
        abort_conditions: bool = True,
        on_change: Callable[[ScenarioRun, str], None] = lambda run, event: None,
        start_s: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.scenario = scenario
        self.timeline = timeline
        self.sim = sim
        self.service = service
        self.mode: Mode = mode
        self.seed = seed
        self.started_by = started_by
        self.actor = scenario_actor(scenario)
        self._transition_time = transition_time
        self._deliver = deliver
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
        self._resumed: simpy.Event | None = None
        self._wake: simpy.Event | None = None
        self._began = False
        self._now_s: float | None = None  # set while the run itself makes the twin raise something

    # ------------------------------------------------------------------------------ lifecycle

    def begin(self) -> None:
        """Start observing and schedule the timeline from the simulation's current time."""
        if self._began:
            raise RuntimeError("a run begins once")
        self._began = True
        for device_id, device in self.sim.devices.items():
            self._log_seen[device_id] = len(device.clinical_log)
        self.service.transition_listeners.append(self.on_transition)
        self.sim.env.process(self._play())
        self.sim.env.process(self._watch())
        self._on_change(self, "started")

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
        self._on_change(self, "paused")

    def resume(self) -> None:
        self._require_active()
        if self.status is RunStatus.RUNNING:
            return
        self.status = RunStatus.RUNNING
        if self._resumed is not None and not self._resumed.triggered:
            self._resumed.succeed()
        self._on_change(self, "resumed")

    def abort(self, reason: str, *, by: str) -> None:
        """The kill switch: drop pending steps, send ``clear_fault: all`` through the twin to every
        pump the run sent a command to, record the run as aborted with ``reason``."""
        self._require_active()
        self.status = RunStatus.ABORTED
        self.aborted_reason = reason
        self.aborted_by = by
        self.ended_s = self.sim.now
        for step in self.steps:
            if step.status == "scheduled":
                step.status = "dropped"
        touched = {s.cue.device_id for s in self.steps if s.command_ids}
        at_s = self.elapsed_s
        for device_id in (d for d in self.timeline.device_ids if d in touched):
            action = ClearFaultAction(fault="all")
            cue = Cue(at_s, -1, ABORT_STEP_ID, "clear_fault", device_id, (action,), note=f"abort: {reason}")
            restore = _StepState(cue)
            self._send(restore, action)
            self.restores.append(restore)
        self._deliver()
        log.info("scenario %s (run %s) aborted by %s: %s", self.scenario.name, self.run_id, by, reason)
        self._finalise("aborted")

    def _complete(self) -> None:
        self.status = RunStatus.COMPLETED
        self.ended_s = self.sim.now
        self._finalise("completed")

    def _finalise(self, event: str) -> None:
        if self.on_transition in self.service.transition_listeners:
            self.service.transition_listeners.remove(self.on_transition)
        for pending in (self._wake, self._resumed):
            if pending is not None and not pending.triggered:
                pending.succeed()  # let the waiting processes see the final status and end
        self._on_change(self, event)

    def _require_active(self) -> None:
        if self.status.final:
            raise ScenarioRefused("run_finished", f"run {self.run_id} is already {self.status.value}")

    # ------------------------------------------------------------------------------ processes

    def _play(self) -> Generator[simpy.Event, object, None]:
        env = self.sim.env
        for index, step in enumerate(self.steps):
            due = self.start_s + step.cue.at_s
            if due > env.now:
                yield env.timeout(due - env.now)
            yield from self._while_paused()
            if self.status.final:
                return
            self._dispatch(index)
        end = self.start_s + self.timeline.duration_s
        if end > env.now:
            yield env.timeout(end - env.now)
        yield from self._while_paused()
        if not self.status.final:
            self._complete()

    def _while_paused(self) -> Generator[simpy.Event, object, None]:
        while self.status is RunStatus.PAUSED:
            self._resumed = self.sim.env.event()
            yield self._resumed

    def _watch(self) -> Generator[simpy.Event, object, None]:
        env = self.sim.env
        while not self.status.final:
            due = abort_due(self.timeline.aborts, self.vigil) if self._abort_conditions else None
            if due is not None and self.start_s + due.at_s <= env.now:
                self.abort(due.reason, by=self.actor)
                return
            self._wake = env.event()
            if due is None:
                yield self._wake
            else:
                yield env.timeout(self.start_s + due.at_s - env.now) | self._wake

    def _wake_watch(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    # ------------------------------------------------------------------------------- dispatch

    def _dispatch(self, index: int) -> None:
        step = self.steps[index]
        cue = step.cue
        if cue.symptom is not None:
            step.status = "recorded"
            self.events.append(ClinicalRecord(cue.at_s, cue.device_id, "patient_symptom", cue.symptom, cue.severity))
            # the clinic records what the patient reports: the twin shows it as a patient_report alert
            priority = SYMPTOM_PRIORITY[cue.severity] if cue.severity is not None else Priority.MEDIUM
            self._now_s = cue.at_s  # the alert is raised now, at the cue's simulation time (not an estimate)
            try:
                self.service.patient_report(cue.device_id, PatientReport(self.service.clock(), cue.symptom, priority))
            finally:
                self._now_s = None
            self._on_change(self, "patient_symptom")
            return
        for action in cue.actions:
            if not self._send(step, action):
                break
        self._deliver()
        self._on_change(self, "step")

    def _send(self, step: _StepState, action: Action) -> bool:
        try:
            tracked = self.service.send_command(step.cue.device_id, action, self.actor)
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

    # ---------------------------------------------------------------------------- observation

    def on_transition(self, transition: Transition) -> None:
        """A transition the twin journaled (registered on ``TwinService.transition_listeners``)."""
        if self.status.final:
            return
        at_s = self._now_s if self._now_s is not None else self._transition_time(transition) - self.start_s
        observation = AlarmObservation(at_s, transition)
        self.alarms.append(observation)
        vigil = watch_alarm(self.vigil, observation)
        if vigil is not self.vigil:
            self.vigil = vigil
            self._wake_watch()

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
                self._wake_watch()

    # --------------------------------------------------------------------------------- report

    def _step_outcome(self, step: _StepState) -> StepOutcome:
        if step.status != "pending":
            return StepOutcome(step.cue, step.status, step.reason)
        states = [self.service.commands[c] for c in step.command_ids if c in self.service.commands]
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


# ------------------------------------------------------------------------------------- headless


class HeadlessRun:
    """A headless run's parts (fleet, simulation, in-process twin, run) for as long as the ``with``
    block lasts; the twin's journal lives in a temporary directory removed on exit. Raises
    :class:`~twin.scenarios.model.ScenarioInvalid` for a scenario whose meaning is wrong."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, abort_conditions: bool = True) -> None:
        self.scenario = scenario
        self.fleet = resolve_fleet(scenario, seed=seed)
        self.timeline = expand(scenario, self.fleet.members, self.fleet.epoch)
        self._abort_conditions = abort_conditions
        self._scratch = tempfile.TemporaryDirectory(prefix="pumptwin-scenario-")
        self.journal = Journal(Path(self._scratch.name) / "journal.sqlite")
        telemetry_s = scenario.telemetry_every.total_seconds()
        self.sim = FleetSimulation(
            list(self.fleet.specs),
            epoch=self.fleet.epoch,
            seed=self.fleet.seed,
            sink=lambda *_: None,  # replaced by the in-process twin
            telemetry_interval_s=telemetry_s,
            clinic_refills=scenario.clinic_refills,
            random_faults=False,
        )
        # the twin re-evaluates its alerts on every report; its tick adds silence and expiries
        self.twin = InProcessTwin(self.sim, self.journal, tick_every_s=telemetry_s)
        epoch = self.fleet.epoch
        self.run = ScenarioRun(
            "headless",
            scenario,
            self.timeline,
            sim=self.sim,
            service=self.twin.service,
            mode="headless",
            seed=self.fleet.seed,
            started_by="headless",
            transition_time=lambda t: (t.at - epoch).total_seconds(),
            deliver=self.twin.route_commands,
            abort_conditions=abort_conditions,
        )
        self.twin.on_message = self.run.on_device_message

    def __enter__(self) -> HeadlessRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.journal.close()
        self._scratch.cleanup()

    def play(
        self, *, speed: float | None = None, on_progress: Callable[[float, float], None] | None = None
    ) -> ScenarioReport:
        """Run to the end (or the abort); ``speed`` paces it at that many times real time (default:
        as fast as possible); ``on_progress(elapsed_s, duration_s)`` is called a few hundred times."""
        run, sim = self.run, self.sim
        run.begin()
        self.twin.open_sessions(1)
        end = self.timeline.duration_s
        slice_s = max(end / PROGRESS_SLICES, self.scenario.telemetry_every.total_seconds())
        wall_start = time.monotonic()
        while not run.status.final and sim.now < end:
            self.twin.run(min(end, sim.now + slice_s))
            if on_progress is not None:
                on_progress(min(sim.now, end), end)
            if speed is not None:
                lag = wall_start + sim.now / speed - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
        return run.report()


def run_headless(
    scenario: Scenario,
    *,
    seed: int | None = None,
    speed: float | None = None,
    abort_conditions: bool = True,
    on_progress: Callable[[float, float], None] | None = None,
) -> ScenarioReport:
    """Play ``scenario`` against its own fleet, simulation and twin in this process and return the
    final report (see :class:`HeadlessRun`). ``seed`` replaces the scenario's seed."""
    with HeadlessRun(scenario, seed=seed, abort_conditions=abort_conditions) as headless:
        return headless.play(speed=speed, on_progress=on_progress)


# ----------------------------------------------------------------------------------------- live


class ScenarioRunner:
    """Live scenario runs on the simulation and twin of this process (see the module docstring).

    Built with the scenarios it offers; :meth:`attach` joins it to the running twin service and
    simulation driver (until then, starting a run is refused with ``not_attached``).
    """

    def __init__(self, library: Mapping[str, Scenario]) -> None:
        self.library = dict(library)
        self.runs: dict[str, ScenarioRun] = {}
        self.service: TwinService | None = None
        self.driver: SimDriver | None = None
        self._ids = itertools.count(1)
        self._paused_clock = False
        self._speed_before: float | None = None
        self.listeners: list[Callable[[ScenarioRun, str], None]] = []
        """Called with each live run and the event (``started``, ``paused``, ``resumed``,
        ``completed``, ``aborted``, ``patient_symptom``), after the run changed."""

    def attach(self, service: TwinService, driver: SimDriver) -> None:
        """Join the twin and the driver; observe what the simulated pumps publish from now on."""
        self.service = service
        self.driver = driver
        forward = driver.sim.sink

        def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
            forward(device, outgoing, t)
            run = self.active
            if run is not None:
                run.on_device_message(device, outgoing, t)

        driver.sim.sink = sink

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
        for twin in self.service.twins.values():
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
            raise ScenarioRefused("unknown_scenario", f"no scenario {name!r}")
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
            sim=sim,
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

    def abort(self, run_id: str, reason: str, *, by: str) -> ScenarioRun:
        """The kill switch (see :meth:`ScenarioRun.abort`); the clock runs again if the run had stopped it."""
        run = self.get(run_id)
        run.abort(reason, by=by)
        self._release_clock()
        return run

    def _release_clock(self) -> None:
        if self._paused_clock and self.driver is not None:
            self.driver.resume()
        self._paused_clock = False

    def _transition_time(self, transition: Transition) -> float:
        """A transition's simulation second: the twin's estimate of the device's clock at that wall time."""
        assert self.service is not None
        assert self.driver is not None
        sim = self.driver.sim
        twin = self.service.twins.get(transition.device_id)
        device_time = twin.device_now(transition.at) if twin is not None else None
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
        self.service.bus.publish("scenario", body)


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
    devices = list(runner.driver.sim.devices)
    service = runner.service

    def mirrored() -> bool:
        return all((t := service.twins.get(d)) is not None and t.reported is not None for d in devices)

    subscription = service.bus.subscribe()  # every device change is published on the bus
    try:
        async with asyncio.timeout(timeout_s):
            while not mirrored():
                event = await subscription.next()
                if event.kind == "resync":  # fell behind: the bus closed this subscription
                    subscription = service.bus.subscribe()
    except TimeoutError:
        log.warning("scenario %s not started: the twin did not mirror every pump within %g s", name, timeout_s)
        return None
    finally:
        service.bus.unsubscribe(subscription)
    try:
        return runner.start(name, speed=speed, started_by=started_by)
    except ScenarioRefused as exc:
        log.warning("scenario %s not started: %s", name, exc)
        return None
