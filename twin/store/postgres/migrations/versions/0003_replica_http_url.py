"""Where each replica's HTTP API answers, so that another replica can forward a command or an alarm
action for a partition it does not serve to the replica that does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

* ``twin_replica.http_url``: the base URL a replica advertises (``PUMPTWIN_CLUSTER__HTTP_URL``,
  or ``http://<host name>:<port>`` of its own server), written when its server has started.
  NULL for a replica that has not said (an older PumpTwin, or one that started a moment ago): a
  request for its partitions is then answered 503 ``not_served_here`` with ``Retry-After``.
  The owner of a partition is ``partition_lease.owner``; its address is this column of that
  owner's row.

Self-contained on purpose (no import of earlier revisions' helpers): a released revision never changes.
"""

from __future__ import annotations

from alembic import context, op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = r"""
ALTER TABLE twin_replica ADD COLUMN http_url text CHECK (http_url IS NULL OR http_url ~ '^https?://');
"""


def _execute(sql: str) -> None:
    """Run ``sql`` on psycopg's own cursor, as revisions 0001 and 0002 do. Offline
    (``alembic upgrade --sql``): written out as it is."""
    if context.is_offline_mode():
        op.get_context().impl.static_output(sql)
        return
    cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # a DBAPI connection is open online
    cursor.execute(sql)


def upgrade() -> None:
    _execute(SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("the journal is an audit trail: migrations only go forward")
