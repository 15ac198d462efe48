"""The seams between the twin and its durable record: what any back end (SQLite on one machine,
PostgreSQL for replicas) must do, as :class:`typing.Protocol` classes. Pure: no I/O here.

The twin's ingest works in *batches*: it applies a run of messages to its in-memory fleet
tentatively, hands everything durable they caused to :meth:`JournalStore.commit` as one
:class:`Batch`, and only when that returns acknowledges the messages to the broker and adopts the
new fleet. So a commit is all or nothing, and it is *idempotent*: committing a batch again (a
redelivery after a crash, a retry after a timeout whose first attempt did land) changes nothing
and raises nothing.

Identity of what a batch holds (so that a repeat is recognised):

* a :class:`~twin.alarms.lifecycle.Transition` by ``(key, version)``; a *different* transition
  under an existing pair is :class:`~twin.store.journal.JournalConflict`; a version that skips
  one is :class:`~twin.store.journal.JournalError`;
* a device alarm event by :class:`~twin.alarms.device_events.DeviceEventKey`;
* a command status by ``(command_id, status)``;
* a response by ``response_id``; a training event by ``(session_id, event)``;
* an escalation by ``escalation_id``; a session pump frame by ``(session_id, site, device_id, seq)``;
* a snapshot is an upsert per ``(site, device_id)``; an older ``version`` never overwrites a newer one.

Failure modes every back end raises the same way:

* :class:`StoreUnavailable`: the write did not happen and may be retried later (disk full or
  read-only, database gone, lock timeout). The twin stops acknowledging and says degraded.
* :class:`StaleEpoch`: the batch's :class:`Fence` names a lease epoch that is no longer the
  partition's current one (another replica took the partition over). Nothing was written; the
  writer must stop serving that partition.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from twin.alarms.device_events import DeviceEventKey
from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import Alarm, Transition
from twin.alarms.responses import AlarmResponse
from twin.mirror.commands import CommandRecord
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame


class StoreUnavailable(Exception):
    """The store cannot take writes right now (nothing of the call was written); retry later."""


class StaleEpoch(Exception):
    """A write fenced by a lease epoch that is no longer current: nothing was written."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One device twin, serialised (``payload`` is JSON-ready), at its twin ``version``."""

    site: str
    device_id: str
    version: int
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a batch is written under: the database refuses the batch unless ``epoch`` is the
    partition's current epoch (a replica that was paused past its lease cannot write)."""

    partition: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything durable that a run of messages (or one staff action, or one clock tick) caused."""

    transitions: Sequence[Transition] = ()
    device_events: Sequence[DeviceEventKey] = ()
    commands: Sequence[CommandRecord] = ()
    responses: Sequence[AlarmResponse] = ()
    training_events: Sequence[TrainingEvent] = ()
    snapshots: Sequence[Snapshot] = ()
    escalations: Sequence[Escalation] = ()
    """Unanswered alarms reaching a tier of their ladder (``twin.alarms.escalation``)."""
    frames: Sequence[PumpFrame] = ()
    """What training-session pumps showed (``twin.training.frames``), for replays."""
    fence: Fence | None = None

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
            or self.frames
        )


@dataclass(frozen=True, slots=True)
class Restored:
    """What a (re)starting twin, or a replica taking partitions over, loads."""

    alarms: Mapping[str, Alarm]
    """Every alarm point, folded from the journal (or read from the current-state table)."""
    snapshots: Sequence[Snapshot]
    device_events: Collection[DeviceEventKey] = field(default_factory=frozenset)
    """Device alarm events already applied (for exact deduplication of redeliveries)."""
    commands: Sequence[CommandRecord] = ()
    """Every command status, in log order: the last status of a command wins."""
    escalations: Sequence[Escalation] = ()
    """Every escalation, in journal order: the ladders already climbed (so none is sent twice)."""


class JournalStore(Protocol):
    """The append-only journal (alarm transitions, device events, command log, responses,
    training events, escalations, session pump frames) and the per-device snapshots."""

    async def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction (see the module docstring for identity and errors)."""
        ...

    async def restore(self, *, sites: Collection[str] | None = None) -> Restored:
        """Load the alarms, snapshots, device-event marks and commands (of ``sites`` only, if given)."""
        ...

    async def transitions(
        self,
        *,
        key: str | None = None,
        device_id: str | None = None,
        site: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Transition]:
        """Transitions in journal order (by ``at``, then key and version), filtered."""
        ...

    async def current_alarms(self, *, sites: Collection[str] | None = None) -> dict[str, Alarm]:
        """Every alarm point as its latest transition left it (fleet-wide reads from any replica)."""
        ...

    async def snapshots(self, *, sites: Collection[str] | None = None) -> list[Snapshot]:
        """The latest snapshot of every device (fleet-wide reads from any replica)."""
        ...

    async def commands(self, *, device_id: str | None = None, command_id: str | None = None) -> list[CommandRecord]:
        """Command statuses in log order."""
        ...

    async def responses(
        self, *, key: str | None = None, actor: str | None = None, since: datetime | None = None
    ) -> list[AlarmResponse]:
        """Staff responses in the order they were recorded."""
        ...

    async def training_events(self, session_id: str | None = None) -> list[TrainingEvent]:
        """Training session events in the order they were recorded."""
        ...

    async def escalations(
        self, *, key: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[Escalation]:
        """Escalations in the order they were recorded (``since <= at <= until``)."""
        ...

    async def frames(
        self, session_id: str | None = None, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[PumpFrame]:
        """Session pump frames in the order they were recorded."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Lease:
    """A partition leased to a replica until ``expires_at``; ``epoch`` grows by one at every change
    of owner (never on a renewal)."""

    partition: int
    owner: str
    epoch: int
    expires_at: datetime


class LeaseStore(Protocol):
    """Partition leases and replica liveness (PostgreSQL; a single SQLite twin needs none)."""

    async def heartbeat(self, replica: str, now: datetime, ttl: timedelta) -> list[str]:
        """Say ``replica`` is alive until ``now + ttl``; return every live replica id, sorted.
        A zero ``ttl`` says the replica is leaving: it is not live from ``now`` on."""
        ...

    async def acquire(self, partition: int, replica: str, now: datetime, ttl: timedelta) -> Lease | None:
        """Take ``partition`` if it is free or its lease expired (new epoch), or renew it if
        ``replica`` holds it (same epoch); None if another live owner holds it."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the partition up (a clean hand-over: the next owner need not wait for the TTL)."""
        ...

    async def leases(self) -> list[Lease]:
        """Every partition's current lease."""
        ...
