"""The store a twin process uses, chosen by its settings: :func:`open_stores`.

Without a database URL: the single-machine SQLite files in the data directory
(:mod:`twin.store.local`), no leases, no commit feed. With ``database.url``
(``PUMPTWIN_DATABASE__URL``, ``pumptwin serve --database-url``): PostgreSQL, migrated at start-up,
one connection pool for the replica ``cluster.replica_id``, its leases and its commit feed.
A composition root enters it once (``async with open_stores(settings) as stores``) and hands the
parts to whatever needs them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from twin.settings import Settings
from twin.store.accounts import AccountStore
from twin.store.feed import CommitFeed
from twin.store.local import LocalAccountStore, LocalJournalStore
from twin.store.protocol import JournalStore, LeaseStore

JOURNAL_FILE: Final = "journal.sqlite"
USERS_FILE: Final = "users.sqlite"


@dataclass(frozen=True, slots=True)
class Stores:
    """The stores of one twin process. ``leases`` and ``feed`` are None on a single machine."""

    journal: JournalStore
    accounts: AccountStore
    leases: LeaseStore | None
    feed: CommitFeed | None
    backend: str
    """``sqlite`` or ``postgres`` (for logs and ``/healthz``)."""


@contextlib.asynccontextmanager
async def open_stores(settings: Settings, *, data_dir: Path | None = None) -> AsyncIterator[Stores]:
    """The stores ``settings`` ask for (see the module docstring), closed on exit. Raises
    ``StoreUnavailable`` when PostgreSQL cannot be reached for the migration and
    :class:`~twin.store.postgres.SchemaError` for a database of a newer PumpTwin."""
    if settings.database.url is None:
        directory = data_dir or settings.data_dir
        journal = LocalJournalStore(directory / JOURNAL_FILE)
        try:
            accounts = LocalAccountStore(directory / USERS_FILE)
        except BaseException:
            await journal.close()
            raise
        try:
            yield Stores(journal, accounts, None, None, "sqlite")
        finally:
            await accounts.close()
            await journal.close()
        return
    from twin.store.postgres import Limits, postgres_stores

    call = settings.database.call_timeout_s
    # the server's own limits inside the client's, so that its error (not a bare timeout) says what happened
    limits = Limits(
        call_timeout_s=call,
        statement_timeout_s=0.8 * call,
        lock_timeout_s=min(0.5 * call, settings.cluster.lease_ttl_s / 3),
        idle_in_transaction_s=min(0.5 * call, settings.cluster.lease_ttl_s / 2),
        pool_max=settings.database.pool_max,
    )
    async with postgres_stores(
        settings.database.url.get_secret_value(), replica=settings.cluster.replica_id, limits=limits
    ) as pg:
        yield Stores(pg.journal, pg.accounts, pg.leases, pg.feed, "postgres")


__all__ = ["JOURNAL_FILE", "USERS_FILE", "Stores", "open_stores"]
