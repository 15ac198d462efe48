"""Scoring a training session: how each trainee answered each alarm.

A training session plays a fault scenario live (``twin.scenarios.runner``) while trainees work
the console. What they did is already in the twin's journal: every acknowledgement and silence
is an alarm transition with its actor, every response action a row of ``alarm_response``. This
module turns those records, the scenario's expectations and the session's window into a report.
It is pure: no I/O and no clock (``now`` is an argument), so a report is a function of what was
journaled, and the same journal always scores the same.

**What is scored.** Every occurrence of an alarm (a ``raise`` or ``reraise`` transition) on the
session's pumps (:func:`scored_devices`: those the scenario acts on or names) between its start
and its end, device alarms and twin alerts alike: staff should
answer every alarm, not only the ones the scenario set out to cause. Each occurrence is scored
once per trainee. A trainee's acts count for the latest occurrence of that alarm raised before
the act, inside the session's window.

**Per occurrence and trainee:**

* ``time_to_ack_s``: seconds from the raise to *this trainee's* acknowledgement. Trainees of one
  session share the fleet as a ward team does: the first acknowledgement is the team's (the alarm
  then needs no other), and only its author is credited with it. ``acknowledged_by`` says who did.
* ``responses`` (the response actions this trainee recorded) against ``expected`` (the scenario's
  :class:`~twin.scenarios.model.StaffResponse` list for this alarm on this pump, fixed when the
  session starts: :func:`expected_responses`). A response action
  satisfies the staff responses :data:`SATISFIES` lists: *request a rotor study* satisfies
  ``rotor_study`` and ``xray``; *schedule pump replacement* satisfies ``replace_pump`` too.
* ``verdict``: ``correct``: a response matched one that is expected (when the scenario expects
  none: the trainee acknowledged); ``incorrect``: the trainee acted but nothing matched;
  ``missed``: the session ended and the trainee did nothing about it; ``pending``: the session
  still runs and nothing matched yet.
* ``score`` (0..1): half for the acknowledgement (full within :data:`ACK_TARGET_S` of the raise
  for the alarm's priority, falling linearly to nothing at four times that), half for the
  response: 1 if one matched, less :data:`STRAY_RESPONSE_COST` for every other action recorded
  that matches nothing expected (so ordering every study in the list is not a way to be right),
  never below 0; when the scenario expects none, the acknowledgement's credit. A missed alarm
  scores 0.

**Per trainee:** counts of each verdict, the median time to acknowledge, and the mean row score
as 0..100.

Times are on the twin's clock (wall time in a live session): staff respond in real time, whatever
the simulation's speed.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

from twin.alarms.lifecycle import Transition, TransitionEvent, alarm_key
from twin.alarms.responses import AlarmResponse, ResponseAction
from twin.contract.alarms import Priority
from twin.scenarios.model import StaffResponse
from twin.scenarios.timeline import Timeline

S = StaffResponse

SATISFIES: Final[dict[ResponseAction, frozenset[StaffResponse]]] = {
    ResponseAction.REFILL: frozenset({S.REFILL}),
    ResponseAction.REPROGRAM: frozenset({S.REPROGRAM, S.REDUCE_RATE, S.STOP_INFUSION}),
    ResponseAction.SCHEDULE_REFILL: frozenset({S.SCHEDULE_REFILL}),
    ResponseAction.INTERROGATE: frozenset({S.INTERROGATE, S.REINTERROGATE}),
    ResponseAction.ROTOR_STUDY: frozenset({S.ROTOR_STUDY, S.XRAY}),
    ResponseAction.DYE_STUDY: frozenset({S.DYE_STUDY, S.SIDE_PORT_ASPIRATION, S.IMAGING, S.XRAY}),
    ResponseAction.ASSESS_WITHDRAWAL: frozenset({S.WITHDRAWAL_MANAGEMENT, S.OBSERVE_PATIENT}),
    ResponseAction.BRIDGE_THERAPY: frozenset({S.BRIDGE_THERAPY}),
    ResponseAction.ESCALATE_PHYSICIAN: frozenset({S.ESCALATE_PHYSICIAN}),
    ResponseAction.SCHEDULE_REPLACEMENT: frozenset({S.SCHEDULE_REPLACEMENT, S.REPLACE_PUMP}),
    ResponseAction.CONFIRM_APPOINTMENT: frozenset({S.SCHEDULE_REFILL}),
    ResponseAction.CHECK_CONNECTIVITY: frozenset({S.CHECK_CONNECTIVITY}),
    ResponseAction.VERIFY_PRESCRIPTION: frozenset({S.VERIFY_PRESCRIPTION}),
    ResponseAction.REVERSE_OPIOID: frozenset({S.NALOXONE, S.AIRWAY_SUPPORT}),
    ResponseAction.ASPIRATE_POCKET: frozenset({S.ASPIRATE_POCKET, S.CHECK_NEEDLE_PLACEMENT}),
    ResponseAction.OBSERVE_PATIENT: frozenset({S.OBSERVE_PATIENT}),
    ResponseAction.OTHER: frozenset(),
}
"""Which expected staff responses each console response action counts as."""

ACK_TARGET_S: Final[dict[Priority, float]] = {Priority.HIGH: 60.0, Priority.MEDIUM: 300.0, Priority.LOW: 900.0}
"""Full credit for an acknowledgement within this many seconds of the raise (wall time)."""

ACK_CREDIT_ENDS: Final = 4.0
"""No credit for an acknowledgement later than this many times the target."""

ActKind = Literal["acknowledge", "silence", "response"]

STRAY_RESPONSE_COST: Final = 0.25
"""Taken off the response's credit for each recorded action that matches nothing expected."""

_RAISES: Final = frozenset({TransitionEvent.RAISE, TransitionEvent.RERAISE})
_STAFF_ACTS: Final[dict[TransitionEvent, ActKind]] = {
    TransitionEvent.ACKNOWLEDGE: "acknowledge",
    TransitionEvent.SILENCE: "silence",
}


class Verdict(StrEnum):
    CORRECT = "correct"
    INCORRECT = "incorrect"
    MISSED = "missed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One raise of one alarm on a session pump."""

    key: str
    device_id: str
    site: str
    code: str
    priority: Priority
    raised_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class Act:
    """One thing a trainee did about an alarm: an acknowledgement, a silence or a response action."""

    trainee: str
    key: str
    device_id: str
    code: str
    at: datetime
    kind: ActKind
    action: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmScore:
    """One occurrence as one trainee answered it (see the module docstring)."""

    trainee: str
    occurrence: Occurrence
    expected: tuple[str, ...]
    acknowledged_by: str | None
    time_to_ack_s: float | None
    time_to_respond_s: float | None
    responses: tuple[str, ...]
    matched: tuple[str, ...]
    verdict: Verdict
    score: float


@dataclass(frozen=True, slots=True)
class TraineeSummary:
    trainee: str
    alarms: int
    acknowledged: int
    correct: int
    incorrect: int
    missed: int
    pending: int
    median_time_to_ack_s: float | None
    score: float
    """Mean row score, 0..100 (0 with no alarms)."""


@dataclass(frozen=True, slots=True)
class TrainingScore:
    trainees: tuple[TraineeSummary, ...]
    alarms: tuple[AlarmScore, ...]
    actions: tuple[Act, ...] = field(default=())


# ------------------------------------------------------------------------------------- inputs


def expected_responses(timeline: Timeline) -> dict[str, tuple[str, ...]]:
    """Alarm key (pump and code) -> the staff responses the scenario expects for it, from the
    run's resolved ``alarm`` expectations (in the order first named; the union when several
    expectations name the same alarm). Flood expectations (``triage_by_priority``,
    ``find_common_cause``) are about how a team works a flood, not one alarm: not scored here."""
    found: dict[str, list[str]] = {}
    for expectation in timeline.expectations:
        if expectation.kind != "alarm" or expectation.event != "raise" or expectation.code is None:
            continue
        for device_id in expectation.device_ids:
            names = found.setdefault(alarm_key(timeline.sites[device_id], device_id, expectation.code), [])
            names.extend(r.value for r in expectation.responses if r.value not in names)
    return {key: tuple(names) for key, names in found.items() if names}


def scored_devices(timeline: Timeline) -> tuple[str, ...]:
    """The pumps a session scores: those a step acts on or an expectation names (a flood
    expectation: every pump of its site), in fleet order; every pump of the run if none are."""
    chosen = {c.device_id for c in timeline.cues}
    for expectation in timeline.expectations:
        chosen.update(expectation.device_ids)
        if expectation.site is not None:
            chosen.update(d for d, site in timeline.sites.items() if site == expectation.site)
    return tuple(d for d in timeline.device_ids if d in chosen) or timeline.device_ids


def _inside(at: datetime, start: datetime, end: datetime | None) -> bool:
    return at >= start and (end is None or at <= end)


def occurrences(
    transitions: Iterable[Transition], devices: frozenset[str], start: datetime, end: datetime | None
) -> list[Occurrence]:
    """The raises on ``devices`` inside the window, in journal order."""
    return [
        Occurrence(t.key, t.device_id, t.site, t.code, t.priority, t.at, t.version)
        for t in transitions
        if t.event in _RAISES and t.device_id in devices and _inside(t.at, start, end)
    ]


def acts(
    transitions: Iterable[Transition],
    responses: Iterable[AlarmResponse],
    trainees: frozenset[str],
    devices: frozenset[str],
    start: datetime,
    end: datetime | None,
) -> list[Act]:
    """What the trainees did on ``devices`` inside the window, in time order."""
    found = [
        Act(t.actor, t.key, t.device_id, t.code, t.at, kind, kind, t.comment)
        for t in transitions
        if (kind := _STAFF_ACTS.get(t.event)) is not None
        and t.actor in trainees
        and t.device_id in devices
        and _inside(t.at, start, end)
    ]
    found.extend(
        Act(r.actor, r.key, r.device_id, r.code, r.at, "response", r.action, r.note)
        for r in responses
        if r.actor in trainees and r.device_id in devices and _inside(r.at, start, end)
    )
    found.sort(key=lambda a: a.at)
    return found


def satisfied(action: str) -> frozenset[StaffResponse]:
    """The staff responses a response action (by name) counts as; none for an unknown name."""
    try:
        return SATISFIES[ResponseAction(action)]
    except ValueError:
        return frozenset()


# ------------------------------------------------------------------------------------ scoring


def ack_credit(priority: Priority, seconds: float | None) -> float:
    """1 within the priority's target, falling linearly to 0 at :data:`ACK_CREDIT_ENDS` x target."""
    if seconds is None:
        return 0.0
    target = ACK_TARGET_S[priority]
    if seconds <= target:
        return 1.0
    return max(0.0, 1.0 - (seconds - target) / ((ACK_CREDIT_ENDS - 1.0) * target))


def _owner(occ: list[Occurrence], act: Act) -> Occurrence | None:
    """The latest occurrence of the act's alarm raised at or before the act."""
    owner = None
    for o in occ:
        if o.key == act.key and o.raised_at <= act.at:
            owner = o
    return owner


def score(
    occ: Sequence[Occurrence],
    done: Sequence[Act],
    trainees: Sequence[str],
    expected: Mapping[str, tuple[str, ...]],
    *,
    ended: bool,
) -> TrainingScore:
    """Score every occurrence for every trainee (see the module docstring)."""
    ordered = sorted(occ, key=lambda o: (o.raised_at, o.key, o.version))
    by_occurrence: dict[Occurrence, list[Act]] = {o: [] for o in ordered}
    for act in done:
        owner = _owner(ordered, act)
        if owner is not None:
            by_occurrence[owner].append(act)
    rows: list[AlarmScore] = []
    for o in ordered:
        answered = by_occurrence[o]
        first_ack = next((a for a in answered if a.kind == "acknowledge"), None)
        wanted = expected.get(o.key, ())
        for trainee in trainees:
            rows.append(_row(trainee, o, [a for a in answered if a.trainee == trainee], first_ack, wanted, ended))
    summaries = tuple(_summary(t, [r for r in rows if r.trainee == t]) for t in trainees)
    return TrainingScore(summaries, tuple(rows), tuple(done))


def _row(
    trainee: str,
    o: Occurrence,
    mine: list[Act],
    first_ack: Act | None,
    wanted: tuple[str, ...],
    ended: bool,
) -> AlarmScore:
    own_ack = first_ack if first_ack is not None and first_ack.trainee == trainee else None
    time_to_ack = (own_ack.at - o.raised_at).total_seconds() if own_ack is not None else None
    responses = [a for a in mine if a.kind == "response"]
    names = tuple(dict.fromkeys(a.action for a in responses))
    covered: set[str] = set()
    stray: set[str] = set()
    matched_at: datetime | None = None
    for a in responses:
        hit = {s.value for s in satisfied(a.action)} & set(wanted)
        if hit and matched_at is None:
            matched_at = a.at
        if not hit:
            stray.add(a.action)
        covered |= hit
    matched = tuple(w for w in wanted if w in covered)
    credit = ack_credit(o.priority, time_to_ack)
    if not mine:
        verdict = Verdict.MISSED if ended else Verdict.PENDING
        points = 0.0
    elif wanted:
        verdict = Verdict.CORRECT if matched else (Verdict.INCORRECT if ended else Verdict.PENDING)
        answer = max(0.0, (1.0 if matched else 0.0) - STRAY_RESPONSE_COST * len(stray))
        points = 0.5 * credit + 0.5 * answer
    else:
        verdict = Verdict.CORRECT if own_ack is not None else (Verdict.INCORRECT if ended else Verdict.PENDING)
        points = credit
    first_response = responses[0].at if responses else None
    answered_at = matched_at or first_response
    return AlarmScore(
        trainee=trainee,
        occurrence=o,
        expected=wanted,
        acknowledged_by=first_ack.trainee if first_ack is not None else None,
        time_to_ack_s=time_to_ack,
        time_to_respond_s=(answered_at - o.raised_at).total_seconds() if answered_at is not None else None,
        responses=names,
        matched=matched,
        verdict=verdict,
        score=round(points, 4),
    )


def _summary(trainee: str, rows: list[AlarmScore]) -> TraineeSummary:
    acks = [r.time_to_ack_s for r in rows if r.time_to_ack_s is not None]
    count = {v: sum(1 for r in rows if r.verdict is v) for v in Verdict}
    return TraineeSummary(
        trainee=trainee,
        alarms=len(rows),
        acknowledged=len(acks),
        correct=count[Verdict.CORRECT],
        incorrect=count[Verdict.INCORRECT],
        missed=count[Verdict.MISSED],
        pending=count[Verdict.PENDING],
        median_time_to_ack_s=statistics.median(acks) if acks else None,
        score=round(100.0 * sum(r.score for r in rows) / len(rows), 1) if rows else 0.0,
    )


__all__ = [
    "ACK_TARGET_S",
    "SATISFIES",
    "STRAY_RESPONSE_COST",
    "Act",
    "AlarmScore",
    "Occurrence",
    "TraineeSummary",
    "TrainingScore",
    "Verdict",
    "ack_credit",
    "acts",
    "expected_responses",
    "occurrences",
    "satisfied",
    "score",
    "scored_devices",
]
