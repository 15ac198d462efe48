"""One PostgreSQL database for a twin replica: a connection pool, the schema brought up to date,
and every database error said the same way.

Driver: psycopg 3 (``psycopg[binary,pool]``). Why it over asyncpg: it is typed (mypy strict runs
over this package without stubs), its async API has ``notifies()`` for LISTEN/NOTIFY, and the
same driver serves the migrations (alembic runs on SQLAlchemy's ``postgresql+psycopg`` dialect),
so the twin speaks to PostgreSQL through one library. Its pool (``psycopg_pool``) checks a
connection before lending it, so a restarted server costs at most one failed call per broken
connection and usually none.

Every connection is in autocommit mode with time zone UTC; a write is an explicit transaction
(``async with connection.transaction()``). Each call is bounded by :attr:`Limits.call_timeout_s`
on the client side (a server that hangs — paused, a network that drops packets — fails the call
instead of stalling the twin) and by ``statement_timeout``/``lock_timeout`` on the server side.

Failure modes: :class:`~twin.store.protocol.StoreUnavailable` for everything that says the
database cannot be used now (:func:`unavailable`); other ``psycopg`` errors are bugs or refused
data and pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg
import psycopg.errors
from psycopg import AsyncConnection, sql
from psycopg.abc import Params
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from twin.store.protocol import StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIES: Final = 3
"""How often a transaction that PostgreSQL rolled back for a conflict with another one
(serialization failure, deadlock) or that lost a race for a new key is run again before the
call gives up with :class:`StoreUnavailable`."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How long calls may take and how many connections a replica holds.

    Defaults: a commit of a batch takes milliseconds (``benchmarks/store_commit.py``), so 10 s on
    the client is a server that is not answering, not a slow one; the lock wait is shorter than
    that so that the server's error, not the client's timeout, says what happened. 2-8
    connections: a replica's ingest commits one batch at a time, the API reads beside it, and the
    commit feed holds one more of its own."""

    call_timeout_s: float = 10.0
    statement_timeout_s: float = 8.0
    lock_timeout_s: float = 5.0
    idle_in_transaction_s: float = 5.0
    """The server ends a session that holds a transaction open without a word for this long
    (``idle_in_transaction_session_timeout``), releasing its row locks: a replica frozen (SIGSTOP,
    a VM paused) inside a lease renewal otherwise holds that partition's lease row locked for
    ever, and the live replicas' takeovers wait on it (the replicas drill saw it)."""
    connect_timeout_s: float = 5.0
    pool_min: int = 2
    pool_max: int = 8


def unavailable(error: BaseException) -> bool:
    """Does ``error`` say the database cannot be used now (gone, restarting, out of disk, read
    only, too slow), rather than that the call was wrong?"""
    return isinstance(
        error,
        psycopg.OperationalError
        | psycopg.InterfaceError
        | psycopg.errors.ReadOnlySqlTransaction
        | PoolTimeout
        | TimeoutError
        | OSError,
    )


def _retryable(error: BaseException) -> bool:
    return isinstance(error, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected | LostRace)


class LostRace(Exception):
    """A concurrent transaction wrote a row this one planned to write first: run it again."""


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unparsable database URL)"
    params.pop("password", None)
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


class Database:
    """The pool of one replica. Every call goes through :meth:`run` (a transaction) or :meth:`read`. ``replica``: its id (``application_name``, and the origin of its
    commit notices). Open with :meth:`open` (or ``async with``); :meth:`close` ends it."""

    def __init__(self, url: str, *, replica: str, limits: Limits | None = None) -> None:
        self.url = url
        self.replica = replica
        self.limits = limits or Limits()
        lim = self.limits
        self.pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
            url,
            min_size=lim.pool_min,
            max_size=lim.pool_max,
            open=False,
            kwargs={"autocommit": True, **self.conninfo()},
            check=AsyncConnectionPool.check_connection,
            timeout=lim.call_timeout_s,
            reconnect_timeout=24 * 3600.0,  # keep trying: the database coming back is the normal case
            name=f"pumptwin-{replica}",
        )
        self._abandoned: set[asyncio.Future[Any]] = set()

    def conninfo(self) -> dict[str, str | int]:
        """The connection parameters every connection of the replica adds to the URL: UTC, the
        server-side timeouts, the connect timeout, and ``application_name`` (``pg_stat_activity``
        shows which replica holds a connection)."""
        lim = self.limits
        options = (
            f"-c TimeZone=UTC -c statement_timeout={int(lim.statement_timeout_s * 1000)} "
            f"-c lock_timeout={int(lim.lock_timeout_s * 1000)} "
            f"-c idle_in_transaction_session_timeout={max(1, int(lim.idle_in_transaction_s * 1000))}"
        )
        return {
            "application_name": f"pumptwin/{self.replica}"[:63],
            "options": options,
            "connect_timeout": max(1, int(lim.connect_timeout_s)),
        }

    async def open(self) -> None:
        """Open the pool without waiting for the server (calls fail with StoreUnavailable until it answers)."""
        await self.pool.open(wait=False)

    async def close(self) -> None:
        """Close the pool, after the calls abandoned on a timeout have cleaned up (bounded)."""
        if self._abandoned:
            await asyncio.wait(list(self._abandoned), timeout=self.limits.call_timeout_s + 10.0)
        await self.pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection; errors that say unavailable become StoreUnavailable. Not bounded
        by the call timeout: use :meth:`run` or :meth:`read` for calls."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except StoreUnavailable:
            raise
        except Exception as error:
            if unavailable(error):
                raise StoreUnavailable(f"PostgreSQL {redacted(self.url)}: {type(error).__name__}: {error}") from error
            raise

    async def run(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, transaction: bool = True, pipeline: bool = False
    ) -> T:
        """``work`` in one transaction (``transaction=False``: in autocommit, for plain reads) on a
        pooled connection, run again (up to :data:`RETRIES` times) when PostgreSQL rolled it back
        for a conflict with another transaction, and bounded by :attr:`Limits.call_timeout_s`.

        ``pipeline``: in psycopg's pipeline mode, so that statements whose results are not read
        at once travel together (BEGIN with the first query, the last statements with COMMIT):
        ``work`` must read every result it needs through a fetch (which waits for it), never
        through ``rowcount`` alone.

        The call runs in a task of its own, so that a timeout returns at once: psycopg's clean-up
        of an interrupted query (a cancel request, then closing the connection) may wait seconds
        for a server that does not answer, and finishes in the background."""
        attempt = asyncio.ensure_future(self._attempts(work, transaction, pipeline))
        try:
            return await asyncio.wait_for(asyncio.shield(attempt), self.limits.call_timeout_s)
        except TimeoutError as error:
            self._abandon(attempt)
            raise StoreUnavailable(
                f"PostgreSQL {redacted(self.url)}: no answer within {self.limits.call_timeout_s} s"
            ) from error
        except asyncio.CancelledError:
            self._abandon(attempt)
            raise

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """:meth:`run` without a transaction block (one statement, or reads that need no snapshot)."""
        return await self.run(work, transaction=False)

    async def fetchall(
        self, query: str | sql.SQL | sql.Composed, params: Params | None = None
    ) -> list[tuple[Any, ...]]:
        """Every row of one query (:meth:`read`)."""

        async def rows(conn: AsyncConnection) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

        return await self.read(rows)

    async def fetchone(
        self, query: str | sql.SQL | sql.Composed, params: Params | None = None
    ) -> tuple[Any, ...] | None:
        """The first row of one query, or None (:meth:`read`)."""

        async def row(conn: AsyncConnection) -> tuple[Any, ...] | None:
            cursor = await conn.execute(query, params)
            return await cursor.fetchone()

        return await self.read(row)

    async def _attempts(self, work: Callable[[AsyncConnection], Awaitable[T]], transaction: bool, pipeline: bool) -> T:
        for attempt in range(1, RETRIES + 1):
            try:
                async with self.connection() as conn:
                    if not transaction:
                        return await work(conn)
                    if not pipeline:
                        async with conn.transaction():
                            return await work(conn)
                    async with conn.pipeline(), conn.transaction():
                        return await work(conn)
            except Exception as error:
                if not _retryable(error):
                    raise
                if attempt == RETRIES:
                    raise StoreUnavailable(f"gave up after {RETRIES} conflicting attempts: {error}") from error
                log.info("transaction conflict (%s); running it again", type(error).__name__)
        raise AssertionError("unreachable")

    def _abandon(self, attempt: asyncio.Future[Any]) -> None:
        attempt.cancel()
        self._abandoned.add(attempt)
        attempt.add_done_callback(self._forget)

    def _forget(self, attempt: asyncio.Future[Any]) -> None:
        self._abandoned.discard(attempt)
        if not attempt.cancelled() and attempt.exception() is not None:
            log.debug("an abandoned call ended with %r", attempt.exception())


__all__ = ["RETRIES", "Database", "Limits", "LostRace", "redacted", "unavailable"]
