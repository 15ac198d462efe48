"""Alembic's entry point for the PostgreSQL store.

The twin runs it through :func:`twin.store.postgres.schema.migrate` with an open connection in
``config.attributes["connection"]``. An operator can run it with alembic's own command line
(``alembic -c <ini with script_location = twin/store/postgres/migrations> upgrade head``), the
database URL then coming from ``sqlalchemy.url`` or ``PUMPTWIN_DATABASE__URL``; ``--sql`` writes
the SQL for review instead of running it.

All migrations of one upgrade run in one transaction (PostgreSQL has transactional DDL), after
taking a transaction-scoped advisory lock, so replicas that start at once migrate one after the
other: the second finds the schema at head and does nothing.
"""

from __future__ import annotations

import os

import sqlalchemy
from alembic import context
from sqlalchemy import text

from twin.store.postgres.schema import sqlalchemy_url

MIGRATION_LOCK = 0x70756D70  # "pump": the advisory lock key that serialises migrations


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("PUMPTWIN_DATABASE__URL")
    if not url:
        raise SystemExit("no database: set sqlalchemy.url or PUMPTWIN_DATABASE__URL")
    return url


def _run(connection: sqlalchemy.Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=sqlalchemy_url(_url()), literal_binds=True, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
elif "connection" in context.config.attributes:
    _run(context.config.attributes["connection"])
else:
    engine = sqlalchemy.create_engine(sqlalchemy_url(_url()), poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()
    engine.dispose()
