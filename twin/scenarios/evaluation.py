"""What a run observed, measured against what its scenario expected; when a run must stop.

Observations are plain records in simulation seconds after the start of the run (``at_s``):

* :class:`AlarmObservation` — one alarm transition the twin journaled (device alarms and the
  twin's own alerts; staff actions too), kept whole so that flood counting can reuse
  :func:`twin.alarms.load.alarm_load`;
* :class:`DoseSample` — what the simulator says reached the patient, at each telemetry report;
* :class:`ClinicalRecord` — something clinical: the pump's events (delivery stopped, refill,
  pocket fill, stall recovery...) and the symptoms a scenario makes a patient report.

:func:`evaluate` turns them into one :class:`ExpectationResult` per expected outcome (met, missed,
or pending while its window is open); :func:`watch_alarm`, :func:`watch_dose` and
:func:`abort_due` fold the observations into a :class:`Vigil` and say when an abort condition
fires. Same observations, same answers: the report of a headless run is a function of the
scenario and its seed.

Pure: no I/O, no clock (``now_s`` is an argument).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal

from twin.alarms.lifecycle import AlarmState, Transition, TransitionEvent
from twin.alarms.load import alarm_load
from twin.contract.alarms import PRIORITY_RANK, Priority
from twin.scenarios.model import Severity, format_duration
from twin.scenarios.timeline import AbortRule, Cue, ExpectedOutcome, Timeline

NO_DELIVERY_DOSE_MG_PER_DAY: Final = 1e-9
"""A dose at or below this reaches nobody (the truth is exactly zero when nothing flows)."""

_RAISES: Final = frozenset({TransitionEvent.RAISE, TransitionEvent.RERAISE})
_ASKING: Final = frozenset({AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.CLEARED_UNACKNOWLEDGED})


class RunStatus(StrEnum):
    """Where a run stands. ``completed`` and ``aborted`` are final."""

    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"

    @property
    def final(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.ABORTED)


ResultStatus = Literal["met", "missed", "pending"]
StepStatus = Literal["scheduled", "recorded", "pending", "applied", "rejected", "timed_out", "refused", "dropped"]


@dataclass(frozen=True, slots=True)
class AlarmObservation:
    at_s: float
    transition: Transition


@dataclass(frozen=True, slots=True)
class DoseSample:
    at_s: float
    device_id: str
    actual_dose_mg_per_day: float


@dataclass(frozen=True, slots=True)
class ClinicalRecord:
    """A clinical event of a pump (``kind`` as the pump model names it) or a patient symptom
    (``kind == "patient_symptom"``, with its ``severity``)."""

    at_s: float
    device_id: str
    kind: str
    detail: str = ""
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class ExpectationResult:
    expected: ExpectedOutcome
    status: ResultStatus
    observed_at_s: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What became of one cue: ``scheduled`` (not yet due), ``recorded`` (a symptom), ``pending``
    (sent, no answer yet), ``applied``/``rejected``/``timed_out`` (the device's answer, via the
    twin), ``refused`` (the twin would not send it: a real pump, an unknown one), ``dropped``
    (the run was aborted before it was due)."""

    cue: Cue
    status: StepStatus
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    """A run's outcome so far (or final, when ``status`` is final). Times are seconds after the
    start of the run (``started_at``, simulation time)."""

    scenario: str
    title: str
    seed: int
    mode: Literal["headless", "live"]
    status: RunStatus
    started_at: datetime
    elapsed_s: float
    duration_s: float
    expectations: tuple[ExpectationResult, ...]
    steps: tuple[StepOutcome, ...]
    events: tuple[ClinicalRecord, ...]
    alarms: tuple[AlarmObservation, ...]
    aborted_reason: str | None = None
    aborted_by: str | None = None

    @property
    def missed(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.expectations if r.status == "missed")

    @property
    def all_met(self) -> bool:
        return all(r.status == "met" for r in self.expectations)


# ------------------------------------------------------------------------------------ evaluation


def evaluate(
    timeline: Timeline,
    alarms: Sequence[AlarmObservation],
    *,
    now_s: float,
    finished: bool,
    started_at: datetime,
) -> tuple[ExpectationResult, ...]:
    """Every expected outcome of ``timeline`` against the observed ``alarms``, at ``now_s``.

    An expected alarm is met by its first matching transition in the window (``raise`` and
    ``reraise`` count as raises, ``clear`` as a clear; shelved or not); it is missed once the window
    has passed (or the run is ``finished``) without one. A forbidden alarm is missed by the first
    matching transition, met once the window has passed or the run is finished. A flood is met when
    one starts at the site within the window (counted over every annunciation of the site since the
    run started, on simulation time)."""
    return tuple(_one(e, alarms, now_s, finished, started_at) for e in timeline.expectations)


def _matches(expected: ExpectedOutcome, observation: AlarmObservation) -> bool:
    t = observation.transition
    if t.code != expected.code or t.device_id not in expected.device_ids:
        return False
    if not expected.window_start_s <= observation.at_s <= expected.window_end_s:
        return False
    if expected.event == "raise":
        return t.event in _RAISES
    return t.event is TransitionEvent.CLEAR


def _one(
    expected: ExpectedOutcome,
    alarms: Sequence[AlarmObservation],
    now_s: float,
    finished: bool,
    started_at: datetime,
) -> ExpectationResult:
    closed = finished or now_s >= expected.window_end_s
    if expected.kind == "alarm_flood":
        return _flood(expected, alarms, now_s, closed, started_at)
    hit = next((a for a in alarms if _matches(expected, a)), None)
    if expected.kind == "alarm":
        if hit is not None:
            delay = hit.at_s - expected.window_start_s
            return ExpectationResult(expected, "met", hit.at_s, f"{format_duration(delay)} after {expected.after}")
        if closed:
            return ExpectationResult(expected, "missed", None, "not observed in the window")
        return ExpectationResult(expected, "pending", None, "window open")
    if hit is not None:
        return ExpectationResult(
            expected,
            "missed",
            hit.at_s,
            f"{hit.transition.code} on {hit.transition.device_id} ({hit.transition.event})",
        )
    if closed:
        early = finished and now_s < expected.window_end_s
        return ExpectationResult(
            expected, "met", None, "not observed (the run ended before the window closed)" if early else "not observed"
        )
    return ExpectationResult(expected, "pending", None, "window open")


def _flood(
    expected: ExpectedOutcome,
    alarms: Sequence[AlarmObservation],
    now_s: float,
    closed: bool,
    started_at: datetime,
) -> ExpectationResult:
    site = [
        replace(a.transition, at=started_at + timedelta(seconds=a.at_s))
        for a in alarms
        if a.transition.site == expected.site and a.at_s <= now_s
    ]
    now = started_at + timedelta(seconds=max(now_s, 1.0))
    loads = alarm_load(site, now=now, window=now - started_at + timedelta(seconds=1))
    load = loads.get(expected.site or "")
    for flood in load.floods if load is not None else ():
        at_s = (flood.start - started_at).total_seconds()
        if expected.window_start_s <= at_s <= expected.window_end_s:
            return ExpectationResult(
                expected, "met", at_s, f"{flood.count} alarms, peak {flood.peak_per_10_min} in 10 min"
            )
    if closed:
        peak = load.peak_per_10_min if load is not None else 0
        return ExpectationResult(expected, "missed", None, f"no flood; peak {peak} alarms in 10 min")
    return ExpectationResult(expected, "pending", None, "window open")


# --------------------------------------------------------------------------------- abort vigil


@dataclass(frozen=True, slots=True)
class Vigil:
    """What abort conditions watch: alarms asking for acknowledgement (key -> since, priority,
    device) and patients receiving nothing (device -> since). Replace, never mutate."""

    unacknowledged: Mapping[str, tuple[float, Priority, str]] = field(default_factory=dict)
    dry_since: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AbortDue:
    """An abort condition fires at ``at_s`` (possibly in the past: then at once)."""

    at_s: float
    rule: AbortRule
    reason: str


def watch_alarm(vigil: Vigil, observation: AlarmObservation) -> Vigil:
    """Fold one alarm transition in. An alarm asks for acknowledgement from the transition that made it
    ``active_unacknowledged`` or ``cleared_unacknowledged`` until one that leaves those states
    (acknowledged, shelved, out of service, back to normal); a re-raise keeps its first time."""
    t = observation.transition
    asking = dict(vigil.unacknowledged)
    if t.to_state in _ASKING:
        since = asking[t.key][0] if t.key in asking else observation.at_s
        asking[t.key] = (since, t.priority, t.device_id)
    elif t.key in asking:
        del asking[t.key]
    else:
        return vigil
    return replace(vigil, unacknowledged=asking)


def watch_dose(vigil: Vigil, sample: DoseSample) -> Vigil:
    """Fold one dose sample in; returns ``vigil`` itself when nothing changed (cheap to test)."""
    dry = sample.actual_dose_mg_per_day <= NO_DELIVERY_DOSE_MG_PER_DAY
    if dry == (sample.device_id in vigil.dry_since):
        return vigil
    since = dict(vigil.dry_since)
    if dry:
        since[sample.device_id] = sample.at_s
    else:
        del since[sample.device_id]
    return replace(vigil, dry_since=since)


def abort_due(rules: Sequence[AbortRule], vigil: Vigil) -> AbortDue | None:
    """The earliest time an abort condition fires if nothing changes (ties: the first rule and key
    in order), or None if none will."""
    best: AbortDue | None = None
    for rule in rules:
        limit = rule.longer_than_s
        if rule.kind == "unacknowledged_alarm":
            assert rule.priority is not None
            floor = PRIORITY_RANK[rule.priority]
            for key, (since, priority, device) in sorted(vigil.unacknowledged.items()):
                if device in rule.device_ids and PRIORITY_RANK[priority] >= floor:
                    candidate = AbortDue(
                        since + limit,
                        rule,
                        f"{priority.value}-priority alarm {key} unacknowledged for longer than {format_duration(limit)}",
                    )
                    best = candidate if best is None or candidate.at_s < best.at_s else best
        else:
            for device, since in sorted(vigil.dry_since.items()):
                if device in rule.device_ids:
                    candidate = AbortDue(
                        since + limit,
                        rule,
                        f"no drug reached {device}'s patient for longer than {format_duration(limit)}",
                    )
                    best = candidate if best is None or candidate.at_s < best.at_s else best
    return best


# ---------------------------------------------------------------------------------------- JSON


def report_json(report: ScenarioReport) -> dict[str, Any]:
    """The report as JSON-ready data (what the API returns and ``scenario run --json`` prints)."""
    return {
        "scenario": report.scenario,
        "title": report.title,
        "seed": report.seed,
        "mode": report.mode,
        "status": report.status.value,
        "started_at": report.started_at.isoformat(),
        "elapsed_s": round(report.elapsed_s, 3),
        "duration_s": report.duration_s,
        "aborted_reason": report.aborted_reason,
        "aborted_by": report.aborted_by,
        "all_met": report.all_met,
        "expectations": [
            {
                "index": r.expected.index,
                "kind": r.expected.kind,
                "description": r.expected.description,
                "code": r.expected.code,
                "event": r.expected.event,
                "device_ids": list(r.expected.device_ids),
                "site": r.expected.site,
                "after": r.expected.after,
                "window_start_s": r.expected.window_start_s,
                "window_end_s": r.expected.window_end_s,
                "responses": [x.value for x in r.expected.responses],
                "note": r.expected.note,
                "status": r.status,
                "observed_at_s": None if r.observed_at_s is None else round(r.observed_at_s, 3),
                "detail": r.detail,
            }
            for r in report.expectations
        ],
        "steps": [
            {
                "step": s.cue.step_id,
                "kind": s.cue.step,
                "at_s": s.cue.at_s,
                "device_id": s.cue.device_id,
                "actions": [a.type for a in s.cue.actions],
                "note": s.cue.note,
                "symptom": s.cue.symptom,
                "severity": s.cue.severity.value if s.cue.severity else None,
                "responses": [x.value for x in s.cue.responses],
                "status": s.status,
                "reason": s.reason,
            }
            for s in report.steps
        ],
        "events": [
            {
                "at_s": round(e.at_s, 3),
                "device_id": e.device_id,
                "kind": e.kind,
                "detail": e.detail,
                "severity": e.severity.value if e.severity else None,
            }
            for e in report.events
        ],
        "alarms": [
            {
                "at_s": round(a.at_s, 3),
                "key": a.transition.key,
                "device_id": a.transition.device_id,
                "site": a.transition.site,
                "code": a.transition.code,
                "priority": a.transition.priority.value,
                "event": a.transition.event.value,
                "to_state": a.transition.to_state.value,
                "actor": a.transition.actor,
            }
            for a in report.alarms
        ],
    }
