"""Escalation of unanswered alarms: who else is told, and when, while nobody acknowledges.

An alarm that nobody answers must not simply wait. Hospital alarm systems send it on (IHE PCD
Alert Communication Management, ACM: "an escalation mechanism designed to eliminate notification
black holes" [ACM]); it is also the alarm feature most asked for in the IoT platforms' trackers
(ThingsBoard #8520, #12501, #3368). Here an escalation *policy* gives, per IEC 60601-1-8
priority, a ladder of :class:`Tier` s: after ``after`` of an alarm asking for an acknowledgement
with nobody answering, the tier's recipients (a person or a role) are told, then the next tier's,
and so on. The staff on duty (who see every alarm on the console) are tier 0: they are asked first.

The default policy (:data:`DEFAULT_POLICY`) and why
----------------------------------------------------
* **High** (a stopped pump, an empty reservoir: baclofen withdrawal can become life-threatening
  within 24-72 h [V-S34], an opioid overdose within minutes [V-S55]): after **2 minutes** the charge
  nurse (the second person on the ward), after **5 minutes** the physician on call. Two minutes is
  twice the time in which a high alarm earns full credit in training
  (``twin.training.scoring.ACK_TARGET_S``: 60 s) and before that credit runs out (4 x 60 s), so a
  team that is merely slow is not escalated, and a second person hears of an alarm nobody took
  while it is still early. [A]: no standard fixes these figures; nurse-call systems commonly
  escalate after one to a few minutes.
* **Medium** (low reservoir, ERI: hours to days of margin): after **15 minutes** the charge nurse,
  after **60 minutes** the pump clinic. [A]
* **Low** (reminders, a silent gateway): never escalated; a low alarm asks for awareness, not for
  a response (IEC 60601-1-8), and paging someone for it is what makes staff ignore pages.

In the console a tier's recipients are accounts: ``role:<role>`` (every active account of that
role) or a user name. The defaults send tier 1 to ``role:instructor`` (in a training session the
instructor plays the charge nurse) and tier 2 to ``role:admin``; a real site lists its own on-call
accounts, and the webhook (``twin.service.paging_webhook``) carries the tier's name (``charge
nurse``) for a paging system that routes by role.

Rules
-----
* Only an alarm that asks for an acknowledgement escalates: ``active_unacknowledged`` or
  ``cleared_unacknowledged`` (a latched alarm whose condition ended still needs a person). An
  acknowledgement, a shelve or taking it out of service stops the ladder. An audio pause does
  **not**: pausing the sound is not an answer (IEC 60601-1-8).
* The clock of a ladder is the alarm's ``unacknowledged_since``: a new occurrence, or a return from
  a shelf, starts a new ladder; a latched alarm that re-raises while still unanswered keeps
  climbing the same one (staff have still not answered it).
* Each tier is reached once per ladder; its :class:`Escalation` is recorded with its deadline
  (``due_at``) and the moment it was made (``at``, at most one clock tick later). Tiers that fell
  due together (a twin that was down) are all made at once, in order: each should have been told.
* ``now`` and the alarm's times must be on one clock; this module never reads one. The service
  feeds the twin's wall clock, for simulated pumps too (a decision, ``docs/console.md``): the
  ladder is a threshold on how long *people* take to answer, and people answer in wall time (time
  to acknowledge is measured on it). On a training session's simulated clock at 600x a high alarm
  would escalate 0.2 s after it sounded. Every threshold about the *device* (silence, forecasts,
  patient reports) runs on the simulation's clock (:mod:`twin.mirror.clock`).

Pure: no I/O, no clock, no globals. Failure modes: ``ValueError`` for a policy that is not a ladder
(levels not 1, 2, 3 ..., delays not increasing, a tier with nobody to tell, an unknown role) and
for a naive ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from twin.alarms.lifecycle import Alarm, AlarmState
from twin.contract.alarms import Priority
from twin.roles import Role

ROLE_PREFIX: Final = "role:"
"""A recipient ``role:<role>`` stands for every active account of that role."""

_ASKING: Final = frozenset({AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.CLEARED_UNACKNOWLEDGED})


def check_recipient(recipient: str) -> str:
    """``recipient`` if it is a user name or ``role:<a role>``; ``ValueError`` otherwise."""
    if not recipient.strip() or recipient != recipient.strip():
        raise ValueError(f"{recipient!r} is not a recipient (a user name or role:<role>)")
    if recipient.startswith(ROLE_PREFIX):
        role = recipient.removeprefix(ROLE_PREFIX)
        if role not in {r.value for r in Role}:
            raise ValueError(f"{recipient!r}: no role {role!r} (roles: {', '.join(r.value for r in Role)})")
    return recipient


@dataclass(frozen=True, slots=True)
class Tier:
    """One rung of a ladder: ``after`` an alarm has asked for an acknowledgement for this long,
    tell ``notify`` (user names or ``role:<role>``). ``name`` says who they are on the ward
    (``charge nurse``), for people and for paging systems."""

    level: int
    name: str
    after: timedelta
    notify: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """The ladder of each priority (a priority without one never escalates)."""

    ladders: Mapping[Priority, tuple[Tier, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for priority, tiers in self.ladders.items():
            previous = timedelta(0)
            for number, tier in enumerate(tiers, start=1):
                where = f"{Priority(priority).value} tier {number}"
                if tier.level != number:
                    raise ValueError(f"{where}: level {tier.level}, expected {number} (levels count 1, 2, 3 ...)")
                if tier.after <= previous:
                    raise ValueError(f"{where}: after {tier.after} must be longer than the tier before ({previous})")
                if not tier.notify:
                    raise ValueError(f"{where}: a tier needs someone to tell")
                for recipient in tier.notify:
                    check_recipient(recipient)
                previous = tier.after

    def ladder(self, priority: Priority) -> tuple[Tier, ...]:
        return self.ladders.get(Priority(priority), ())


DEFAULT_POLICY: Final = EscalationPolicy(
    {
        Priority.HIGH: (
            Tier(1, "charge nurse", timedelta(minutes=2), (f"{ROLE_PREFIX}instructor",)),
            Tier(2, "physician on call", timedelta(minutes=5), (f"{ROLE_PREFIX}admin",)),
        ),
        Priority.MEDIUM: (
            Tier(1, "charge nurse", timedelta(minutes=15), (f"{ROLE_PREFIX}instructor",)),
            Tier(2, "pump clinic", timedelta(minutes=60), (f"{ROLE_PREFIX}admin",)),
        ),
        Priority.LOW: (),
    }
)
"""See the module docstring for why these figures ([A])."""


@dataclass(frozen=True, slots=True)
class Roster:
    """The active accounts (user name -> role) recipients resolve to."""

    accounts: Mapping[str, Role] = field(default_factory=dict)

    def resolve(self, recipients: Iterable[str]) -> tuple[str, ...]:
        """The accounts ``recipients`` name, sorted, each once; unknown names resolve to nobody
        (a paging system may still know them: the webhook carries the recipients as given)."""
        found: set[str] = set()
        for recipient in recipients:
            if recipient.startswith(ROLE_PREFIX):
                role = recipient.removeprefix(ROLE_PREFIX)
                found.update(name for name, r in self.accounts.items() if r.value == role)
            elif recipient in self.accounts:
                found.add(recipient)
        return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Escalation:
    """One tier reached by one unanswered alarm: the journal's record (table ``alarm_escalation``).

    ``escalation_id`` identifies it (:func:`escalation_id`: the alarm key, the ladder's start and
    the level), so recording it again is a no-op. ``recipients``: as the policy names them;
    ``notified``: the accounts they resolved to when it was made. ``unacknowledged_since``: the
    ladder's start; ``due_at``: ``unacknowledged_since + tier.after``; ``at``: when it was made
    (``>= due_at``). ``alarm_version``/``alarm_state``/``message``: the alarm as it stood then.
    """

    escalation_id: str
    key: str
    device_id: str
    site: str
    code: str
    priority: Priority
    level: int
    tier: str
    recipients: tuple[str, ...]
    notified: tuple[str, ...]
    unacknowledged_since: datetime
    due_at: datetime
    at: datetime
    alarm_version: int
    alarm_state: AlarmState
    message: str


@dataclass(frozen=True, slots=True)
class Rung:
    """How far one alarm's current ladder has climbed: started at ``since``, ``level`` reached."""

    since: datetime
    level: int


Ladders = Mapping[str, Rung]
"""Alarm key -> its ladder so far (keys never escalated are absent)."""


def escalation_id(key: str, since: datetime, level: int) -> str:
    """``<key>@<since, ISO 8601 UTC>#<level>``: unique per alarm, ladder and tier."""
    return f"{key}@{_utc(since)}#{level}"


def asks_for_acknowledgement(alarm: Alarm) -> bool:
    """Does the alarm climb its ladder: unacknowledged (active, or cleared and latched)?"""
    return alarm.state in _ASKING and alarm.unacknowledged_since is not None


def _level(ladders: Ladders, alarm: Alarm) -> int:
    rung = ladders.get(alarm.key)
    return rung.level if rung is not None and rung.since == alarm.unacknowledged_since else 0


def next_due(alarms: Iterable[Alarm], ladders: Ladders, policy: EscalationPolicy) -> datetime | None:
    """The earliest deadline of a tier not yet reached, over alarms asking for an acknowledgement;
    ``None`` when nothing would ever escalate as things stand."""
    soonest: datetime | None = None
    for alarm in alarms:
        if not asks_for_acknowledgement(alarm):
            continue
        tiers = policy.ladder(alarm.priority)
        level = _level(ladders, alarm)
        if level < len(tiers):
            assert alarm.unacknowledged_since is not None
            deadline = alarm.unacknowledged_since + tiers[level].after
            if soonest is None or deadline < soonest:
                soonest = deadline
    return soonest


def due(
    alarms: Iterable[Alarm], ladders: Ladders, policy: EscalationPolicy, now: datetime, roster: Roster
) -> list[Escalation]:
    """The escalations due at ``now`` (deadline ``<= now``) that ``ladders`` has not reached yet,
    ordered by deadline, then key, then level (see the module docstring)."""
    _check_time(now)
    made: list[Escalation] = []
    for alarm in alarms:
        if not asks_for_acknowledgement(alarm):
            continue
        since = alarm.unacknowledged_since
        assert since is not None
        for tier in policy.ladder(alarm.priority)[_level(ladders, alarm) :]:
            deadline = since + tier.after
            if deadline > now:
                break
            made.append(
                Escalation(
                    escalation_id=escalation_id(alarm.key, since, tier.level),
                    key=alarm.key,
                    device_id=alarm.device_id,
                    site=alarm.site,
                    code=alarm.code,
                    priority=alarm.priority,
                    level=tier.level,
                    tier=tier.name,
                    recipients=tier.notify,
                    notified=roster.resolve(tier.notify),
                    unacknowledged_since=since,
                    due_at=deadline,
                    at=now,
                    alarm_version=alarm.version,
                    alarm_state=alarm.state,
                    message=alarm.message,
                )
            )
    made.sort(key=lambda e: (e.due_at, e.key, e.level))
    return made


def climb(ladders: Ladders, escalations: Iterable[Escalation]) -> dict[str, Rung]:
    """``ladders`` after ``escalations`` (in any order): each key's latest ladder and its highest
    level. How the shell advances after :func:`due`, and how a restart rebuilds from the journal
    (``climb({}, journal.escalations())``)."""
    out = dict(ladders)
    for e in escalations:
        rung = out.get(e.key)
        if rung is None or e.unacknowledged_since > rung.since:
            out[e.key] = Rung(e.unacknowledged_since, e.level)
        elif e.unacknowledged_since == rung.since and e.level > rung.level:
            out[e.key] = replace(rung, level=e.level)
    return out


def live(alarms: Mapping[str, Alarm], escalations: Sequence[Escalation]) -> list[Escalation]:
    """The highest escalation of every alarm still climbing the ladder it belongs to (what the
    console shows as "escalated"), most urgent first: priority, then deadline."""
    best: dict[str, Escalation] = {}
    for e in escalations:
        alarm = alarms.get(e.key)
        if alarm is None or not asks_for_acknowledgement(alarm) or alarm.unacknowledged_since != e.unacknowledged_since:
            continue
        if e.key not in best or e.level > best[e.key].level:
            best[e.key] = e
    rank = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}
    return sorted(best.values(), key=lambda e: (rank[e.priority], e.due_at, e.key))


def _check_time(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no timezone")


def _utc(at: datetime) -> str:
    _check_time(at)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


__all__ = [
    "DEFAULT_POLICY",
    "ROLE_PREFIX",
    "Escalation",
    "EscalationPolicy",
    "Ladders",
    "Roster",
    "Rung",
    "Tier",
    "asks_for_acknowledgement",
    "check_recipient",
    "climb",
    "due",
    "escalation_id",
    "live",
    "next_due",
]
