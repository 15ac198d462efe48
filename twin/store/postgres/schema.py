"""The PostgreSQL schema's migrations: alembic, with plain-SQL revisions in ``migrations/versions``.

Why alembic: it is the migration tool of Python's PostgreSQL ecosystem (revision graph, a version
table, offline SQL scripts for a DBA to review: ``alembic upgrade head --sql``); it needs
SQLAlchemy only as its connection layer here (no ORM, no models: each revision is the SQL it
runs), on the same psycopg driver as the twin. The twin migrates at start-up
(:func:`migrate`, serialised between replicas by an advisory lock in ``migrations/env.py``); an
operator can run the same revisions by hand.

Failure modes: :class:`SchemaError` when the database holds a revision this PumpTwin does not know
(written by a newer one: refused, never downgraded); ``StoreUnavailable`` when the server cannot
be reached.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Final

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from twin.store.postgres.database import redacted, unavailable
from twin.store.protocol import StoreUnavailable

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"

_ONE_AT_A_TIME: Final = threading.Lock()
"""Alembic keeps its migration context in module globals: one upgrade per process at a time
(between processes, the advisory lock in ``migrations/env.py`` orders them)."""


class SchemaError(Exception):
    """The database's schema cannot be used by this PumpTwin (see the module docstring)."""


def alembic_config() -> Config:
    """The alembic configuration of the store's revisions (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head() -> str:
    """The newest revision this PumpTwin knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def sqlalchemy_url(url: str) -> sqlalchemy.URL:
    """A ``postgresql://`` URL (libpq's form) as SQLAlchemy's, on the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {redacted(url)}")
    return parsed.set(drivername="postgresql+psycopg")


def migrate_sync(url: str) -> str:
    """Bring the database at ``url`` to :func:`head`; return the revision it is at."""
    with _ONE_AT_A_TIME:
        return _migrate(url)


def _migrate(url: str) -> str:
    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            script = ScriptDirectory.from_config(alembic_config())
            if current is not None and current not in {r.revision for r in script.walk_revisions()}:
                raise SchemaError(
                    f"{redacted(url)} is at schema revision {current!r}, which this PumpTwin does not know "
                    f"(it knows up to {head()!r}): it was written by a newer PumpTwin"
                )
            connection.rollback()
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
            return MigrationContext.configure(connection).get_current_revision() or ""
    except CommandError as error:
        raise SchemaError(f"{redacted(url)}: {error}") from error
    except sqlalchemy.exc.OperationalError as error:
        raise StoreUnavailable(f"PostgreSQL {redacted(url)}: {error.orig}") from error
    except OSError as error:
        if unavailable(error):
            raise StoreUnavailable(f"PostgreSQL {redacted(url)}: {error}") from error
        raise
    finally:
        engine.dispose()


async def migrate(url: str) -> str:
    """:func:`migrate_sync` in a worker thread (alembic is synchronous)."""
    return await asyncio.to_thread(migrate_sync, url)


__all__ = ["MIGRATIONS_DIR", "SchemaError", "alembic_config", "head", "migrate", "migrate_sync", "sqlalchemy_url"]
