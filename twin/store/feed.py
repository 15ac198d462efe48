"""The stream of what other replicas committed: what a replica hears of every commit it did not
make, so the live stream it serves carries the whole fleet. Pure: the notices' wire form and the
events a feed yields; the PostgreSQL listener is :mod:`twin.store.postgres.feed`.

A commit that wrote something announces it, *inside its own transaction*, with PostgreSQL's
``NOTIFY``: the notice is delivered when (and only if) the commit is, to every replica listening.
A notice names what was written by identity only — ``(key, version)`` of each transition,
``(command_id, status)``, ``response_id``, ``(session_id, event)``, ``(site, device_id)`` of each
snapshot, the device-event keys, ``escalation_id`` — so that it stays small whatever a comment or a snapshot holds;
the receiving replica reads the rows (:class:`Committed` carries them). PostgreSQL caps a payload
at 8,000 bytes: a big commit is announced in several notices (:func:`encode_notices`).

A repeat (a batch committed again) writes nothing new and announces nothing, so a receiver sees
each transition once per commit that made it. Notices are not stored: a replica whose listening
connection broke hears nothing of the commits made meanwhile, and its feed yields :class:`Resync`
once it listens again (reload the fleet-wide reads: ``current_alarms``, ``snapshots``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from twin.alarms.device_events import DeviceEventKey
from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import Alarm, Transition
from twin.alarms.responses import AlarmResponse
from twin.mirror.commands import CommandRecord
from twin.store.protocol import Snapshot
from twin.training.events import TrainingEvent

CHANNEL: Final = "pumptwin_commit"
"""The ``LISTEN``/``NOTIFY`` channel of commit notices."""

NOTICE_LIMIT_BYTES: Final = 7900
"""Largest notice payload sent: PostgreSQL refuses 8,000 bytes or more (``pg_notify``'s limit in
the default build), less a margin for the envelope."""


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """What one commit (or part of one) wrote, by identity. ``origin``: the replica that wrote it.
    ``overflow``: an item too big for any notice was left out (the receiver resyncs)."""

    origin: str
    transitions: tuple[tuple[str, int], ...] = ()
    device_events: tuple[DeviceEventKey, ...] = ()
    commands: tuple[tuple[str, str], ...] = ()
    responses: tuple[str, ...] = ()
    training_events: tuple[tuple[str, str], ...] = ()
    snapshots: tuple[tuple[str, str], ...] = ()
    escalations: tuple[str, ...] = ()
    overflow: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.transitions
            or self.device_events
            or self.commands
            or self.responses
            or self.training_events
            or self.snapshots
            or self.escalations
            or self.overflow
        )


_FIELDS: Final = (
    "transitions",
    "device_events",
    "commands",
    "responses",
    "training_events",
    "snapshots",
    "escalations",
)


def _item(name: str, value: object) -> object:
    if isinstance(value, DeviceEventKey):
        return [value.site, value.device_id, value.alarm_id, value.event, value.code]
    if isinstance(value, tuple):
        return list(value)
    return value


def _payload(origin: str, items: Mapping[str, list[str]], overflow: bool) -> str:
    """The notice's JSON, from items already encoded (``items``: field -> encoded values)."""
    parts = [f'"o":{json.dumps(origin, ensure_ascii=False)}']
    parts += [f'"{name}":[{",".join(values)}]' for name, values in items.items() if values]
    if overflow:
        parts.append('"x":true')
    return "{" + ",".join(parts) + "}"


def encode_notices(notice: CommitNotice, *, limit_bytes: int = NOTICE_LIMIT_BYTES) -> list[str]:
    """``notice`` as NOTIFY payloads of at most ``limit_bytes`` UTF-8 bytes each (several if it is
    big; none if it is empty). An item that fits in no payload alone is left out and the last
    payload says ``overflow``. Each item is encoded once (linear in the notice's size)."""
    if notice.empty:
        return []
    overhead = len(_payload(notice.origin, {}, True).encode())  # the envelope, overflow flag included
    payloads: list[str] = []
    chunk: dict[str, list[str]] = {name: [] for name in _FIELDS}
    size = overhead
    overflow = notice.overflow
    for name in _FIELDS:
        for value in getattr(notice, name):
            item = json.dumps(_item(name, value), ensure_ascii=False, separators=(",", ":"))
            cost = len(item.encode()) + 1 + (len(name) + 5 if not chunk[name] else 0)  # comma; "name":[] once
            if overhead + cost - 1 > limit_bytes:
                overflow = True  # fits in no payload
                continue
            if size + cost > limit_bytes:
                payloads.append(_payload(notice.origin, chunk, False))
                chunk = {n: [] for n in _FIELDS}
                size = overhead
                cost = len(item.encode()) + 1 + len(name) + 5
            chunk[name].append(item)
            size += cost
    if any(chunk.values()) or overflow:
        payloads.append(_payload(notice.origin, chunk, overflow))
    return payloads


def decode_notice(payload: str) -> CommitNotice:
    """One payload back as a notice (``ValueError`` if it is not one)."""
    try:
        body = json.loads(payload)
        origin = body["o"]
        if not isinstance(origin, str):
            raise TypeError("origin")
        return CommitNotice(
            origin=origin,
            transitions=tuple((str(k), int(v)) for k, v in body.get("transitions", ())),
            device_events=tuple(DeviceEventKey(*(str(part) for part in key)) for key in body.get("device_events", ())),
            commands=tuple((str(c), str(s)) for c, s in body.get("commands", ())),
            responses=tuple(str(r) for r in body.get("responses", ())),
            training_events=tuple((str(s), str(e)) for s, e in body.get("training_events", ())),
            snapshots=tuple((str(s), str(d)) for s, d in body.get("snapshots", ())),
            escalations=tuple(str(e) for e in body.get("escalations", ())),
            overflow=bool(body.get("x", False)),
        )
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"not a commit notice: {payload[:200]!r} ({error})") from error


@dataclass(frozen=True, slots=True)
class Committed:
    """What another replica committed, read back: its new transitions, the touched alarms as they
    stand now, and the rest of the batch. Rows read a moment after the commit: an alarm or a
    snapshot may already be newer than the commit left it (never older)."""

    origin: str
    transitions: Sequence[Transition] = ()
    alarms: Mapping[str, Alarm] = field(default_factory=dict)
    device_events: Collection[DeviceEventKey] = ()
    commands: Sequence[CommandRecord] = ()
    responses: Sequence[AlarmResponse] = ()
    training_events: Sequence[TrainingEvent] = ()
    snapshots: Sequence[Snapshot] = ()
    escalations: Sequence[Escalation] = ()


@dataclass(frozen=True, slots=True)
class Resync:
    """Commits of other replicas may have been missed (the feed was not listening, or a notice
    overflowed): reload what is shown from the fleet-wide reads."""

    reason: str


FeedEvent = Committed | Resync


class CommitFeed(Protocol):
    """What other replicas commit, as it happens (a replica's own commits are not echoed)."""

    def events(self) -> AsyncIterator[FeedEvent]:
        """The events, for ``async for``; ends only when the feed is closed."""
        ...


__all__ = [
    "CHANNEL",
    "NOTICE_LIMIT_BYTES",
    "CommitFeed",
    "CommitNotice",
    "Committed",
    "FeedEvent",
    "Resync",
    "decode_notice",
    "encode_notices",
]
