"""What of a batch's transitions is new, and the alarms it leaves: the checks every back end makes
before it writes a :class:`~twin.store.protocol.Batch`. Pure: the back end reads the touched keys'
current alarms (inside its write transaction), calls :func:`plan_transitions`, compares the
repeats with what it has stored, then writes the plan.

Rules (the journal's identity, see :mod:`twin.store.protocol`), for each key in batch order:

* a version at or below the key's current version is a *repeat*: the back end must find exactly
  that transition stored, else :class:`JournalConflict`;
* the next version (current + 1) is *new*: it must follow from the current alarm through the
  lifecycle (:func:`~twin.alarms.lifecycle.replay_step`), else :class:`~twin.store.journal.JournalError`
  (a transition that does not fold would make the journal unreadable at the next restart);
* a version further on skips one: :class:`JournalError`.

Either error means nothing of the batch may be written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from twin.alarms.lifecycle import Alarm, AlarmError, Transition, replay_step


class JournalError(Exception):
    """The journal cannot be used as asked: a version gap, a transition that does not follow, or
    (from the SQLite file) a newer schema or WAL unavailable. Nothing of the call was written.
    Importable from :mod:`twin.store.journal` too, where it was first defined."""


class JournalConflict(JournalError):
    """A different transition is already recorded under the same (key, version). Nothing was recorded."""


@dataclass(frozen=True, slots=True)
class TransitionPlan:
    """``new``: to append, in batch order. ``repeats``: said to be recorded already (compare them
    with the stored rows). ``alarms``: every key that ``new`` touches, as it stands after them."""

    new: tuple[Transition, ...]
    repeats: tuple[Transition, ...]
    alarms: Mapping[str, Alarm]


def plan_transitions(transitions: Sequence[Transition], current: Mapping[str, Alarm]) -> TransitionPlan:
    """Sort ``transitions`` into new and repeated ones against ``current`` (key -> the alarm as
    stored; a key absent has no transition yet). Raises as the module docstring says."""
    alarms: dict[str, Alarm] = {}
    new: list[Transition] = []
    repeats: list[Transition] = []
    planned: dict[tuple[str, int], Transition] = {}
    for t in transitions:
        alarm = alarms.get(t.key, current.get(t.key))
        version = 0 if alarm is None else alarm.version
        if t.version <= version:
            earlier = planned.get((t.key, t.version))
            if earlier is None:
                repeats.append(t)
            elif earlier != t:
                raise JournalConflict(f"{t.key} v{t.version}: the batch holds two different transitions")
            continue
        if t.version > version + 1:
            raise JournalError(f"{t.key} v{t.version}: version {t.version - 1} was never recorded")
        try:
            alarms[t.key] = replay_step(alarm, t)
        except AlarmError as error:
            raise JournalError(f"{t.key} v{t.version} does not follow from the alarm as recorded: {error}") from error
        planned[(t.key, t.version)] = t
        new.append(t)
    return TransitionPlan(tuple(new), tuple(repeats), alarms)


def touched_keys(transitions: Sequence[Transition]) -> list[str]:
    """The distinct keys of ``transitions``, sorted (lock rows in one order: no deadlocks)."""
    return sorted({t.key for t in transitions})


__all__ = ["JournalConflict", "JournalError", "TransitionPlan", "plan_transitions", "touched_keys"]
