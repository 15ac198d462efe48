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
  session starts: :func:`expected_responses`; a patient report's are its symptom's). A response
  action satisfies the staff responses :data:`SATISFIES` lists, each its own: a plain X-ray, a
  rotor study and a dye study are three different examinations and count separately (a rotor
  study is not an X-ray of the catheter); *schedule pump replacement* satisfies ``replace_pump``.
* ``in_order``: the share of pairs of matched troubleshooting steps done in the order of
  DOMAIN-RESEARCH §4.4 (:data:`TROUBLESHOOTING_ORDER`: interrogate, bridge, rotor study, side-port
  aspiration, dye study, replace the drug, bridge bolus, re-titrate); ``None`` with fewer than two.
* ``verdict``: ``correct``: a response matched one that is expected (when the scenario expects
  none: the trainee acknowledged); ``incorrect``: the trainee acted but nothing matched;
  ``missed``: the session ended and the trainee did nothing about it; ``pending``: the session
  still runs and nothing matched yet.
* ``score`` (0..1): half for the acknowledgement (full within :data:`ACK_TARGET_S` of the raise
  for the alarm's priority, falling linearly to nothing at four times that), half for the
  response: :data:`ANY_MATCH_CREDIT` when one matched, plus :data:`COVERAGE_CREDIT` times the
  share of the expected responses matched, plus :data:`ORDER_CREDIT` times ``in_order`` (full when
  there is nothing to order), less :data:`STRAY_RESPONSE_COST` for every other action recorded that
  matches nothing expected (so ordering every study in the list is not a way to be right), never
  below 0; when the scenario expects none, the acknowledgement's credit. A missed alarm scores 0.

**Triage** (``triage_by_priority``, expected of an alarm): the trainee acted on this alarm and,
between its raise and its answer (the team's acknowledgement or the trainee's own first act, which
comes first), did nothing about an alarm of lower priority. No response action claims it: the
order of the trainee's acts does.

**Floods** (an ``alarm_flood`` expectation: ISA-18.2's more than 10 annunciations within 10
minutes at a site, :func:`floods`, on the twin's clock). Each flood the session saw at such a site
is one more row per trainee (key ``flood:<site>``, code ``alarm_flood``), scored on the trainee's
acts on the flood's alarms (those raised in it or in the 10 minutes before it began):
``find_common_cause`` is met by a *report a common cause* response on one of them,
``check_connectivity`` (and any other staff response) by a response action that satisfies it,
``triage_by_priority`` when the trainee acted during the flood and never acted on a lower-priority
alarm while a higher one waited (raised, acknowledged by nobody, not yet acted on by the trainee).
Its ``score`` is the share of the flood's expected responses met; its verdict follows the rules
above.

**Escalation** (``twin.alarms.escalation``): each row says whether and how far its occurrence was
escalated because nobody acknowledged it in time (``escalated_at``: the first tier's deadline;
``escalation_level``), and the session's :class:`TeamSummary` counts the alarms the team
acknowledged before any escalation. The row's score does not change: the acknowledgement's credit
already falls with the time it took.

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

from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import Transition, TransitionEvent, alarm_key
from twin.alarms.load import RATE_INTERVAL, alarm_load
from twin.alarms.responses import AlarmResponse, ResponseAction
from twin.contract.alarms import PRIORITY_RANK, Priority
from twin.scenarios.model import StaffResponse
from twin.scenarios.timeline import Timeline

S = StaffResponse

SATISFIES: Final[dict[ResponseAction, frozenset[StaffResponse]]] = {
    ResponseAction.INTERROGATE: frozenset({S.INTERROGATE, S.REINTERROGATE}),
    ResponseAction.BRIDGE_THERAPY: frozenset({S.BRIDGE_THERAPY}),
    ResponseAction.ROTOR_STUDY: frozenset({S.ROTOR_STUDY}),
    ResponseAction.XRAY: frozenset({S.XRAY}),
    ResponseAction.SIDE_PORT_ASPIRATION: frozenset({S.SIDE_PORT_ASPIRATION}),
    ResponseAction.DYE_STUDY: frozenset({S.DYE_STUDY}),
    ResponseAction.IMAGING: frozenset({S.IMAGING}),
    ResponseAction.REPLACE_DRUG: frozenset({S.REPLACE_DRUG}),
    ResponseAction.BRIDGE_BOLUS: frozenset({S.BRIDGE_BOLUS}),
    ResponseAction.REFILL: frozenset({S.REFILL}),
    ResponseAction.REPROGRAM: frozenset({S.REPROGRAM, S.REDUCE_RATE}),
    ResponseAction.STOP_PUMP: frozenset({S.STOP_INFUSION}),
    ResponseAction.EMPTY_PUMP: frozenset({S.EMPTY_PUMP}),
    ResponseAction.SCHEDULE_REFILL: frozenset({S.SCHEDULE_REFILL}),
    ResponseAction.CHECK_NEEDLE: frozenset({S.CHECK_NEEDLE_PLACEMENT}),
    ResponseAction.ASSESS_WITHDRAWAL: frozenset({S.WITHDRAWAL_MANAGEMENT, S.OBSERVE_PATIENT}),
    ResponseAction.ESCALATE_PHYSICIAN: frozenset({S.ESCALATE_PHYSICIAN}),
    ResponseAction.CATHETER_REVISION: frozenset({S.CATHETER_REVISION}),
    ResponseAction.CONTACT_MANUFACTURER: frozenset({S.CONTACT_MANUFACTURER}),
    ResponseAction.SCHEDULE_REPLACEMENT: frozenset({S.SCHEDULE_REPLACEMENT, S.REPLACE_PUMP}),
    ResponseAction.CONFIRM_APPOINTMENT: frozenset({S.SCHEDULE_REFILL}),
    ResponseAction.CHECK_CONNECTIVITY: frozenset({S.CHECK_CONNECTIVITY}),
    ResponseAction.VERIFY_PRESCRIPTION: frozenset({S.VERIFY_PRESCRIPTION}),
    ResponseAction.REVERSE_OPIOID: frozenset({S.NALOXONE, S.AIRWAY_SUPPORT}),
    ResponseAction.ASPIRATE_POCKET: frozenset({S.ASPIRATE_POCKET}),
    ResponseAction.OBSERVE_PATIENT: frozenset({S.OBSERVE_PATIENT}),
    ResponseAction.REPORT_COMMON_CAUSE: frozenset({S.FIND_COMMON_CAUSE}),
    ResponseAction.OTHER: frozenset(),
}
"""Which expected staff responses each console response action counts as (each examination its own)."""

TROUBLESHOOTING_ORDER: Final[tuple[StaffResponse, ...]] = (
    S.INTERROGATE,
    S.BRIDGE_THERAPY,
    S.ROTOR_STUDY,
    S.SIDE_PORT_ASPIRATION,
    S.DYE_STUDY,
    S.REPLACE_DRUG,
    S.BRIDGE_BOLUS,
    S.REPROGRAM,
)
"""The troubleshooting workflow used in practice, in its order (DOMAIN-RESEARCH §4.4 after [V-S28,
S29, S48]; re-titration is a reprogramming)."""

ANY_MATCH_CREDIT: Final = 0.5
"""Share of the response's credit for doing one thing that was expected."""

COVERAGE_CREDIT: Final = 0.3
"""...for the share of the expected responses done (each examination credited on its own)."""

ORDER_CREDIT: Final = 0.2
"""...for doing the troubleshooting steps in the §4.4 order."""

ACK_TARGET_S: Final[dict[Priority, float]] = {Priority.HIGH: 60.0, Priority.MEDIUM: 300.0, Priority.LOW: 900.0}
"""Full credit for an acknowledgement within this many seconds of the raise (wall time)."""

ACK_CREDIT_ENDS: Final = 4.0
"""No credit for an acknowledgement later than this many times the target."""

ActKind = Literal["acknowledge", "silence", "response"]

PATIENT_REPORT: Final = "patient_report"
"""The twin alert a recorded symptom becomes (``twin.mirror.alerts.TwinAlertCode.PATIENT_REPORT``)."""

STRAY_RESPONSE_COST: Final = 0.25
"""Taken off the response's credit for each recorded action that matches nothing expected."""

FLOOD_CODE: Final = "alarm_flood"
FLOOD_KEY_PREFIX: Final = "flood:"
"""Rows of a flood are keyed ``flood:<site>`` (a site id holds no ``:``)."""

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
class Flood:
    """An ISA-18.2 alarm flood at ``site`` from ``start`` to ``end`` (``count`` annunciations)."""

    site: str
    start: datetime
    end: datetime
    count: int


@dataclass(frozen=True, slots=True)
class AlarmScore:
    """One occurrence as one trainee answered it (see the module docstring). ``escalated_at``:
    the deadline of the first escalation tier it reached (``None``: never escalated);
    ``escalation_level``: the highest tier (0: none)."""

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
    in_order: float | None = None
    escalated_at: datetime | None = None
    escalation_level: int = 0


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
class TeamSummary:
    """The session's alarms (flood rows aside) as the team answered them: how many, how many a
    trainee acknowledged, how many of those before any escalation, and how many escalated."""

    alarms: int = 0
    acknowledged: int = 0
    acknowledged_before_escalation: int = 0
    escalated: int = 0


@dataclass(frozen=True, slots=True)
class TrainingScore:
    trainees: tuple[TraineeSummary, ...]
    alarms: tuple[AlarmScore, ...]
    actions: tuple[Act, ...] = field(default=())
    team: TeamSummary = field(default=TeamSummary())


# ------------------------------------------------------------------------------------- inputs


def expected_responses(timeline: Timeline) -> dict[str, tuple[str, ...]]:
    """Alarm key (pump and code) -> the staff responses the scenario expects for it, from the
    run's resolved ``alarm`` expectations (in the order first named; the union when several
    expectations name the same alarm); and ``flood:<site>`` -> those an ``alarm_flood``
    expectation lists (how the team works a flood at that site)."""
    found: dict[str, list[str]] = {}
    for expectation in timeline.expectations:
        if expectation.kind == "alarm_flood" and expectation.site is not None:
            names = found.setdefault(flood_key(expectation.site), [])
            names.extend(r.value for r in expectation.responses if r.value not in names)
            continue
        if expectation.kind != "alarm" or expectation.event != "raise" or expectation.code is None:
            continue
        for device_id in expectation.device_ids:
            names = found.setdefault(alarm_key(timeline.sites[device_id], device_id, expectation.code), [])
            names.extend(r.value for r in expectation.responses if r.value not in names)
    for cue in timeline.cues:  # a symptom the clinic records is a patient_report alert: its responses count
        if cue.symptom is not None and cue.responses:
            names = found.setdefault(alarm_key(timeline.sites[cue.device_id], cue.device_id, PATIENT_REPORT), [])
            names.extend(r.value for r in cue.responses if r.value not in names)
    return {key: tuple(names) for key, names in found.items() if names}


def flood_key(site: str) -> str:
    return f"{FLOOD_KEY_PREFIX}{site}"


def flood_sites(expected: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The sites whose floods a session scores (its ``flood:<site>`` keys)."""
    return tuple(k.removeprefix(FLOOD_KEY_PREFIX) for k in expected if k.startswith(FLOOD_KEY_PREFIX))


def floods(transitions: Iterable[Transition], sites: Iterable[str], start: datetime, end: datetime) -> list[Flood]:
    """The ISA-18.2 floods at ``sites`` between ``start`` and ``end`` (``end``: the session's end,
    or now while it runs), counted over every annunciation of the site (``twin.alarms.load``)."""
    wanted = frozenset(sites)
    if not wanted or end <= start:
        return []
    mine = [t for t in transitions if t.site in wanted]
    found: list[Flood] = []
    for site, load in alarm_load(mine, now=end, window=end - start).items():
        found.extend(Flood(site, f.start, f.end, f.count) for f in load.floods)
    found.sort(key=lambda f: (f.start, f.site))
    return found


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


def _owner(occ: Sequence[Occurrence], key: str, at: datetime) -> Occurrence | None:
    """The latest occurrence of alarm ``key`` raised at or before ``at``."""
    owner = None
    for o in occ:
        if o.key == key and o.raised_at <= at:
            owner = o
    return owner


@dataclass(frozen=True, slots=True)
class _Context:
    """What every row of one score is computed against."""

    occurrences: tuple[Occurrence, ...]
    owned: tuple[tuple[Act, Occurrence], ...]
    """Every act with the occurrence it answers, in time order."""
    first_ack: Mapping[Occurrence, Act]
    """The team's acknowledgement of each acknowledged occurrence."""
    expected: Mapping[str, tuple[str, ...]]
    ended: bool

    def acted_on(self, trainee: str, o: Occurrence, before: datetime) -> bool:
        return any(a.trainee == trainee and owner == o and a.at < before for a, owner in self.owned)

    def waiting_higher(self, trainee: str, act: Act, answered: Occurrence) -> bool:
        """When ``trainee`` did ``act`` (about ``answered``), was a higher-priority alarm waiting:
        raised, acknowledged by nobody yet, and not yet acted on by the trainee?"""
        rank = PRIORITY_RANK[answered.priority]
        for h in self.occurrences:
            if PRIORITY_RANK[h.priority] <= rank or h.raised_at > act.at:
                continue
            ack = self.first_ack.get(h)
            if ack is not None and ack.at <= act.at:
                continue
            if not self.acted_on(trainee, h, act.at):
                return True
        return False


def score(
    occ: Sequence[Occurrence],
    done: Sequence[Act],
    trainees: Sequence[str],
    expected: Mapping[str, tuple[str, ...]],
    *,
    ended: bool,
    escalations: Sequence[Escalation] = (),
    flood_periods: Sequence[Flood] = (),
) -> TrainingScore:
    """Score every occurrence, and every flood of ``flood_periods``, for every trainee (see the
    module docstring); ``escalations``: those recorded in the session's window."""
    ordered = tuple(sorted(occ, key=lambda o: (o.raised_at, o.key, o.version)))
    owned: list[tuple[Act, Occurrence]] = []
    by_occurrence: dict[Occurrence, list[Act]] = {o: [] for o in ordered}
    for act in done:
        owner = _owner(ordered, act.key, act.at)
        if owner is not None:
            by_occurrence[owner].append(act)
            owned.append((act, owner))
    first_ack = {
        o: ack
        for o, answered in by_occurrence.items()
        if (ack := next((a for a in answered if a.kind == "acknowledge"), None))
    }
    context = _Context(ordered, tuple(owned), first_ack, expected, ended)
    escalated: dict[Occurrence, list[Escalation]] = {}
    for e in escalations:
        owner = _owner(ordered, e.key, e.due_at)
        if owner is not None:
            escalated.setdefault(owner, []).append(e)
    rows: list[AlarmScore] = []
    for o in ordered:
        answered = by_occurrence[o]
        for trainee in trainees:
            rows.append(_row(trainee, o, [a for a in answered if a.trainee == trainee], context, escalated.get(o, [])))
    for flood in flood_periods:
        for trainee in trainees:
            rows.append(_flood_row(trainee, flood, context))
    rows.sort(key=lambda r: (r.occurrence.raised_at, r.occurrence.key, r.occurrence.version))
    summaries = tuple(_summary(t, [r for r in rows if r.trainee == t]) for t in trainees)
    return TrainingScore(summaries, tuple(rows), tuple(done), _team(ordered, first_ack, escalated))


def _team(
    ordered: Sequence[Occurrence], first_ack: Mapping[Occurrence, Act], escalated: Mapping[Occurrence, list[Escalation]]
) -> TeamSummary:
    before = 0
    for o, ack in first_ack.items():
        tiers = escalated.get(o, [])
        if not tiers or ack.at < min(e.due_at for e in tiers):
            before += 1
    return TeamSummary(
        alarms=len(ordered),
        acknowledged=len(first_ack),
        acknowledged_before_escalation=before,
        escalated=sum(1 for o in ordered if escalated.get(o)),
    )


def _triaged(trainee: str, o: Occurrence, mine: list[Act], context: _Context) -> bool:
    """``triage_by_priority`` for one alarm (see the module docstring)."""
    if not mine:
        return False
    answer = min(a.at for a in mine)
    ack = context.first_ack.get(o)
    if ack is not None and ack.at < answer:
        answer = ack.at
    return not any(
        a.trainee == trainee
        and o.raised_at <= a.at < answer
        and PRIORITY_RANK[owner.priority] < PRIORITY_RANK[o.priority]
        for a, owner in context.owned
    )


def _row(trainee: str, o: Occurrence, mine: list[Act], context: _Context, tiers: list[Escalation]) -> AlarmScore:
    first_ack = context.first_ack.get(o)
    wanted = context.expected.get(o.key, ())
    own_ack = first_ack if first_ack is not None and first_ack.trainee == trainee else None
    time_to_ack = (own_ack.at - o.raised_at).total_seconds() if own_ack is not None else None
    responses = [a for a in mine if a.kind == "response"]
    names = tuple(dict.fromkeys(a.action for a in responses))
    covered: set[str] = set()
    stray: set[str] = set()
    matched_at: datetime | None = None
    first_done: list[str] = []  # matched expected responses, in the order first done
    for a in responses:
        hit = {s.value for s in satisfied(a.action)} & set(wanted)
        if hit and matched_at is None:
            matched_at = a.at
        if not hit:
            stray.add(a.action)
        first_done.extend(sorted(h for h in hit if h not in covered))
        covered |= hit
    if S.TRIAGE_BY_PRIORITY.value in wanted and _triaged(trainee, o, mine, context):
        covered.add(S.TRIAGE_BY_PRIORITY.value)
    matched = tuple(w for w in wanted if w in covered)
    order = in_order(first_done)
    credit = ack_credit(o.priority, time_to_ack)
    ended = context.ended
    if not mine:
        verdict = Verdict.MISSED if ended else Verdict.PENDING
        points = 0.0
    elif wanted:
        verdict = Verdict.CORRECT if matched else (Verdict.INCORRECT if ended else Verdict.PENDING)
        answer = 0.0
        if matched:
            answer = ANY_MATCH_CREDIT + COVERAGE_CREDIT * len(matched) / len(wanted)
            answer += ORDER_CREDIT * (1.0 if order is None else order)
        answer = max(0.0, answer - STRAY_RESPONSE_COST * len(stray))
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
        in_order=None if order is None else round(order, 4),
        escalated_at=min(e.due_at for e in tiers) if tiers else None,
        escalation_level=max((e.level for e in tiers), default=0),
    )


def _flood_row(trainee: str, flood: Flood, context: _Context) -> AlarmScore:
    """One flood as one trainee worked it (see the module docstring)."""
    key = flood_key(flood.site)
    wanted = context.expected.get(key, ())
    members = {
        o
        for o in context.occurrences
        if o.site == flood.site and flood.start - RATE_INTERVAL < o.raised_at <= flood.end
    }
    mine = [(a, owner) for a, owner in context.owned if a.trainee == trainee and owner in members]
    responses = [a for a, _ in mine if a.kind == "response"]
    covered: set[str] = set()
    for a in responses:
        covered |= {s.value for s in satisfied(a.action)} & set(wanted)
    triage = S.TRIAGE_BY_PRIORITY.value in wanted and mine
    if triage and not any(context.waiting_higher(trainee, a, owner) for a, owner in mine):
        covered.add(S.TRIAGE_BY_PRIORITY.value)
    matched = tuple(w for w in wanted if w in covered)
    if not mine:
        verdict = Verdict.MISSED if context.ended else Verdict.PENDING
    elif matched:
        verdict = Verdict.CORRECT
    else:
        verdict = Verdict.INCORRECT if context.ended else Verdict.PENDING
    priority = max((o.priority for o in members), key=PRIORITY_RANK.__getitem__, default=Priority.LOW)
    first_response = min((a.at for a in responses), default=None)
    return AlarmScore(
        trainee=trainee,
        occurrence=Occurrence(key, "", flood.site, FLOOD_CODE, priority, flood.start, 0),
        expected=wanted,
        acknowledged_by=None,
        time_to_ack_s=None,
        time_to_respond_s=max(0.0, (first_response - flood.start).total_seconds()) if first_response else None,
        responses=tuple(dict.fromkeys(a.action for a in responses)),
        matched=matched,
        verdict=verdict,
        score=round(len(matched) / len(wanted), 4) if wanted else 0.0,
    )


def in_order(done: Sequence[str]) -> float | None:
    """Share of pairs of troubleshooting steps in ``done`` (staff responses, in the order done) that
    follow :data:`TROUBLESHOOTING_ORDER`; ``None`` with fewer than two such steps."""
    rank = {step.value: i for i, step in enumerate(TROUBLESHOOTING_ORDER)}
    steps = [rank[d] for d in done if d in rank]
    pairs = [(a, b) for i, a in enumerate(steps) for b in steps[i + 1 :]]
    if not pairs:
        return None
    return sum(1 for a, b in pairs if a < b) / len(pairs)


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
    "ANY_MATCH_CREDIT",
    "COVERAGE_CREDIT",
    "FLOOD_CODE",
    "FLOOD_KEY_PREFIX",
    "ORDER_CREDIT",
    "SATISFIES",
    "STRAY_RESPONSE_COST",
    "TROUBLESHOOTING_ORDER",
    "Act",
    "AlarmScore",
    "Flood",
    "Occurrence",
    "TeamSummary",
    "TraineeSummary",
    "TrainingScore",
    "Verdict",
    "ack_credit",
    "acts",
    "expected_responses",
    "flood_key",
    "flood_sites",
    "floods",
    "in_order",
    "occurrences",
    "satisfied",
    "score",
    "scored_devices",
]
