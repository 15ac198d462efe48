"""The alarm lifecycle: ISA-18.2 alarm states, IEC 60601-1-8 priorities, who did what and when.

Pure: no I/O, no clock, no globals. Time is always an argument (a timezone-aware ``datetime``);
every function takes an immutable :class:`Alarm` and returns the new one with the
:class:`Transition` list it caused (possibly empty), never mutating its input. One alarm is one
*alarm point* in ISA-18.2's sense: a condition on one device (:func:`alarm_key` = site + device + code),
which lives through many occurrences; its :attr:`Alarm.version` counts its transitions.

Additions to the agreed interface, and why
------------------------------------------
* ``Alarm.unacknowledged_since``: when the alarm began to ask for an acknowledgement. ``raised_at``
  is when the *condition* last became active (stale-alarm checks need that); time to acknowledge
  must run from when staff were asked, which differs after a re-raise of a latched alarm or an
  unshelve. Without the field one of the two figures would be wrong.
* ``Transition.version``, ``source``, ``latching``, ``message``, ``expires_at``: a transition
  carries what :func:`replay` needs to rebuild the alarm from the journal alone (the raise's
  source, latching and text; the deadline a silence or shelve set), and ``version`` is its
  identity in the journal (``(key, version)`` is unique, see ``twin.store.journal``).
* ``condition_returned(..., message=None)``: a new occurrence may carry new text (the pump says
  how much is left).
* :func:`alarm_key`, :func:`replay`, :class:`TransitionEvent` and the named constants.

States (ISA-18.2 letters in brackets; "suppressed by design" [F] is not modelled)
-----------------------------------------------------------------------------------
``normal`` [A], ``active_unacknowledged`` [B], ``active_acknowledged`` [C],
``cleared_unacknowledged`` [D, "return to normal, unacknowledged"], ``shelved`` [E],
``out_of_service`` [G].

ISA-18.2's diagram puts every alarm that returns to normal unacknowledged into [D]. Here only
*latching* alarms do (IEC 60601-1-8: a latching alarm signal keeps sounding after its condition
ends, until staff act); a non-latching alarm that clears unacknowledged goes straight to
``normal``, because an IEC 60601-1-8 non-latching alarm signal stops by itself. A deliberate
departure from the ISA-18.2 diagram, so that "latching" means one thing in the twin; the journal
still records that nobody acknowledged the occurrence.

Transition table
----------------
``AU``/``AA``/``CU``/``N``/``SH``/``OOS`` abbreviate the states; "c" is ``condition_active``.
Each row is one transition, recorded with its actor, time and comment; "—" means no transition
(the call returns the alarm unchanged and an empty list); ``Err(reason)`` raises
:class:`AlarmError` and changes nothing.

=====================  ===========================  ================================================
call                   from                         result (event)
=====================  ===========================  ================================================
raise_alarm            (no alarm yet)               AU (``raise``), from_state ``None``
condition_returned     N                            AU (``raise``): a new occurrence
condition_returned     CU                           AU (``reraise``): same unacknowledged occurrence
condition_returned     AU, AA                       — (the condition is already active)
condition_returned     SH or OOS, not c             same state (``raise``), c becomes true
condition_returned     SH or OOS, c                 —
condition_cleared      AU, latching                 CU (``clear``)
condition_cleared      AU, non-latching             N (``clear``)
condition_cleared      AA                           N (``clear``)
condition_cleared      N, CU                        — (the condition is already clear)
condition_cleared      SH or OOS, c                 same state (``clear``), c becomes false
condition_cleared      SH or OOS, not c             —
acknowledge            AU                           AA (``acknowledge``), time_to_ack_s set
acknowledge            CU                           N (``acknowledge``), time_to_ack_s set
acknowledge            AA                           Err(already_acknowledged)
acknowledge            N                            Err(not_active)
acknowledge            SH / OOS                     Err(shelved) / Err(out_of_service)
silence                AU, CU                       same state (``silence``), silenced_until set
silence                AA                           Err(already_acknowledged): it does not sound
silence                N / SH / OOS                 Err(not_active) / Err(shelved) / Err(out_of_service)
shelve                 N, AU, AA, CU                SH (``shelve``), shelved_until and shelved_by set
shelve                 SH / OOS                     Err(already_shelved) / Err(out_of_service)
unshelve               SH, c / not c                AU / CU if a latched occurrence is unacknowledged,
                                                    else N (``unshelve``)
unshelve               any other                    Err(not_shelved)
(expiry) shelve        SH, c / not c, at deadline   AU / CU or N as unshelve (``shelve_expired``, actor ``twin``)
(expiry) silence       AU, CU, at deadline          same state (``silence_expired``, actor ``twin``)
remove_from_service    N, AU, AA, CU, SH            OOS (``remove_from_service``)
remove_from_service    OOS                          Err(already_out_of_service)
return_to_service      OOS, c / not c               AU / CU or N as unshelve (``return_to_service``)
return_to_service      any other                    Err(not_out_of_service)
=====================  ===========================  ================================================

Further rules:

* **Expiries come first.** Every call first applies the expiries due at its ``at`` (a shelve or
  silence whose deadline is ``<= at``), each recorded at its *deadline*, then does what it was
  asked. So a late caller can never act on a shelve that has run out, and the journal reads in
  time order. :func:`expire` applies only the expiries.
* **Re-raise semantics.** A condition that returns after its alarm reached ``normal`` is a new
  occurrence with the same key (``raise``): new ``raised_at``, acknowledgement forgotten. A
  condition that returns while a latched occurrence is still unacknowledged (``CU``) is the same
  occurrence again (``reraise``): it goes back to ``AU``, ``unacknowledged_since`` keeps the first
  annunciation (staff have still not answered it), and any audio pause ends (new information).
  A duplicate raise of an active condition does nothing: in particular an ``AA`` alarm stays
  acknowledged.
* **Shelving** suppresses annunciation for at most :data:`MAX_SHELVE_DURATION` and needs a reason
  (ISA-18.2). It forgets the acknowledgement and any audio pause: when the shelf ends (unshelve or
  expiry) the state is what the condition implies: active -> ``AU`` (asked again); clear -> ``CU``
  when a latched occurrence still owes its acknowledgement (it was unacknowledged when shelved, or
  its condition returned while shelved: :attr:`Alarm.latch_pending`), else ``N``. A latched alarm
  never leaves a shelf as if someone had acknowledged it. Out of service works the same, without a
  timer, until returned.
* **Silence** (IEC 60601-1-8 "audio paused") is not acknowledgement: the state is unchanged and
  the alarm sounds again when ``silenced_until`` passes. Acknowledging, clearing to ``normal``,
  shelving, removing from service and a re-raise all end it.
* **Condition changes while suppressed** are tracked (``c`` flips, recorded as ``raise``/
  ``clear`` with from = to), so the state after the shelf is right.
* **Versions.** The first raise makes version 1; every transition adds exactly one, and carries
  the version it made. So ``alarm.version`` is the number of transitions the key has recorded.

Invariants (checked by ``tests/core/test_alarm_lifecycle.py``): ``AU``/``AA`` iff the condition is
active outside suppression; ``N``/``CU`` imply it is clear; ``CU`` implies ``latching``;
``cleared_at is None`` iff the condition is active; ``AA`` has ``acknowledged_by``/``_at``, ``AU``
and ``CU`` do not; ``unacknowledged_since`` is set iff the state is ``AU`` or ``CU``;
``silenced_until`` is set only in ``AU``/``CU``; ``shelved_until``/``shelved_by`` are set iff
``SH``; ``latch_pending`` only in ``SH``/``OOS`` and only for a latching alarm.

Times are expected to be non-decreasing per alarm, but an earlier ``at`` is accepted and recorded
as given (a pump's clock can jump back after a low-battery reset, and dropping an alarm for that
would be worse); ``time_to_ack_s`` can then be negative. The journal orders by version, not time.

Failure modes: :class:`AlarmError` with a ``reason`` code (listed on the class), raised before
anything changes; a naive ``datetime`` is refused (``naive_time``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from twin.contract.alarms import Priority

Source = Literal["device", "twin"]
"""Who owns the condition: the pump's own alarm (``device``) or one the twin derived (``twin``)."""

DEVICE_ACTOR: Final = "device"
"""Actor of condition changes reported by a pump."""

TWIN_ACTOR: Final = "twin"
"""Actor of what the twin does on its own: expiries of shelves and audio pauses."""

MAX_SHELVE_DURATION: Final = timedelta(hours=12)
"""Longest shelve. ISA-18.2 requires shelving to be time-limited; 12 h is one clinical shift, so a
shelved alarm is always back in front of the next shift. [A] policy of the twin, not a standard figure."""

DEFAULT_SILENCE_DURATION: Final = timedelta(minutes=2)
"""Audio pause a console offers by default (IEC 60601-1-8 "audio paused", typically 2 min; DOMAIN.md)."""

MAX_SILENCE_DURATION: Final = timedelta(minutes=10)
"""Longest audio pause. [A] long enough to deal with the cause at the bedside; a longer quiet is
shelving, which asks for a reason and is audited as such."""


class AlarmState(StrEnum):
    """ISA-18.2 alarm states (the names the InfluxDB schema and the journal use)."""

    NORMAL = "normal"
    ACTIVE_UNACKNOWLEDGED = "active_unacknowledged"
    ACTIVE_ACKNOWLEDGED = "active_acknowledged"
    CLEARED_UNACKNOWLEDGED = "cleared_unacknowledged"
    SHELVED = "shelved"
    OUT_OF_SERVICE = "out_of_service"


class TransitionEvent(StrEnum):
    """What caused a transition (``Transition.event``)."""

    RAISE = "raise"  # the condition became active: a new occurrence (or while suppressed)
    RERAISE = "reraise"  # the condition returned while a latched occurrence was unacknowledged
    CLEAR = "clear"  # the condition ended
    ACKNOWLEDGE = "acknowledge"
    SILENCE = "silence"  # audio paused
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELVE_EXPIRED = "shelve_expired"
    SILENCE_EXPIRED = "silence_expired"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"


_ACTIVE: Final = frozenset({AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.ACTIVE_ACKNOWLEDGED})
_UNACKNOWLEDGED: Final = frozenset({AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.CLEARED_UNACKNOWLEDGED})
_SUPPRESSED: Final = frozenset({AlarmState.SHELVED, AlarmState.OUT_OF_SERVICE})


class AlarmError(ValueError):
    """An operation the alarm's state does not allow, or bad arguments. Nothing changed.

    ``reason`` is one of: ``not_active``, ``already_acknowledged``, ``shelved``,
    ``already_shelved``, ``not_shelved``, ``out_of_service``, ``already_out_of_service``,
    ``not_out_of_service``, ``invalid_duration``, ``comment_required``, ``actor_required``,
    ``naive_time``, ``invalid_source``, ``unknown_alarm`` (the caller has no alarm for a key;
    used by the service), ``replay_mismatch`` (a journal does not fold, see :func:`replay`).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm point of one device, as it stands after its latest transition.

    ``key`` is the point's identity (:func:`alarm_key`); ``code`` an ``AlarmCode`` value or a code
    of the twin's own alarms. ``raised_at``: when the condition last became active (for a clear
    condition: when the last occurrence began). ``cleared_at``: when it ended, ``None`` while it
    is active. ``silenced_until`` / ``shelved_until``: exclusive deadlines. ``version``: number
    of transitions so far (1 after the raise). ``unacknowledged_since``: when the alarm began
    asking for an acknowledgement; ``None`` unless the state is ``active_unacknowledged`` or
    ``cleared_unacknowledged``. ``acknowledged_by``/``_at`` belong to the latest occurrence.
    """

    key: str
    device_id: str
    site: str
    code: str
    source: Source
    priority: Priority
    latching: bool
    message: str
    raised_at: datetime
    condition_active: bool
    state: AlarmState
    cleared_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    silenced_until: datetime | None
    shelved_until: datetime | None
    shelved_by: str | None
    version: int
    unacknowledged_since: datetime | None
    latch_pending: bool = False
    """A latched occurrence nobody acknowledged is hidden by a shelve or out of service: when the
    suppression ends with the condition clear, the alarm is cleared-unacknowledged again (ISA-18.2),
    never normal. Only ever true while shelved or out of service, and only for a latching alarm."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded step of one alarm: the unit of the journal and of the audit trail.

    ``from_state`` is ``None`` only for the first raise of a key. ``actor``: a user, ``device``,
    ``twin`` or ``scenario:<name>``. ``at``: when, on the clock the twin uses for the device.
    ``raised_at``, ``message``, ``source``, ``latching``, ``priority``: the alarm's, after the
    step. ``time_to_ack_s``: seconds from ``unacknowledged_since`` to the acknowledgement, on
    ``acknowledge`` only. ``expires_at``: the deadline a ``silence`` or ``shelve`` set, else
    ``None``. ``version``: the alarm's version after this step; ``(key, version)`` identifies it.
    """

    key: str
    device_id: str
    site: str
    code: str
    priority: Priority
    from_state: AlarmState | None
    to_state: AlarmState
    event: TransitionEvent
    actor: str
    at: datetime
    comment: str | None
    raised_at: datetime
    time_to_ack_s: float | None
    version: int
    source: Source
    latching: bool
    message: str
    expires_at: datetime | None


Step = tuple[Alarm, list[Transition]]
"""What every operation returns: the new alarm and the transitions it caused, in order."""


# ----------------------------------------------------------------------------------------- policy


def alarm_key(site: str, device_id: str, code: str) -> str:
    """The identity of an alarm point: ``"<site>/<device_id>/<code>"``. Contract ids cannot hold
    ``/``, so the key is unambiguous; the site is part of it because a device is known by its site
    and id (the same id at two sites is two devices). Every occurrence of one condition on one
    device shares it."""
    return f"{site}/{device_id}/{code}"


def default_latching(priority: Priority, source: Source) -> bool:
    """Whether an alarm latches unless the caller says otherwise: high-priority *device* alarms do.

    Why: a critical pump condition that ends by itself (a motor stall that recovers, a low-battery
    reset) still needs a person to look: after an MRI a stalled pump may wait for an interrogation
    (DOMAIN.md), and a transient stall is a sign of wear. Medium and low device alarms end because
    the cause was dealt with (a refill ends a low reservoir), so they need no acknowledgement after
    the fact. The twin's own alarms do not latch: their condition is the twin's estimate,
    re-evaluated at every report, and a latch would ask staff to acknowledge corrected predictions;
    the journal keeps every occurrence anyway.
    """
    return Priority(priority) is Priority.HIGH and source == "device"


def next_expiry(alarm: Alarm) -> datetime | None:
    """The next time :func:`expire` would change the alarm (a shelve or audio pause ends), or ``None``."""
    if alarm.state is AlarmState.SHELVED:
        return alarm.shelved_until
    return alarm.silenced_until


def is_annunciated(alarm: Alarm, at: datetime) -> bool:
    """Should the alarm sound at ``at``: unacknowledged (active, or cleared and latched), not
    shelved or out of service, not in an audio pause. Expiries due at ``at`` count as applied."""
    current, _ = expire(alarm, at)
    return current.state in _UNACKNOWLEDGED and current.silenced_until is None


# ------------------------------------------------------------------------------------- operations


def raise_alarm(
    key: str,
    device_id: str,
    site: str,
    code: str,
    source: Source,
    priority: Priority,
    message: str,
    at: datetime,
    *,
    latching: bool | None = None,
    actor: str = DEVICE_ACTOR,
) -> Step:
    """The first occurrence of a key: a new alarm in ``active_unacknowledged`` (version 1).

    For a key the caller already holds, use :func:`condition_returned` instead. ``latching``
    defaults to :func:`default_latching`. Raises ``invalid_source``, ``actor_required``,
    ``naive_time``; ``ValueError`` for a priority that is not one.
    """
    _check_time(at)
    _check_actor(actor)
    if source not in ("device", "twin"):
        raise AlarmError("invalid_source", f"source must be 'device' or 'twin', not {source!r}")
    priority = Priority(priority)
    alarm = Alarm(
        key=key,
        device_id=device_id,
        site=site,
        code=str(code),
        source=source,
        priority=priority,
        latching=default_latching(priority, source) if latching is None else latching,
        message=message,
        raised_at=at,
        condition_active=True,
        state=AlarmState.ACTIVE_UNACKNOWLEDGED,
        cleared_at=None,
        acknowledged_by=None,
        acknowledged_at=None,
        silenced_until=None,
        shelved_until=None,
        shelved_by=None,
        version=1,
        unacknowledged_since=at,
    )
    return alarm, [_transition(None, alarm, TransitionEvent.RAISE, actor, at, None)]


def condition_returned(
    alarm: Alarm,
    at: datetime,
    actor: str = DEVICE_ACTOR,
    *,
    message: str | None = None,
    priority: Priority | None = None,
) -> Step:
    """The alarm's condition became active again (rows ``condition_returned`` of the table).

    ``message`` replaces the alarm's text when given; ``priority`` the alarm's priority (a new
    occurrence may be more or less urgent: a patient's second report, worse than the first). An
    already active condition is a duplicate: no transition, and neither is changed.
    """
    _check_time(at)
    _check_actor(actor)
    current, done = _due(alarm, at)
    if current.condition_active:
        return current, done
    if priority is not None:
        current = replace(current, priority=Priority(priority))
    text = current.message if message is None else message
    if current.state is AlarmState.NORMAL:
        after = replace(
            current,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            condition_active=True,
            raised_at=at,
            cleared_at=None,
            acknowledged_by=None,
            acknowledged_at=None,
            unacknowledged_since=at,
            message=text,
            version=current.version + 1,
        )
        event = TransitionEvent.RAISE
    elif current.state is AlarmState.CLEARED_UNACKNOWLEDGED:
        after = replace(
            current,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            condition_active=True,
            raised_at=at,
            cleared_at=None,
            silenced_until=None,
            message=text,
            version=current.version + 1,
        )
        event = TransitionEvent.RERAISE
    else:  # shelved or out of service: track the condition, stay suppressed; a latched new occurrence owes its ack
        after = replace(
            current,
            condition_active=True,
            raised_at=at,
            cleared_at=None,
            message=text,
            latch_pending=current.latch_pending or current.latching,
            version=current.version + 1,
        )
        event = TransitionEvent.RAISE
    return after, [*done, _transition(current, after, event, actor, at, None)]


def condition_cleared(alarm: Alarm, at: datetime, actor: str = DEVICE_ACTOR) -> Step:
    """The alarm's condition ended (rows ``condition_cleared``). A clear of a clear condition does nothing."""
    _check_time(at)
    _check_actor(actor)
    current, done = _due(alarm, at)
    if not current.condition_active:
        return current, done
    if current.state is AlarmState.ACTIVE_UNACKNOWLEDGED and current.latching:
        after = replace(current, state=AlarmState.CLEARED_UNACKNOWLEDGED, condition_active=False, cleared_at=at)
    elif current.state in _ACTIVE:
        after = replace(
            current,
            state=AlarmState.NORMAL,
            condition_active=False,
            cleared_at=at,
            silenced_until=None,
            unacknowledged_since=None,
        )
    else:  # shelved or out of service
        after = replace(current, condition_active=False, cleared_at=at)
    after = replace(after, version=current.version + 1)
    return after, [*done, _transition(current, after, TransitionEvent.CLEAR, actor, at, None)]


def acknowledge(alarm: Alarm, actor: str, at: datetime, comment: str | None = None) -> Step:
    """Staff answered the alarm: ``AU`` -> ``AA``, ``CU`` -> ``N``; ``time_to_ack_s`` is recorded.

    Raises ``already_acknowledged`` (AA), ``not_active`` (N), ``shelved``, ``out_of_service``.
    """
    _check_time(at)
    _check_actor(actor)
    current, done = _due(alarm, at)
    if current.state not in _UNACKNOWLEDGED:
        raise _refused(current, "acknowledge")
    assert current.unacknowledged_since is not None  # invariant: set in AU and CU
    after = replace(
        current,
        state=AlarmState.ACTIVE_ACKNOWLEDGED if current.condition_active else AlarmState.NORMAL,
        acknowledged_by=actor,
        acknowledged_at=at,
        silenced_until=None,
        unacknowledged_since=None,
        version=current.version + 1,
    )
    time_to_ack_s = (at - current.unacknowledged_since).total_seconds()
    return after, [
        *done,
        _transition(current, after, TransitionEvent.ACKNOWLEDGE, actor, at, comment, time_to_ack_s=time_to_ack_s),
    ]


def silence(alarm: Alarm, actor: str, at: datetime, duration: timedelta, comment: str | None = None) -> Step:
    """Pause the audio for ``duration`` (0 < duration <= :data:`MAX_SILENCE_DURATION`); not an
    acknowledgement: the state does not change. A second silence replaces the deadline.

    Raises ``invalid_duration``, ``already_acknowledged`` (AA does not sound), ``not_active``,
    ``shelved``, ``out_of_service``.
    """
    _check_time(at)
    _check_actor(actor)
    _check_duration(duration, MAX_SILENCE_DURATION)
    current, done = _due(alarm, at)
    if current.state not in _UNACKNOWLEDGED:
        raise _refused(current, "silence")
    after = replace(current, silenced_until=at + duration, version=current.version + 1)
    return after, [*done, _transition(current, after, TransitionEvent.SILENCE, actor, at, comment)]


def shelve(alarm: Alarm, actor: str, at: datetime, duration: timedelta, comment: str) -> Step:
    """Suppress the alarm for ``duration`` (0 < duration <= :data:`MAX_SHELVE_DURATION`) with a reason.

    Allowed from ``N``, ``AU``, ``AA`` and ``CU`` (ISA-18.2 lets a known bad actor be shelved
    before it sounds). Raises ``comment_required`` (empty or blank), ``invalid_duration``,
    ``already_shelved``, ``out_of_service``.
    """
    _check_time(at)
    _check_actor(actor)
    _check_comment(comment)
    _check_duration(duration, MAX_SHELVE_DURATION)
    current, done = _due(alarm, at)
    if current.state in _SUPPRESSED:
        raise _refused(current, "shelve")
    after = replace(
        current,
        state=AlarmState.SHELVED,
        shelved_until=at + duration,
        shelved_by=actor,
        silenced_until=None,
        unacknowledged_since=None,
        latch_pending=_owes_acknowledgement(current),
        version=current.version + 1,
    )
    return after, [*done, _transition(current, after, TransitionEvent.SHELVE, actor, at, comment)]


def unshelve(alarm: Alarm, actor: str, at: datetime, comment: str | None = None) -> Step:
    """End a shelve early: the state the condition implies (active -> ``AU``, clear -> ``N``).

    Raises ``not_shelved`` (also when the shelve already expired at ``at``: the expiry did it).
    """
    _check_time(at)
    _check_actor(actor)
    current, done = _due(alarm, at)
    if current.state is not AlarmState.SHELVED:
        raise AlarmError("not_shelved", f"{current.key} is {current.state.value}")
    after, transition = _resume(current, TransitionEvent.UNSHELVE, actor, at, comment)
    return after, [*done, transition]


def remove_from_service(alarm: Alarm, actor: str, at: datetime, comment: str) -> Step:
    """Take the alarm out of service (hidden, no timer) with a reason; ends any shelve or audio pause.

    Raises ``comment_required``, ``already_out_of_service``.
    """
    _check_time(at)
    _check_actor(actor)
    _check_comment(comment)
    current, done = _due(alarm, at)
    if current.state is AlarmState.OUT_OF_SERVICE:
        raise AlarmError("already_out_of_service", current.key)
    after = replace(
        current,
        state=AlarmState.OUT_OF_SERVICE,
        shelved_until=None,
        shelved_by=None,
        silenced_until=None,
        unacknowledged_since=None,
        latch_pending=_owes_acknowledgement(current),
        version=current.version + 1,
    )
    return after, [*done, _transition(current, after, TransitionEvent.REMOVE_FROM_SERVICE, actor, at, comment)]


def return_to_service(alarm: Alarm, actor: str, at: datetime, comment: str | None = None) -> Step:
    """Bring an out-of-service alarm back: the state the condition implies. Raises ``not_out_of_service``."""
    _check_time(at)
    _check_actor(actor)
    current, done = _due(alarm, at)
    if current.state is not AlarmState.OUT_OF_SERVICE:
        raise AlarmError("not_out_of_service", f"{current.key} is {current.state.value}")
    after, transition = _resume(current, TransitionEvent.RETURN_TO_SERVICE, actor, at, comment)
    return after, [*done, transition]


def expire(alarm: Alarm, at: datetime) -> Step:
    """Apply the shelve or audio-pause expiry due at ``at`` (deadline ``<= at``), recorded at the
    deadline with actor ``twin``; nothing when none is due. Call it at :func:`next_expiry`."""
    _check_time(at)
    return _due(alarm, at)


# ---------------------------------------------------------------------------------------- replay


def replay(transitions: Iterable[Transition]) -> dict[str, Alarm]:
    """Rebuild every alarm from its recorded transitions (in any order: they are sorted by key and
    version), by running each through the operation that made it and checking that the operation
    makes exactly the recorded transition again.

    This is how a restarted twin recovers its alarms from the journal. Raises
    ``AlarmError("replay_mismatch")`` naming the key and version when a key's versions have a gap,
    or a transition does not follow from the one before (a damaged journal, or lifecycle rules
    changed since it was written: such a change needs a journal migration, never a silent
    rewrite of the audit trail).
    """
    alarms: dict[str, Alarm] = {}
    for transition in sorted(transitions, key=lambda t: (t.key, t.version)):
        alarms[transition.key] = _replay_one(alarms.get(transition.key), transition)
    return alarms


def replay_step(alarm: Alarm | None, transition: Transition) -> Alarm:
    """One step of :func:`replay`: ``alarm`` (``None`` before the key's first raise) after
    ``transition``, which must be the operation's exact result (else ``AlarmError("replay_mismatch")``).
    A store that keeps a current-state table folds each newly recorded transition with it."""
    return _replay_one(alarm, transition)


def _replay_one(alarm: Alarm | None, t: Transition) -> Alarm:
    if alarm is None:
        if t.event != TransitionEvent.RAISE or t.from_state is not None or t.version != 1:
            raise AlarmError("replay_mismatch", f"{t.key} v{t.version}: the journal does not start with its raise")
        after, made = raise_alarm(
            t.key,
            t.device_id,
            t.site,
            t.code,
            t.source,
            t.priority,
            t.message,
            t.at,
            latching=t.latching,
            actor=t.actor,
        )
    else:
        if t.version != alarm.version + 1 or t.from_state != alarm.state:
            raise AlarmError(
                "replay_mismatch",
                f"{t.key} v{t.version} ({t.from_state} -> {t.to_state}) after v{alarm.version} ({alarm.state})",
            )
        try:
            after, made = _REPLAY[t.event](alarm, t)
        except AlarmError as error:
            raise AlarmError("replay_mismatch", f"{t.key} v{t.version} {t.event}: {error}") from error
    if made != [t]:
        raise AlarmError("replay_mismatch", f"{t.key} v{t.version} {t.event}: the lifecycle makes {made}, not {t}")
    return after


def _duration(t: Transition) -> timedelta:
    if t.expires_at is None:
        raise AlarmError("replay_mismatch", f"{t.key} v{t.version} {t.event} has no expires_at")
    return t.expires_at - t.at


_REPLAY: Final[dict[TransitionEvent, Callable[[Alarm, Transition], Step]]] = {
    TransitionEvent.RAISE: lambda a, t: condition_returned(a, t.at, t.actor, message=t.message, priority=t.priority),
    TransitionEvent.RERAISE: lambda a, t: condition_returned(a, t.at, t.actor, message=t.message, priority=t.priority),
    TransitionEvent.CLEAR: lambda a, t: condition_cleared(a, t.at, t.actor),
    TransitionEvent.ACKNOWLEDGE: lambda a, t: acknowledge(a, t.actor, t.at, t.comment),
    TransitionEvent.SILENCE: lambda a, t: silence(a, t.actor, t.at, _duration(t), t.comment),
    TransitionEvent.SHELVE: lambda a, t: shelve(a, t.actor, t.at, _duration(t), t.comment or ""),
    TransitionEvent.UNSHELVE: lambda a, t: unshelve(a, t.actor, t.at, t.comment),
    TransitionEvent.SHELVE_EXPIRED: lambda a, t: expire(a, t.at),
    TransitionEvent.SILENCE_EXPIRED: lambda a, t: expire(a, t.at),
    TransitionEvent.REMOVE_FROM_SERVICE: lambda a, t: remove_from_service(a, t.actor, t.at, t.comment or ""),
    TransitionEvent.RETURN_TO_SERVICE: lambda a, t: return_to_service(a, t.actor, t.at, t.comment),
}


# -------------------------------------------------------------------------------------- internals


def _due(alarm: Alarm, at: datetime) -> Step:
    """The expiry due at ``at``, if any. At most one can be: a shelved alarm has no audio pause."""
    if alarm.state is AlarmState.SHELVED and alarm.shelved_until is not None and alarm.shelved_until <= at:
        after, transition = _resume(alarm, TransitionEvent.SHELVE_EXPIRED, TWIN_ACTOR, alarm.shelved_until, None)
        return after, [transition]
    if alarm.silenced_until is not None and alarm.silenced_until <= at:
        after = replace(alarm, silenced_until=None, version=alarm.version + 1)
        return after, [
            _transition(alarm, after, TransitionEvent.SILENCE_EXPIRED, TWIN_ACTOR, alarm.silenced_until, None)
        ]
    return alarm, []


def _resume(
    alarm: Alarm, event: TransitionEvent, actor: str, at: datetime, comment: str | None
) -> tuple[Alarm, Transition]:
    """Leave shelved or out of service for the state the condition implies (a latched occurrence
    nobody acknowledged comes back cleared-unacknowledged, never normal)."""
    if alarm.condition_active:
        after = replace(
            alarm,
            state=AlarmState.ACTIVE_UNACKNOWLEDGED,
            acknowledged_by=None,
            acknowledged_at=None,
            unacknowledged_since=at,
        )
    elif alarm.latch_pending:
        after = replace(
            alarm,
            state=AlarmState.CLEARED_UNACKNOWLEDGED,
            acknowledged_by=None,
            acknowledged_at=None,
            unacknowledged_since=at,
        )
    else:
        after = replace(alarm, state=AlarmState.NORMAL)
    after = replace(after, shelved_until=None, shelved_by=None, latch_pending=False, version=alarm.version + 1)
    return after, _transition(alarm, after, event, actor, at, comment)


def _transition(
    before: Alarm | None,
    after: Alarm,
    event: TransitionEvent,
    actor: str,
    at: datetime,
    comment: str | None,
    *,
    time_to_ack_s: float | None = None,
) -> Transition:
    expires_at = None
    if event is TransitionEvent.SILENCE:
        expires_at = after.silenced_until
    elif event is TransitionEvent.SHELVE:
        expires_at = after.shelved_until
    return Transition(
        key=after.key,
        device_id=after.device_id,
        site=after.site,
        code=after.code,
        priority=after.priority,
        from_state=None if before is None else before.state,
        to_state=after.state,
        event=event,
        actor=actor,
        at=at,
        comment=comment,
        raised_at=after.raised_at,
        time_to_ack_s=time_to_ack_s,
        version=after.version,
        source=after.source,
        latching=after.latching,
        message=after.message,
        expires_at=expires_at,
    )


def _owes_acknowledgement(alarm: Alarm) -> bool:
    """Does a latched occurrence of ``alarm`` still owe an acknowledgement as it is suppressed?"""
    if alarm.state in _SUPPRESSED:
        return alarm.latch_pending
    return alarm.latching and alarm.state in _UNACKNOWLEDGED


_REFUSALS: Final[dict[AlarmState, str]] = {
    AlarmState.NORMAL: "not_active",
    AlarmState.ACTIVE_ACKNOWLEDGED: "already_acknowledged",
    AlarmState.SHELVED: "shelved",
    AlarmState.OUT_OF_SERVICE: "out_of_service",
}


def _refused(alarm: Alarm, operation: str) -> AlarmError:
    reason = _REFUSALS[alarm.state]
    if operation == "shelve" and alarm.state is AlarmState.SHELVED:
        reason = "already_shelved"
    return AlarmError(reason, f"cannot {operation} {alarm.key}: it is {alarm.state.value}")


def _check_time(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise AlarmError("naive_time", f"{at!r} has no timezone")


def _check_actor(actor: str) -> None:
    if not actor.strip():
        raise AlarmError("actor_required", "every transition names who caused it")


def _check_comment(comment: str) -> None:
    if not comment.strip():
        raise AlarmError("comment_required", "a reason is required")


def _check_duration(duration: timedelta, longest: timedelta) -> None:
    if not timedelta(0) < duration <= longest:
        raise AlarmError("invalid_duration", f"{duration} is not in (0, {longest}]")


__all__ = [
    "DEFAULT_SILENCE_DURATION",
    "DEVICE_ACTOR",
    "MAX_SHELVE_DURATION",
    "MAX_SILENCE_DURATION",
    "TWIN_ACTOR",
    "Alarm",
    "AlarmError",
    "AlarmState",
    "Source",
    "Step",
    "Transition",
    "TransitionEvent",
    "acknowledge",
    "alarm_key",
    "condition_cleared",
    "condition_returned",
    "default_latching",
    "expire",
    "is_annunciated",
    "next_expiry",
    "raise_alarm",
    "remove_from_service",
    "replay",
    "replay_step",
    "return_to_service",
    "shelve",
    "silence",
    "unshelve",
]
