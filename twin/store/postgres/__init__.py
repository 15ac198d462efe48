"""The PostgreSQL back end: the journal, snapshots and current alarms, partition leases, accounts
and the commit feed of twin replicas, in one database (``pumptwin serve --database-url``).

:func:`postgres_stores` migrates the schema (:mod:`twin.store.postgres.schema`), opens one
connection pool for the replica (:class:`~twin.store.postgres.database.Database`) and hands out
the stores on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from twin.store.postgres.accounts import PostgresAccountStore
from twin.store.postgres.database import Database, Limits
from twin.store.postgres.feed import PostgresCommitFeed
from twin.store.postgres.journal import PostgresJournalStore
from twin.store.postgres.leases import PostgresLeaseStore
from twin.store.postgres.schema import SchemaError, migrate


@dataclass(frozen=True, slots=True)
class PostgresStores:
    """Every store of one replica, on one pool."""

    db: Database
    journal: PostgresJournalStore
    leases: PostgresLeaseStore
    accounts: PostgresAccountStore
    feed: PostgresCommitFeed


@contextlib.asynccontextmanager
async def postgres_stores(
    url: str, *, replica: str, limits: Limits | None = None, migrate_schema: bool = True
) -> AsyncIterator[PostgresStores]:
    """The stores of ``replica`` on the database at ``url`` (migrated first unless
    ``migrate_schema`` is false); the pool is closed on exit. Raises ``StoreUnavailable`` when the
    server cannot be reached for the migration, :class:`SchemaError` for a newer schema."""
    if migrate_schema:
        await migrate(url)
    async with Database(url, replica=replica, limits=limits) as db:
        feed = PostgresCommitFeed(db)
        try:
            yield PostgresStores(db, PostgresJournalStore(db), PostgresLeaseStore(db), PostgresAccountStore(db), feed)
        finally:
            feed.close()


__all__ = [
    "Database",
    "Limits",
    "PostgresAccountStore",
    "PostgresCommitFeed",
    "PostgresJournalStore",
    "PostgresLeaseStore",
    "PostgresStores",
    "SchemaError",
    "postgres_stores",
]
