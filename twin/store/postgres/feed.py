"""What other replicas commit, as it happens: :class:`PostgresCommitFeed`, the listening half of
:mod:`twin.store.feed` (the commit's ``pg_notify`` is the other half).

One dedicated connection (``LISTEN`` needs a session of its own: a pooled connection would be
handed to someone else) receives the notices; for each notice of another replica the rows it
names are read through the pool and yielded as one :class:`~twin.store.feed.Committed`. The
replica's own notices are skipped (it knows what it wrote).

When the listening connection breaks (the server restarted, the network dropped), the feed
reconnects with a growing delay (:data:`RECONNECT_DELAYS_S`) and, once it listens again, yields
:class:`~twin.store.feed.Resync`: notices sent meanwhile are gone, and the consumer reloads the
fleet-wide reads. A notice whose rows cannot be read (the database went away in between) is
followed by a Resync in the same way. A notice that does not decode is logged and skipped.

:attr:`PostgresCommitFeed.listening` is set while the connection listens (tests wait on it
before they commit; a health check can read it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final

import psycopg
from psycopg.conninfo import make_conninfo

from twin.store.feed import CHANNEL, FeedEvent, Resync, decode_notice
from twin.store.postgres.database import Database, redacted, unavailable
from twin.store.postgres.journal import PostgresJournalStore
from twin.store.protocol import StoreUnavailable

log = logging.getLogger(__name__)

RECONNECT_DELAYS_S: Final = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Waits between attempts to listen again (the last one repeats): quick for a restart, gentle
for a long outage."""


class PostgresCommitFeed:
    """:class:`~twin.store.feed.CommitFeed` of the :class:`Database` ``db`` (the origin filtered out is ``db.replica``)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._journal = PostgresJournalStore(db)
        self.listening = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """End :meth:`events` at its next wait (cancel the consuming task to end it at once)."""
        self._closed = True

    async def events(self) -> AsyncIterator[FeedEvent]:
        attempt = 0
        missed = False
        while not self._closed:
            try:
                conninfo = make_conninfo(self.db.url, **self.db.conninfo())
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            except Exception as error:
                if not unavailable(error):
                    raise
                await self._wait(attempt, error)
                attempt += 1
                missed = True
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    attempt = 0
                    if missed:
                        yield Resync("the feed was not listening for a while")
                        missed = False
                    while not self._closed and not missed:
                        # stop_after=1: back as soon as a packet of notices arrives; the timeout
                        # lets close() end the loop within a second
                        received = [n async for n in conn.notifies(timeout=1.0, stop_after=1)]
                        for notify in received:
                            try:
                                notice = decode_notice(notify.payload)
                            except ValueError as error:
                                log.warning("commit feed: %s", error)
                                continue
                            if notice.origin == self.db.replica:
                                continue
                            try:
                                committed = await self._journal.committed(notice)
                            except StoreUnavailable as error:
                                log.warning("commit feed: rows of a notice could not be read (%s)", error)
                                missed = True
                                break
                            yield committed
                            if notice.overflow:
                                yield Resync("a commit was too big to announce whole")
            except Exception as error:
                if not unavailable(error):
                    raise
                log.warning("commit feed: listening connection to %s lost (%s)", redacted(self.db.url), error)
                missed = True
            finally:
                self.listening.clear()
            if not self._closed and missed:
                await self._wait(attempt, None)
                attempt += 1

    async def _wait(self, attempt: int, error: BaseException | None) -> None:
        delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
        if error is not None:
            log.info("commit feed: cannot listen yet (%s); again in %.1f s", error, delay)
        await asyncio.sleep(delay)


__all__ = ["RECONNECT_DELAYS_S", "PostgresCommitFeed"]
