"""What the twin's SQLite stores (the journal, the accounts) share: a WAL connection, numbered
migrations, write transactions that take the lock at once, and append-only tables.

Failure modes: :class:`StoreError` for a file this code cannot use (a newer schema, WAL
unavailable); ``sqlite3.Error`` from the disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Final, Self

BUSY_TIMEOUT_S: Final = 5.0
"""How long a write waits for another connection's write to finish before failing."""

_APPEND_ONLY: Final = (
    """
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
""",
    """
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
""",
)


class StoreError(Exception):
    """A store file cannot be used as asked (a newer schema, a version gap, WAL unavailable)."""


def append_only(table: str) -> tuple[str, ...]:
    """Triggers that make SQLite itself refuse to update or delete rows of ``table``."""
    return tuple(statement.format(table=table) for statement in _APPEND_ONLY)


def connect(path: Path | None, *, error: type[Exception] = StoreError) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit: :func:`transaction`); a file
    (its directory created) in WAL mode with ``synchronous = NORMAL``, or ``None``: in memory.
    Raises ``error`` when the file cannot use WAL."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path if path is not None else ":memory:", timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if path is not None:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise error(f"{path}: SQLite cannot use WAL here (journal_mode is {mode})")
            db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        db.close()
        raise
    return db


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock at once so that checks and writes inside it
    see the latest committed state. Rolls back on any exception (unless SQLite already did: it
    rolls back by itself on a full disk, an I/O error or running out of memory, and a second
    ROLLBACK would hide the error that mattered)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except BaseException:  # e.g. the disk filled up at the commit itself: end the transaction either way
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def migrate(
    db: sqlite3.Connection, migrations: Sequence[Sequence[str]], where: object, *, error: type[Exception] = StoreError
) -> None:
    """Apply ``migrations`` (oldest first; migration *n*, 1-based, takes ``user_version`` from n-1
    to n), each in its own transaction. Raises ``error`` for a file of a newer schema (``where``
    names it in the message)."""
    known = len(migrations)
    if schema_version(db) == known:
        return
    for number, statements in enumerate(migrations, start=1):
        with transaction(db):
            found = schema_version(db)  # read under the write lock: another process may have migrated
            if found > known:
                raise error(f"{where} has schema version {found}; this PumpTwin knows up to {known}")
            if found >= number:
                continue
            for statement in statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


class SqliteStore:
    """A store on one SQLite file at ``path`` (``None``: in memory), opened by :func:`connect` and
    brought up to date by :func:`migrate` with ``migrations``; ``setup`` statements (pragmas)
    run first. Failures raise ``error``. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        path: Path | None,
        migrations: Sequence[Sequence[str]],
        *,
        error: type[Exception] = StoreError,
        setup: Sequence[str] = (),
    ) -> None:
        self.path = path
        self._db = connect(path, error=error)
        try:
            for statement in setup:
                self._db.execute(statement)
            migrate(self._db, migrations, path, error=error)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent). Committed writes are already in the file."""
        self._db.close()

    def checkpoint_elsewhere(self) -> Checkpointer | None:
        """Stop this connection's commits from running WAL checkpoints, and return the
        :class:`Checkpointer` that must run them instead (``None`` for a store in memory: it has no
        WAL). Without one running, the WAL grows with every commit."""
        if self.path is None:
            return None
        self._db.execute("PRAGMA wal_autocheckpoint = 0")
        return Checkpointer(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return schema_version(self._db)

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._db)


__all__ = [
    "BUSY_TIMEOUT_S",
    "SqliteStore",
    "StoreError",
    "append_only",
    "connect",
    "migrate",
    "schema_version",
    "transaction",
]


class Checkpointer:
    """WAL checkpoints on a connection of their own, run off the event loop, for a store whose own
    connection was told not to run them (:meth:`SqliteStore.checkpoint_elsewhere`).

    Why: SQLite runs a checkpoint inside the commit that brings the WAL past 1,000 pages, on the
    committing thread; for the twin that is the event loop, so one batch in a few hundred took
    several milliseconds more (its copy of pages into the file and its ``fsync``), which is the
    tail of an alarm's way to the live stream (BENCHMARKS.md, alarm_latency). A ``PASSIVE``
    checkpoint from another connection neither takes nor waits for the write lock: commits go on
    appending to the WAL while it copies what was committed before. :meth:`checkpoint` is one
    pass, called in a worker thread (``asyncio.to_thread``: SQLite releases the GIL while it
    copies and syncs); it returns the WAL's frames and how many of them are in the file now."""

    def __init__(self, path: Path, *, error: type[Exception] = StoreError) -> None:
        self.path = path
        self._error = error
        self._db: sqlite3.Connection | None = None

    def checkpoint(self) -> tuple[int, int]:
        if self._db is None:
            # used from one worker thread at a time (the caller awaits each pass), never two at once
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        _busy, frames, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < 0:
            raise self._error(f"{self.path}: not in WAL mode, nothing to checkpoint")
        return int(frames), int(copied)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
