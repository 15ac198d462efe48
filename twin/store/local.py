"""The single-machine back end: the store protocols on today's SQLite files,
:class:`LocalJournalStore` (the journal file, :class:`~twin.store.journal.Journal`; ``None``: in
memory, for headless runs) and :class:`LocalAccountStore` (``users.sqlite``,
:class:`~twin.store.users.UserStore`). The default: no server, no leases.

A commit is one SQLite transaction (``BEGIN IMMEDIATE``): the touched keys' current alarms are
checked against the journal's versions inside it, the batch is planned
(:func:`~twin.store.batch_plan.plan_transitions`), repeats are compared with the stored rows, and
everything new is written, or nothing. The current alarms are a fold of the journal kept in
memory: folded once (at the first call that needs them: about 15 µs per transition), then moved
on by each commit. Before they are used, every key's version in memory is checked against the
journal's highest version of that key (one indexed query), and a key that another writer moved
on (today's :meth:`Journal.record <twin.store.journal.Journal.record>`, another process) is
folded again from its transitions. So the fold is never stale, and no table needs to be kept in
step with the journal.

Calls run on the event loop's thread, as the journal's own docstring argues (a call is tens of
microseconds to a few milliseconds; a thread hop would cost more and could reorder writes).
:meth:`LocalJournalStore.restore` folds the whole journal and so may take a second or more for
a long journal: at start-up only.

Failure modes: :class:`~twin.store.protocol.StoreUnavailable` for what the disk or the lock says
(``SQLITE_FULL``, ``SQLITE_READONLY*``, ``SQLITE_IOERR*``, ``SQLITE_BUSY*``/``SQLITE_LOCKED*``
after :data:`~twin.store.sqlite.BUSY_TIMEOUT_S`, ``SQLITE_CANTOPEN*``); the journal's own errors
(:class:`~twin.store.journal.JournalConflict`, :class:`~twin.store.journal.JournalError`)
unchanged; ``ValueError`` for a fenced batch (one machine has no leases to fence with), naive
datetimes and payloads JSON cannot hold. After any of them nothing of the call was written.

Device-event marks restored are those of the last :data:`MARKS_RESTORED_FOR` (older repeats
cannot come). Unlike the PostgreSQL back end there is no commit feed: there are no other
replicas to hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import Alarm, Transition, replay
from twin.alarms.responses import AlarmResponse
from twin.mirror.commands import CommandRecord
from twin.roles import Role
from twin.store import journal as journal_rows
from twin.store.batch_plan import plan_transitions, touched_keys
from twin.store.journal import Journal, JournalConflict
from twin.store.protocol import Batch, Restored, Snapshot, StoreUnavailable
from twin.store.users import AccountEvent, LoginSession, User, UserStore
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S: Final = 0.5
"""How often ``pumptwin serve`` checkpoints the journal's WAL off the event loop (:meth:`LocalJournalStore.run_checkpoints`)."""
DEFAULT_AUTOCHECKPOINT_PAGES: Final = 1000
"""SQLite's own default: what a connection's commits go back to when no checkpointer runs."""

MARKS_RESTORED_FOR: Final = timedelta(days=30)
"""Device-event marks loaded at start-up: those recorded in the last 30 days. A device replays
its queued alarms within hours of a reconnect, and a broker keeps a session's queue for days at
most; older repeats cannot come."""

UNAVAILABLE_ERRORS: Final = (
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_IOERR",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
)
"""SQLite result codes (and their extended codes, which start the same) that say the file cannot
be written now rather than that the call was wrong: the disk is full or read-only, the device
failed, another writer held the lock past the busy timeout, the file went away."""


def unavailable(error: sqlite3.Error) -> bool:
    """Does ``error`` say the store is unavailable (see :data:`UNAVAILABLE_ERRORS`)?"""
    name = getattr(error, "sqlite_errorname", None) or ""
    return name.startswith(UNAVAILABLE_ERRORS)


@contextmanager
def _unavailable_as_store_error() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as error:
        if unavailable(error):
            raise StoreUnavailable(f"SQLite: {error} ({getattr(error, 'sqlite_errorname', '?')})") from error
        raise


class LocalJournalStore:
    """:class:`~twin.store.protocol.JournalStore` on the SQLite journal at ``path`` (created and
    migrated if needed; ``None``: in memory). ``journal``: the underlying :class:`Journal`."""

    def __init__(self, path: Path | None) -> None:
        with _unavailable_as_store_error():
            self.journal = Journal(path)
        self._alarms: dict[str, Alarm] | None = None

    # ------------------------------------------------------------------------------------ writes

    async def commit(self, batch: Batch) -> None:
        if batch.fence is not None:
            raise ValueError("the SQLite store has no leases: a fenced batch belongs to the PostgreSQL back end")
        if batch.empty:
            return
        j = self.journal
        recorded_at = journal_rows._text(datetime.now(UTC))
        with _unavailable_as_store_error(), j._transaction():
            current = self._current(touched_keys(batch.transitions))
            plan = plan_transitions(batch.transitions, current)
            for t in plan.repeats:
                stored = j._one(t.key, t.version)
                if stored != t:
                    raise JournalConflict(f"{t.key} v{t.version}: recorded {stored}, now given {t}")
            j._insert_transitions(plan.new, recorded_at)
            for mark in batch.device_events:
                j._insert_device_event(mark, recorded_at)
            for command in batch.commands:
                j._insert_command(command)
            for response in batch.responses:
                j._insert_response(response, recorded_at)
            for event in batch.training_events:
                j._insert_training_event(event)
            for s in batch.snapshots:
                j._upsert_snapshot(s.site, s.device_id, s.version, s.payload, recorded_at)
            j._insert_escalations(batch.escalations, recorded_at)
            j._insert_frames(batch.frames)
        if self._alarms is not None:
            self._alarms.update(plan.alarms)

    # ------------------------------------------------------------------------------------- reads

    async def restore(self, *, sites: Collection[str] | None = None) -> Restored:
        with _unavailable_as_store_error():
            self._alarms = self.journal.alarms()
            wanted = None if sites is None else set(sites)
            alarms = {k: a for k, a in self._alarms.items() if wanted is None or a.site in wanted}
            since = datetime.now(UTC) - MARKS_RESTORED_FOR
            marks = [m for m in self.journal.device_events(since=since) if wanted is None or m.site in wanted]
            commands = [c for c in self.journal.commands() if wanted is None or c.site in wanted]
            snapshots = self.journal.snapshots(sites=sites)
            escalations = [e for e in self.journal.escalations() if wanted is None or e.site in wanted]
        return Restored(
            alarms=alarms,
            snapshots=snapshots,
            device_events=frozenset(marks),
            commands=commands,
            escalations=escalations,
        )

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
        """``since``: ``at >= since``; ``until``: ``at < until``."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (("key", key), ("device_id", device_id), ("site", site)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(journal_rows._text(since))
        if until is not None:
            where.append("at < ?")
            params.append(journal_rows._text(until))
        sql = f"SELECT {journal_rows._JOURNAL_COLUMNS} FROM alarm_journal"
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY at, key, version"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with _unavailable_as_store_error():
            return [journal_rows._transition(row) for row in self.journal._db.execute(sql, params)]

    async def current_alarms(self, *, sites: Collection[str] | None = None) -> dict[str, Alarm]:
        with _unavailable_as_store_error():
            alarms = self._current(None)
        wanted = None if sites is None else set(sites)
        return {k: a for k, a in sorted(alarms.items()) if wanted is None or a.site in wanted}

    async def snapshots(self, *, sites: Collection[str] | None = None) -> list[Snapshot]:
        with _unavailable_as_store_error():
            return self.journal.snapshots(sites=sites)

    async def commands(self, *, device_id: str | None = None, command_id: str | None = None) -> list[CommandRecord]:
        with _unavailable_as_store_error():
            return self.journal.commands(device_id=device_id, command_id=command_id)

    async def responses(
        self, *, key: str | None = None, actor: str | None = None, since: datetime | None = None
    ) -> list[AlarmResponse]:
        with _unavailable_as_store_error():
            return self.journal.responses(key=key, actor=actor, since=since)

    async def training_events(self, session_id: str | None = None) -> list[TrainingEvent]:
        with _unavailable_as_store_error():
            return self.journal.training_events(session_id)

    async def escalations(
        self, *, key: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[Escalation]:
        with _unavailable_as_store_error():
            rows = self.journal.escalations(key=key, since=since)
        return rows if until is None else [e for e in rows if e.at <= until]

    async def frames(
        self, session_id: str | None = None, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[PumpFrame]:
        with _unavailable_as_store_error():
            return self.journal.frames(session_id, since=since, until=until)

    async def close(self) -> None:
        self.journal.close()

    async def run_checkpoints(self, stop: asyncio.Event, every_s: float = CHECKPOINT_EVERY_S) -> None:
        """Run the journal's WAL checkpoints off the event loop until ``stop`` (see
        :class:`~twin.store.sqlite.Checkpointer`), every ``every_s`` seconds; at the end, give the
        commits their own checkpoints back. A pass that fails is logged and tried again at the
        next one (a full disk fails the commits too, which say so on ``/healthz``); the WAL only
        grows meanwhile, nothing committed is at risk."""
        checkpointer = self.journal.checkpoint_elsewhere()
        if checkpointer is None:
            return
        failing = False
        try:
            while not stop.is_set():
                try:
                    frames, copied = await asyncio.to_thread(checkpointer.checkpoint)
                except (sqlite3.Error, OSError) as exc:
                    if not failing:
                        log.error("the journal's WAL checkpoint failed (%s); trying again", exc)
                    failing = True
                else:
                    if failing:
                        log.info(
                            "the journal's WAL checkpoints run again (%d of %d frames in the file)", copied, frames
                        )
                    failing = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
        finally:
            checkpointer.close()
            with contextlib.suppress(sqlite3.Error):
                self.journal._db.execute(f"PRAGMA wal_autocheckpoint = {DEFAULT_AUTOCHECKPOINT_PAGES}")

    # --------------------------------------------------------------------------------- internals

    def _current(self, keys: Sequence[str] | None) -> dict[str, Alarm]:
        """The alarms of ``keys`` (``None``: every key) as the journal makes them now: the fold in
        memory, each key checked against the journal's highest version and folded again if another
        writer moved it on."""
        if self._alarms is None:
            self._alarms = self.journal.alarms()
        db = self.journal._db
        if keys is None:
            rows = db.execute("SELECT key, max(version) FROM alarm_journal GROUP BY key")
        elif not keys:
            return {}
        else:
            rows = db.execute(
                "SELECT key, max(version) FROM alarm_journal WHERE key IN (SELECT value FROM json_each(?)) GROUP BY key",
                (json.dumps(list(keys)),),
            )
        found: dict[str, Alarm] = {}
        for key, version in rows:
            alarm = self._alarms.get(key)
            if alarm is None or alarm.version != version:
                alarm = replay(self.journal.transitions(key=key))[key]
                self._alarms[key] = alarm
            found[key] = alarm
        return found


class LocalAccountStore:
    """:class:`~twin.store.accounts.AccountStore` on ``users.sqlite`` at ``path`` (``None``: in memory)."""

    def __init__(self, path: Path | None) -> None:
        with _unavailable_as_store_error():
            self.users = UserStore(path)

    async def add(self, username: str, role: Role, password_hash: str, *, actor: str, at: datetime) -> User:
        with _unavailable_as_store_error():
            return self.users.add(username, role, password_hash, actor=actor, at=at)

    async def get(self, username: str) -> User | None:
        with _unavailable_as_store_error():
            return self.users.get(username)

    async def all(self) -> list[User]:
        with _unavailable_as_store_error():
            return self.users.all()

    async def any_admin(self) -> bool:
        with _unavailable_as_store_error():
            return self.users.any_admin()

    async def password_hash(self, username: str) -> str | None:
        with _unavailable_as_store_error():
            return self.users.password_hash(username)

    async def update(
        self,
        username: str,
        *,
        actor: str,
        at: datetime,
        role: Role | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
        rehash: bool = False,
    ) -> User:
        with _unavailable_as_store_error():
            return self.users.update(
                username, actor=actor, at=at, role=role, password_hash=password_hash, disabled=disabled, rehash=rehash
            )

    async def events(self, username: str | None = None) -> list[AccountEvent]:
        with _unavailable_as_store_error():
            return self.users.events(username)

    async def open_session(self, username: str, at: datetime, ttl: timedelta) -> str:
        with _unavailable_as_store_error():
            return self.users.open_session(username, at, ttl)

    async def session(self, token: str, at: datetime) -> LoginSession | None:
        with _unavailable_as_store_error():
            return self.users.session(token, at)

    async def close_session(self, token: str) -> bool:
        with _unavailable_as_store_error():
            return self.users.close_session(token)

    async def close(self) -> None:
        self.users.close()


__all__ = ["MARKS_RESTORED_FOR", "UNAVAILABLE_ERRORS", "LocalAccountStore", "LocalJournalStore", "unavailable"]
