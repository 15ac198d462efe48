"""Escalations of unanswered alarms, the pump frames of training sessions, and the latch an
alarm keeps while it is suppressed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The PostgreSQL side of the SQLite journal's schema 5 (``twin/store/journal.py``), in
PostgreSQL's types:

* ``alarm_escalation``: every :class:`~twin.alarms.escalation.Escalation` (an unanswered alarm
  reaching a tier of its ladder, with who was told). Identity ``escalation_id`` (unique): a
  repeat inserts nothing. ``recipients``/``notified`` are ``text[]`` (as the policy names them,
  the accounts they resolved to);
* ``training_frame``: every :class:`~twin.training.frames.PumpFrame` (what a session pump showed:
  a replay plays them back). Identity ``(session_id, site, device_id, seq)`` (unique).

* ``current_alarm.latch_pending``: :attr:`~twin.alarms.lifecycle.Alarm.latch_pending` (a latched
  occurrence nobody acknowledged is hidden by a shelve or out of service: it comes back
  cleared-unacknowledged, never normal), which revision 0001 did not keep, so a store planned a
  shelved alarm's next transition against an alarm without it. Existing rows are filled from the
  journal by the lifecycle's rule: a latching alarm now shelved or out of service owes its
  acknowledgement iff, since it last was neither, it entered suppression from ``AU``/``CU`` or
  its condition returned (``raise``). The row trigger (versions only move forward) is off for that
  one update; a CHECK then holds the lifecycle's invariant (only for a latching alarm, only while
  shelved or out of service).

The two new tables are append-only: ``UPDATE``, ``DELETE`` and ``TRUNCATE`` are refused by trigger (SQLSTATE
23001, ``restrict_violation``) with revision 0001's ``pumptwin_append_only()``. Indexes serve
the store's reads: by key, by site (restore of some partitions' sites) and by time for
escalations; by session and by time for frames, each in journal order (``id``).

Self-contained on purpose (no import of 0001's helpers): a released revision never changes.
"""

from __future__ import annotations

from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

APPEND_ONLY = ("alarm_escalation", "training_frame")

SCHEMA = r"""
CREATE TABLE alarm_escalation (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    escalation_id text NOT NULL UNIQUE,
    key text NOT NULL,
    device_id text NOT NULL,
    site text NOT NULL,
    code text NOT NULL,
    priority text NOT NULL,
    level integer NOT NULL CHECK (level >= 1),
    tier text NOT NULL,
    recipients text[] NOT NULL,
    notified text[] NOT NULL,
    unacknowledged_since timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    at timestamptz NOT NULL,
    alarm_version integer NOT NULL CHECK (alarm_version >= 1),
    alarm_state text NOT NULL,
    message text NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX alarm_escalation_key ON alarm_escalation (key, id);
CREATE INDEX alarm_escalation_site ON alarm_escalation (site, id);
CREATE INDEX alarm_escalation_at ON alarm_escalation (at);

CREATE TABLE training_frame (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id text NOT NULL,
    site text NOT NULL,
    device_id text NOT NULL,
    seq integer NOT NULL CHECK (seq >= 1),
    at timestamptz NOT NULL,
    state jsonb NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    UNIQUE (session_id, site, device_id, seq)
);
CREATE INDEX training_frame_session ON training_frame (session_id, id);
CREATE INDEX training_frame_at ON training_frame (at);

ALTER TABLE current_alarm ADD COLUMN latch_pending boolean NOT NULL DEFAULT false;
ALTER TABLE current_alarm DISABLE TRIGGER current_alarm_moves_on;
UPDATE current_alarm AS c SET latch_pending = true
WHERE c.latching AND c.state IN ('shelved', 'out_of_service') AND EXISTS (
    SELECT 1 FROM alarm_journal AS j
    WHERE j.key = c.key
      AND j.version > (
          SELECT coalesce(max(o.version), 0) FROM alarm_journal AS o
          WHERE o.key = c.key AND o.to_state NOT IN ('shelved', 'out_of_service')
      )
      AND (j.event = 'raise' OR j.from_state IN ('active_unacknowledged', 'cleared_unacknowledged'))
);
ALTER TABLE current_alarm ENABLE TRIGGER current_alarm_moves_on;
ALTER TABLE current_alarm ADD CONSTRAINT current_alarm_latch_pending
    CHECK (NOT latch_pending OR (latching AND state IN ('shelved', 'out_of_service')));
"""


def _append_only(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION pumptwin_append_only();\n"
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION pumptwin_append_only();\n"
    )


def _execute(sql: str) -> None:
    """Run ``sql`` (several statements) on psycopg's own cursor, as revision 0001 does (no
    placeholders). Offline (``alembic upgrade --sql``): written out as it is."""
    if context.is_offline_mode():
        op.get_context().impl.static_output(sql)
        return
    cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # a DBAPI connection is open online
    cursor.execute(sql)


def upgrade() -> None:
    _execute(SCHEMA + "".join(_append_only(table) for table in APPEND_ONLY))


def downgrade() -> None:
    raise NotImplementedError("the journal is an audit trail: migrations only go forward")
