"""The first schema: the journal, the current alarms and snapshots, partition leases, accounts.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Plain SQL (``op.execute``): the schema is written out, not generated from models. Never edit a
migration that was released; add the next one.

The same tables as the SQLite journal and ``users.sqlite`` (``twin/store/journal.py``,
``twin/store/users.py``), in PostgreSQL's types (``timestamptz``, ``jsonb``, ``boolean``), plus:

* ``current_alarm``: every alarm point as its latest transition left it, upserted in the same
  transaction as the transitions (any replica answers fleet-wide reads from it); a trigger
  refuses any change that does not move the version forward;
* ``partition_lease``: one row per partition ever leased, never deleted (its ``epoch`` must
  survive a release, or a stale owner's fence could match again); a trigger refuses an epoch that
  goes back, and a new owner without a new epoch;
* ``twin_replica``: replica heartbeats (liveness for rendezvous hashing).

Append-only tables refuse ``UPDATE``, ``DELETE`` and ``TRUNCATE`` by trigger (SQLSTATE 23001,
``restrict_violation``), whoever the client is.
"""

from __future__ import annotations

from alembic import context, op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

APPEND_ONLY = (
    "alarm_journal",
    "device_alarm_event",
    "command_log",
    "alarm_response",
    "training_event",
    "account_event",
)

SCHEMA = r"""
CREATE FUNCTION pumptwin_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TABLE alarm_journal (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    device_id text NOT NULL,
    site text NOT NULL,
    code text NOT NULL,
    priority text NOT NULL,
    source text NOT NULL CHECK (source IN ('device', 'twin')),
    latching boolean NOT NULL,
    message text NOT NULL,
    event text NOT NULL,
    from_state text,
    to_state text NOT NULL,
    actor text NOT NULL,
    at timestamptz NOT NULL,
    comment text,
    raised_at timestamptz NOT NULL,
    time_to_ack_s double precision,
    expires_at timestamptz,
    recorded_at timestamptz NOT NULL,
    recorded_by text NOT NULL,
    UNIQUE (key, version)
);
CREATE INDEX alarm_journal_at ON alarm_journal (at, key, version);
CREATE INDEX alarm_journal_device ON alarm_journal (device_id, at);
CREATE INDEX alarm_journal_site ON alarm_journal (site, at);

CREATE TABLE current_alarm (
    key text PRIMARY KEY,
    device_id text NOT NULL,
    site text NOT NULL,
    code text NOT NULL,
    source text NOT NULL CHECK (source IN ('device', 'twin')),
    priority text NOT NULL,
    latching boolean NOT NULL,
    message text NOT NULL,
    raised_at timestamptz NOT NULL,
    condition_active boolean NOT NULL,
    state text NOT NULL,
    cleared_at timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz,
    silenced_until timestamptz,
    shelved_until timestamptz,
    shelved_by text,
    version integer NOT NULL CHECK (version >= 1),
    unacknowledged_since timestamptz
);
CREATE INDEX current_alarm_site ON current_alarm (site, key);

CREATE FUNCTION pumptwin_current_alarm_moves_on() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'current_alarm rows are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.version <= OLD.version OR NEW.key <> OLD.key THEN
        RAISE EXCEPTION 'current_alarm %: version % does not follow %', OLD.key, NEW.version, OLD.version
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER current_alarm_moves_on BEFORE UPDATE OR DELETE ON current_alarm
    FOR EACH ROW EXECUTE FUNCTION pumptwin_current_alarm_moves_on();

CREATE TABLE device_alarm_event (
    site text NOT NULL,
    device_id text NOT NULL,
    alarm_id text NOT NULL,
    event text NOT NULL,
    code text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (site, device_id, alarm_id, event)
);
CREATE INDEX device_alarm_event_recorded ON device_alarm_event (recorded_at);

CREATE TABLE command_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_id text NOT NULL,
    device_id text NOT NULL,
    site text NOT NULL,
    status text NOT NULL,
    actor text NOT NULL,
    at timestamptz NOT NULL,
    detail jsonb NOT NULL CHECK (jsonb_typeof(detail) = 'object'),
    UNIQUE (command_id, status)
);
CREATE INDEX command_log_device ON command_log (device_id, id);
CREATE INDEX command_log_site ON command_log (site, id);

CREATE TABLE twin_snapshot (
    site text NOT NULL,
    device_id text NOT NULL,
    version bigint NOT NULL,
    payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site, device_id)
);

CREATE TABLE alarm_response (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    response_id text NOT NULL UNIQUE,
    key text NOT NULL,
    device_id text NOT NULL,
    site text NOT NULL,
    code text NOT NULL,
    priority text NOT NULL,
    alarm_version integer NOT NULL CHECK (alarm_version >= 1),
    alarm_state text NOT NULL,
    action text NOT NULL,
    note text,
    actor text NOT NULL,
    role text NOT NULL,
    at timestamptz NOT NULL,
    command_id text,
    detail jsonb NOT NULL CHECK (jsonb_typeof(detail) = 'object'),
    recorded_at timestamptz NOT NULL
);
CREATE INDEX alarm_response_key ON alarm_response (key, id);
CREATE INDEX alarm_response_at ON alarm_response (at);
CREATE INDEX alarm_response_actor ON alarm_response (actor, at);

CREATE TABLE training_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id text NOT NULL,
    event text NOT NULL,
    actor text NOT NULL,
    at timestamptz NOT NULL,
    detail jsonb NOT NULL CHECK (jsonb_typeof(detail) = 'object'),
    UNIQUE (session_id, event)
);
CREATE INDEX training_event_session ON training_event (session_id, id);

CREATE TABLE partition_lease (
    partition integer PRIMARY KEY CHECK (partition >= 0),
    owner text,
    epoch bigint NOT NULL CHECK (epoch >= 1),
    expires_at timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
);

CREATE FUNCTION pumptwin_lease_epoch_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'partition_lease rows are never deleted (the epoch must survive)'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.partition <> OLD.partition OR NEW.epoch < OLD.epoch THEN
        RAISE EXCEPTION 'partition % lease: epoch % would go back from %', OLD.partition, NEW.epoch, OLD.epoch
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.owner IS NOT NULL AND NEW.owner IS DISTINCT FROM OLD.owner AND NEW.epoch = OLD.epoch THEN
        RAISE EXCEPTION 'partition % lease: a new owner % needs a new epoch', OLD.partition, NEW.owner
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER partition_lease_epoch_grows BEFORE UPDATE OR DELETE ON partition_lease
    FOR EACH ROW EXECUTE FUNCTION pumptwin_lease_epoch_grows();
CREATE TRIGGER partition_lease_no_truncate BEFORE TRUNCATE ON partition_lease
    FOR EACH STATEMENT EXECUTE FUNCTION pumptwin_append_only();

CREATE TABLE twin_replica (
    replica text PRIMARY KEY,
    alive_until timestamptz NOT NULL,
    seen_at timestamptz NOT NULL
);

CREATE TABLE account (
    username text PRIMARY KEY,
    role text NOT NULL CHECK (role IN ('viewer', 'trainee', 'instructor', 'admin')),
    password_hash text NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE login_session (
    token_digest text PRIMARY KEY,
    username text NOT NULL REFERENCES account (username),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX login_session_user ON login_session (username);
CREATE INDEX login_session_expiry ON login_session (expires_at);

CREATE TABLE account_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    username text NOT NULL,
    change text NOT NULL,
    detail jsonb NOT NULL CHECK (jsonb_typeof(detail) = 'object')
);
CREATE INDEX account_event_user ON account_event (username, id);
"""


def _append_only(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION pumptwin_append_only();\n"
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION pumptwin_append_only();\n"
    )


def _execute(sql: str) -> None:
    """Run ``sql`` (several statements) on psycopg's own cursor: no placeholders, so the ``%`` of
    PL/pgSQL's RAISE formats reach the server as written. Offline (``alembic upgrade --sql``):
    written out as it is."""
    if context.is_offline_mode():
        op.get_context().impl.static_output(sql)  # verbatim: op.execute would double every %
        return
    cursor = op.get_bind().connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # a DBAPI connection is open online
    cursor.execute(sql)


def upgrade() -> None:
    _execute(SCHEMA + "".join(_append_only(table) for table in APPEND_ONLY))


def downgrade() -> None:
    raise NotImplementedError("the journal is an audit trail: migrations only go forward")
