"""Alembic's entry point for the PostgreSQL store: run by :func:`twin.store.postgres.schema.migrate`
with an open connection in ``config.attributes["connection"]``.

All migrations of one upgrade run in one transaction (PostgreSQL has transactional DDL), after
taking a transaction-scoped advisory lock, so replicas that start at once migrate one after the
other: the second finds the schema at head and does nothing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

MIGRATION_LOCK = 0x70756D70  # "pump": the advisory lock key that serialises migrations

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.run_migrations()
