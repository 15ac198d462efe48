"""The single-machine back end: :class:`~twin.store.protocol.JournalStore` over the SQLite
:class:`~twin.store.journal.Journal`.

The calls are synchronous SQLite calls made on the event loop's thread (a commit of a batch is
tens to hundreds of microseconds: a thread hop would cost more, and one thread keeps the
journal's order the order in which the twin decided). What the disk refuses (full, read-only,
an I/O error, a lock held too long) becomes :class:`~twin.store.protocol.StoreUnavailable`:
SQLite rolled the transaction back, so nothing of the batch is in the file, and the same
connection takes writes again once the disk does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import Alarm, Transition
from twin.alarms.responses import AlarmResponse
from twin.mirror.commands import CommandRecord
from twin.store.journal import Journal
from twin.store.protocol import Batch, Restored, Snapshot, StoreUnavailable
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame

MARKS_RESTORED_FOR: Final = timedelta(days=30)
"""Device-event marks loaded at start-up: those recorded in the last 30 days. A device replays
its queued alarms within hours of a reconnect, and a broker keeps a session's queue for days at
most; older repeats cannot come."""


class LocalJournalStore:
    """The journal in one SQLite file (``None``: in memory, for headless runs)."""

    def __init__(self, path: Path | None) -> None:
        self.journal = Journal(path)

    async def commit(self, batch: Batch) -> None:
        try:
            self.journal.commit(batch)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the journal cannot be written: {exc}") from exc

    async def restore(self, *, sites: Collection[str] | None = None) -> Restored:
        wanted = None if sites is None else set(sites)
        alarms = {k: a for k, a in self.journal.alarms().items() if wanted is None or a.site in wanted}
        since = datetime.now(UTC) - MARKS_RESTORED_FOR
        marks = [m for m in self.journal.device_events(since=since) if wanted is None or m.site in wanted]
        commands = [c for c in self.journal.commands() if wanted is None or c.site in wanted]
        escalations = [e for e in self.journal.escalations() if wanted is None or e.site in wanted]
        return Restored(alarms, self.journal.snapshots(sites=sites), frozenset(marks), commands, escalations)

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
        rows = self.journal.transitions(key=key, device_id=device_id, site=site, since=since, limit=limit)
        return rows if until is None else [t for t in rows if t.at < until]

    async def current_alarms(self, *, sites: Collection[str] | None = None) -> dict[str, Alarm]:
        wanted = None if sites is None else set(sites)
        return {k: a for k, a in self.journal.alarms().items() if wanted is None or a.site in wanted}

    async def snapshots(self, *, sites: Collection[str] | None = None) -> list[Snapshot]:
        return self.journal.snapshots(sites=sites)

    async def commands(self, *, device_id: str | None = None, command_id: str | None = None) -> list[CommandRecord]:
        return self.journal.commands(device_id=device_id, command_id=command_id)

    async def responses(
        self, *, key: str | None = None, actor: str | None = None, since: datetime | None = None
    ) -> list[AlarmResponse]:
        return self.journal.responses(key=key, actor=actor, since=since)

    async def training_events(self, session_id: str | None = None) -> list[TrainingEvent]:
        return self.journal.training_events(session_id)

    async def escalations(
        self, *, key: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[Escalation]:
        rows = self.journal.escalations(key=key, since=since)
        return rows if until is None else [e for e in rows if e.at <= until]

    async def frames(
        self, session_id: str | None = None, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[PumpFrame]:
        return self.journal.frames(session_id, since=since, until=until)

    async def close(self) -> None:
        self.journal.close()
