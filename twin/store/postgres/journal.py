"""The journal, the current alarms and the snapshots in PostgreSQL: :class:`PostgresJournalStore`.

A commit is one transaction, in this order:

1. the fence: the partition's lease row is read ``FOR SHARE`` and the batch is refused with
   :class:`~twin.store.protocol.StaleEpoch` unless the fence's epoch is its current epoch and the
   lease is held. The shared row lock makes a takeover (which updates that row) wait until this
   commit ends, so a new owner that restores after taking over sees everything the old owner
   committed under its epoch, and nothing lands after;
2. the touched keys' ``current_alarm`` rows are locked ``FOR UPDATE`` (in key order) and the
   batch is planned against them (:func:`~twin.store.batch_plan.plan_transitions`); repeats are
   compared with the stored transitions (:class:`~twin.store.journal.JournalConflict`);
3. the new transitions are appended (one ``INSERT ... SELECT FROM jsonb_to_recordset(...)``:
   one round trip whatever the batch's size), ``current_alarm`` is upserted with the folded alarms, then device
   events, commands, responses, training events, escalations and session pump frames are
   appended and the snapshots upserted (``ON CONFLICT DO NOTHING`` on each record's identity: a
   repeat writes nothing);
4. a notice of what was new goes out with ``pg_notify`` (:mod:`twin.store.feed`): delivered to
   the other replicas when the transaction commits, never if it does not. The feed's notices
   have no field for escalations and frames, so those are written but not announced (a batch of
   nothing else sends no notice).

If a concurrent transaction appended a planned (key, version) first (two writers on one key:
possible only without fences), the transaction is run again and finds the row a repeat or a
conflict. Append-only tables refuse updates and deletes by trigger (see the migration), so even a
client other than this class cannot rewrite the journal.

Failure modes: as :mod:`twin.store.protocol` says; ``ValueError`` for naive datetimes and
payloads JSON cannot hold (NaN, non-string keys).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, cast

from psycopg import AsyncConnection, sql

from twin.alarms.device_events import DeviceEventKey
from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import Alarm, AlarmState, Source, Transition, TransitionEvent
from twin.alarms.responses import AlarmResponse
from twin.contract.alarms import Priority
from twin.mirror.commands import CommandRecord
from twin.store.batch_plan import JournalConflict, JournalError, plan_transitions, touched_keys
from twin.store.feed import CHANNEL, CommitNotice, Committed, encode_notices
from twin.store.local import MARKS_RESTORED_FOR
from twin.store.postgres.database import Database, LostRace
from twin.store.protocol import Batch, Restored, Snapshot, StaleEpoch
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame

Column = tuple[str, str]
"""A column's name and its PostgreSQL type (the cast of its value in a bulk insert)."""

TRANSITION_COLUMNS: Final[tuple[Column, ...]] = (
    ("key", "text"),
    ("version", "int4"),
    ("device_id", "text"),
    ("site", "text"),
    ("code", "text"),
    ("priority", "text"),
    ("source", "text"),
    ("latching", "bool"),
    ("message", "text"),
    ("event", "text"),
    ("from_state", "text"),
    ("to_state", "text"),
    ("actor", "text"),
    ("at", "timestamptz"),
    ("comment", "text"),
    ("raised_at", "timestamptz"),
    ("time_to_ack_s", "float8"),
    ("expires_at", "timestamptz"),
)

ALARM_COLUMNS: Final[tuple[Column, ...]] = (
    ("key", "text"),
    ("device_id", "text"),
    ("site", "text"),
    ("code", "text"),
    ("source", "text"),
    ("priority", "text"),
    ("latching", "bool"),
    ("message", "text"),
    ("raised_at", "timestamptz"),
    ("condition_active", "bool"),
    ("state", "text"),
    ("cleared_at", "timestamptz"),
    ("acknowledged_by", "text"),
    ("acknowledged_at", "timestamptz"),
    ("silenced_until", "timestamptz"),
    ("shelved_until", "timestamptz"),
    ("shelved_by", "text"),
    ("version", "int4"),
    ("unacknowledged_since", "timestamptz"),
    ("latch_pending", "bool"),
)

RESPONSE_COLUMNS: Final[tuple[Column, ...]] = (
    ("response_id", "text"),
    ("key", "text"),
    ("device_id", "text"),
    ("site", "text"),
    ("code", "text"),
    ("priority", "text"),
    ("alarm_version", "int4"),
    ("alarm_state", "text"),
    ("action", "text"),
    ("note", "text"),
    ("actor", "text"),
    ("role", "text"),
    ("at", "timestamptz"),
    ("command_id", "text"),
    ("detail", "jsonb"),
)

COMMAND_COLUMNS: Final[tuple[Column, ...]] = (
    ("command_id", "text"),
    ("device_id", "text"),
    ("site", "text"),
    ("status", "text"),
    ("actor", "text"),
    ("at", "timestamptz"),
    ("detail", "jsonb"),
)

TRAINING_COLUMNS: Final[tuple[Column, ...]] = (
    ("session_id", "text"),
    ("event", "text"),
    ("actor", "text"),
    ("at", "timestamptz"),
    ("detail", "jsonb"),
)

SNAPSHOT_COLUMNS: Final[tuple[Column, ...]] = (
    ("site", "text"),
    ("device_id", "text"),
    ("version", "int8"),
    ("payload", "jsonb"),
)

ESCALATION_COLUMNS: Final[tuple[Column, ...]] = (
    ("escalation_id", "text"),
    ("key", "text"),
    ("device_id", "text"),
    ("site", "text"),
    ("code", "text"),
    ("priority", "text"),
    ("level", "int4"),
    ("tier", "text"),
    ("recipients", "text[]"),
    ("notified", "text[]"),
    ("unacknowledged_since", "timestamptz"),
    ("due_at", "timestamptz"),
    ("at", "timestamptz"),
    ("alarm_version", "int4"),
    ("alarm_state", "text"),
    ("message", "text"),
)

FRAME_COLUMNS: Final[tuple[Column, ...]] = (
    ("session_id", "text"),
    ("site", "text"),
    ("device_id", "text"),
    ("seq", "int4"),
    ("at", "timestamptz"),
    ("state", "jsonb"),
)

DEVICE_EVENT_COLUMNS: Final[tuple[Column, ...]] = (
    ("site", "text"),
    ("device_id", "text"),
    ("alarm_id", "text"),
    ("event", "text"),
    ("code", "text"),
)


def _names(columns: Sequence[Column]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)


def _select(columns: Sequence[Column], table: str) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {}").format(_names(columns), sql.Identifier(table))


def _bulk_insert(
    table: str,
    columns: Sequence[Column],
    constants: Sequence[Column] = (),
    tail: str = "",
) -> sql.Composed:
    """``INSERT INTO table (columns, constants) SELECT ... FROM ROWS FROM (jsonb_to_recordset(%s)
    AS (column type, ...)) WITH ORDINALITY ... ORDER BY ordinality`` followed by ``tail`` (conflict
    clause, RETURNING): every row of a batch in one statement, in batch order. The rows travel as
    one JSON array of objects (the standard library's C encoder; the server converts each value
    to its column's type), cheaper for the client than adapting one typed array per column
    (measured: psycopg's array dumpers took about 5 ms of a 100-row commit). Parameters:
    :func:`_bulk_params`."""
    names = [name for name, _ in columns]
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type)) for name, pg_type in columns
    )
    values: list[sql.Composable] = [sql.SQL("u.{}").format(sql.Identifier(name)) for name in names]
    values += [sql.SQL("%s::" + pg_type) for _, pg_type in constants]
    return sql.SQL(
        "INSERT INTO {table} ({names}) SELECT {values} FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({definition})) "
        "WITH ORDINALITY AS u({aliases}, n) ORDER BY u.n " + tail
    ).format(
        table=sql.Identifier(table),
        names=sql.SQL(", ").join([_names(columns), *([_names(constants)] if constants else [])]),
        values=sql.SQL(", ").join(values),
        definition=definition,
        aliases=_names(columns),
    )


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _bulk_params(
    columns: Sequence[Column], rows: Sequence[Sequence[object]], constants: Sequence[object] = ()
) -> list[object]:
    """The parameters of a :func:`_bulk_insert`: the constants (first in the statement's text),
    then the rows as one JSON array of objects (column -> value). ``ValueError`` for what JSON
    cannot hold (NaN, infinity), ``TypeError`` for objects."""
    names = [name for name, _ in columns]
    objects = [dict(zip(names, row, strict=True)) for row in rows]
    return [
        *constants,
        json.dumps(objects, default=_json_value, allow_nan=False, ensure_ascii=False, separators=(",", ":")),
    ]


def _dumps(value: object) -> str:
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no timezone")
    return at


def _maybe(at: datetime | None) -> datetime | None:
    return None if at is None else _aware(at)


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC)


def _source(text: str) -> Source:
    if text == "device":
        return "device"
    if text == "twin":
        return "twin"
    raise JournalError(f"unknown alarm source {text!r} in the journal")


def transition_row(t: Transition) -> tuple[object, ...]:
    return (
        t.key,
        t.version,
        t.device_id,
        t.site,
        str(t.code),
        Priority(t.priority).value,
        t.source,
        t.latching,
        t.message,
        TransitionEvent(t.event).value,
        None if t.from_state is None else AlarmState(t.from_state).value,
        AlarmState(t.to_state).value,
        t.actor,
        _aware(t.at),
        t.comment,
        _aware(t.raised_at),
        t.time_to_ack_s,
        _maybe(t.expires_at),
    )


def transition_from(row: Sequence[Any]) -> Transition:
    (key, version, device_id, site, code, priority, source, latching, message, event, from_state, to_state, actor) = (
        row[:13]
    )
    at, comment, raised_at, time_to_ack_s, expires_at = row[13:18]
    return Transition(
        key=key,
        device_id=device_id,
        site=site,
        code=code,
        priority=Priority(priority),
        from_state=None if from_state is None else AlarmState(from_state),
        to_state=AlarmState(to_state),
        event=TransitionEvent(event),
        actor=actor,
        at=at.astimezone(UTC),
        comment=comment,
        raised_at=raised_at.astimezone(UTC),
        time_to_ack_s=time_to_ack_s,
        version=version,
        source=_source(source),
        latching=latching,
        message=message,
        expires_at=_utc(expires_at),
    )


def alarm_row(a: Alarm) -> tuple[object, ...]:
    return (
        a.key,
        a.device_id,
        a.site,
        str(a.code),
        a.source,
        Priority(a.priority).value,
        a.latching,
        a.message,
        a.raised_at,
        a.condition_active,
        AlarmState(a.state).value,
        a.cleared_at,
        a.acknowledged_by,
        a.acknowledged_at,
        a.silenced_until,
        a.shelved_until,
        a.shelved_by,
        a.version,
        a.unacknowledged_since,
        a.latch_pending,
    )


def alarm_from(row: Sequence[Any]) -> Alarm:
    (key, device_id, site, code, source, priority, latching, message, raised_at, condition_active, state) = row[:11]
    cleared_at, acknowledged_by, acknowledged_at, silenced_until, shelved_until, shelved_by, version, unack = row[11:19]
    return Alarm(
        key=key,
        device_id=device_id,
        site=site,
        code=code,
        source=_source(source),
        priority=Priority(priority),
        latching=latching,
        message=message,
        raised_at=raised_at.astimezone(UTC),
        condition_active=condition_active,
        state=AlarmState(state),
        cleared_at=_utc(cleared_at),
        acknowledged_by=acknowledged_by,
        acknowledged_at=_utc(acknowledged_at),
        silenced_until=_utc(silenced_until),
        shelved_until=_utc(shelved_until),
        shelved_by=shelved_by,
        version=version,
        unacknowledged_since=_utc(unack),
        latch_pending=row[19],
    )


def response_row(r: AlarmResponse) -> tuple[object, ...]:
    return (
        r.response_id,
        r.key,
        r.device_id,
        r.site,
        r.code,
        r.priority,
        r.alarm_version,
        r.alarm_state,
        r.action,
        r.note,
        r.actor,
        r.role,
        _aware(r.at),
        r.command_id,
        dict(r.detail),
    )


def response_from(row: Sequence[Any]) -> AlarmResponse:
    (rid, key, device_id, site, code, priority, version, state, action, note, actor, role, at, command_id, detail) = row
    return AlarmResponse(
        response_id=rid,
        key=key,
        device_id=device_id,
        site=site,
        code=code,
        priority=priority,
        alarm_version=version,
        alarm_state=state,
        action=action,
        note=note,
        actor=actor,
        role=role,
        at=at.astimezone(UTC),
        command_id=command_id,
        detail=detail,
    )


def command_row(c: CommandRecord) -> tuple[object, ...]:
    return (c.command_id, c.device_id, c.site, str(c.status), c.actor, _aware(c.at), dict(c.detail))


def command_from(row: Sequence[Any]) -> CommandRecord:
    command_id, device_id, site, status, actor, at, detail = row
    return CommandRecord(command_id, device_id, site, status, actor, at.astimezone(UTC), detail)


def training_row(e: TrainingEvent) -> tuple[object, ...]:
    return (e.session_id, e.event, e.actor, _aware(e.at), dict(e.detail))


def training_from(row: Sequence[Any]) -> TrainingEvent:
    session_id, event, actor, at, detail = row
    return TrainingEvent(session_id, event, actor, at.astimezone(UTC), detail)


def escalation_row(e: Escalation) -> tuple[object, ...]:
    return (
        e.escalation_id,
        e.key,
        e.device_id,
        e.site,
        str(e.code),
        Priority(e.priority).value,
        e.level,
        e.tier,
        list(e.recipients),
        list(e.notified),
        _aware(e.unacknowledged_since),
        _aware(e.due_at),
        _aware(e.at),
        e.alarm_version,
        AlarmState(e.alarm_state).value,
        e.message,
    )


def escalation_from(row: Sequence[Any]) -> Escalation:
    (eid, key, device_id, site, code, priority, level, tier, recipients, notified, since, due_at, at) = row[:13]
    alarm_version, alarm_state, message = row[13:]
    return Escalation(
        escalation_id=eid,
        key=key,
        device_id=device_id,
        site=site,
        code=code,
        priority=Priority(priority),
        level=level,
        tier=tier,
        recipients=tuple(recipients),
        notified=tuple(notified),
        unacknowledged_since=since.astimezone(UTC),
        due_at=due_at.astimezone(UTC),
        at=at.astimezone(UTC),
        alarm_version=alarm_version,
        alarm_state=AlarmState(alarm_state),
        message=message,
    )


def frame_row(f: PumpFrame) -> tuple[object, ...]:
    return (f.session_id, f.site, f.device_id, f.seq, _aware(f.at), dict(f.state))


def frame_from(row: Sequence[Any]) -> PumpFrame:
    session_id, site, device_id, seq, at, state = row
    return PumpFrame(session_id, site, device_id, seq, at.astimezone(UTC), state)


_INSERT_TRANSITIONS: Final = _bulk_insert(
    "alarm_journal",
    TRANSITION_COLUMNS,
    (("recorded_at", "timestamptz"), ("recorded_by", "text")),
    "ON CONFLICT (key, version) DO NOTHING RETURNING key, version",
)
_UPSERT_ALARMS: Final = _bulk_insert(
    "current_alarm",
    ALARM_COLUMNS,
    (),
    "ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name, _ in ALARM_COLUMNS if name != "key"),
)
_INSERT_DEVICE_EVENTS: Final = _bulk_insert(
    "device_alarm_event",
    DEVICE_EVENT_COLUMNS,
    (("recorded_at", "timestamptz"),),
    "ON CONFLICT DO NOTHING RETURNING site, device_id, alarm_id, event, code",
)
_INSERT_COMMANDS: Final = _bulk_insert(
    "command_log", COMMAND_COLUMNS, (), "ON CONFLICT (command_id, status) DO NOTHING RETURNING command_id, status"
)
_INSERT_RESPONSES: Final = _bulk_insert(
    "alarm_response",
    RESPONSE_COLUMNS,
    (("recorded_at", "timestamptz"),),
    "ON CONFLICT (response_id) DO NOTHING RETURNING response_id",
)
_INSERT_TRAINING: Final = _bulk_insert(
    "training_event", TRAINING_COLUMNS, (), "ON CONFLICT (session_id, event) DO NOTHING RETURNING session_id, event"
)
_INSERT_ESCALATIONS: Final = _bulk_insert(
    "alarm_escalation",
    ESCALATION_COLUMNS,
    (("recorded_at", "timestamptz"),),
    "ON CONFLICT (escalation_id) DO NOTHING RETURNING escalation_id",
)
_INSERT_FRAMES: Final = _bulk_insert(
    "training_frame", FRAME_COLUMNS, (), "ON CONFLICT (session_id, site, device_id, seq) DO NOTHING"
)
_UPSERT_SNAPSHOTS: Final = _bulk_insert(
    "twin_snapshot",
    SNAPSHOT_COLUMNS,
    (("updated_at", "timestamptz"),),
    "ON CONFLICT (site, device_id) DO UPDATE SET version = excluded.version, payload = excluded.payload, "
    "updated_at = excluded.updated_at WHERE excluded.version > twin_snapshot.version "
    "OR (excluded.version = twin_snapshot.version AND excluded.payload IS DISTINCT FROM twin_snapshot.payload) "
    "RETURNING site, device_id",
)

_SELECT_TRANSITIONS: Final = _select(TRANSITION_COLUMNS, "alarm_journal")
_SELECT_ALARMS: Final = _select(ALARM_COLUMNS, "current_alarm")
_SELECT_RESPONSES: Final = _select(RESPONSE_COLUMNS, "alarm_response")
_SELECT_COMMANDS: Final = _select(COMMAND_COLUMNS, "command_log")
_SELECT_TRAINING: Final = _select(TRAINING_COLUMNS, "training_event")
_SELECT_ESCALATIONS: Final = _select(ESCALATION_COLUMNS, "alarm_escalation")
_SELECT_FRAMES: Final = _select(FRAME_COLUMNS, "training_frame")


def _where(
    conditions: Sequence[tuple[str, object | None]], extra: Sequence[tuple[str, object]] = ()
) -> tuple[sql.Composable, list[object]]:
    """``WHERE column = %s AND ...`` for every condition whose value is given, plus ``extra``
    (SQL text with one placeholder, value)."""
    parts: list[sql.Composable] = []
    params: list[object] = []
    for column, value in conditions:
        if value is not None:
            parts.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    for text, value in extra:
        parts.append(sql.SQL(text))
        params.append(value)
    if not parts:
        return sql.SQL(""), params
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), params


class PostgresJournalStore:
    """:class:`~twin.store.protocol.JournalStore` on the :class:`Database` ``db`` (its schema
    migrated). ``db.replica`` signs every commit (``recorded_by``, the notices' origin)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------------------------ writes

    async def commit(self, batch: Batch) -> None:
        if batch.empty:
            return
        await self.db.run(partial(self._commit, batch), pipeline=True)

    async def _commit(self, batch: Batch, conn: AsyncConnection) -> None:
        if batch.fence is not None:
            cursor = await conn.execute(
                "SELECT owner, epoch FROM partition_lease WHERE partition = %s FOR SHARE", (batch.fence.partition,)
            )
            lease = await cursor.fetchone()
            if lease is None or lease[0] is None or lease[1] != batch.fence.epoch:
                held = "no lease" if lease is None else f"epoch {lease[1]} held by {lease[0] or 'nobody'}"
                raise StaleEpoch(
                    f"partition {batch.fence.partition}: the batch is fenced by epoch {batch.fence.epoch}, "
                    f"the partition has {held}"
                )
        recorded_at = datetime.now(UTC)
        notice: dict[str, list[Any]] = {}
        plan = None
        if batch.transitions:
            keys = touched_keys(batch.transitions)
            cursor = await conn.execute(
                _SELECT_ALARMS + sql.SQL(" WHERE key = ANY(%s) ORDER BY key FOR UPDATE"), (keys,)
            )
            current = {alarm.key: alarm for alarm in map(alarm_from, await cursor.fetchall())}
            plan = plan_transitions(batch.transitions, current)
            if plan.repeats:
                stored = await self._stored(conn, [(t.key, t.version) for t in plan.repeats])
                for t in plan.repeats:
                    found = stored.get((t.key, t.version))
                    if found != t:
                        raise JournalConflict(f"{t.key} v{t.version}: recorded {found}, now given {t}")
        # every write is sent before any result is read: in pipeline mode they travel together
        inserting = None
        if plan is not None and plan.new:
            rows = [transition_row(t) for t in plan.new]
            inserting = await conn.execute(
                _INSERT_TRANSITIONS, _bulk_params(TRANSITION_COLUMNS, rows, (recorded_at, self.db.replica))
            )
            alarm_rows = [alarm_row(a) for _, a in sorted(plan.alarms.items())]
            await conn.execute(_UPSERT_ALARMS, _bulk_params(ALARM_COLUMNS, alarm_rows))
        parts: tuple[tuple[str, sql.Composed, Sequence[Column], list[tuple[object, ...]], tuple[object, ...]], ...] = (
            (
                "device_events",
                _INSERT_DEVICE_EVENTS,
                DEVICE_EVENT_COLUMNS,
                [(k.site, k.device_id, k.alarm_id, k.event, k.code) for k in batch.device_events],
                (recorded_at,),
            ),
            ("commands", _INSERT_COMMANDS, COMMAND_COLUMNS, [command_row(c) for c in batch.commands], ()),
            (
                "responses",
                _INSERT_RESPONSES,
                RESPONSE_COLUMNS,
                [response_row(r) for r in batch.responses],
                (recorded_at,),
            ),
            (
                "training_events",
                _INSERT_TRAINING,
                TRAINING_COLUMNS,
                [training_row(e) for e in batch.training_events],
                (),
            ),
            (
                "escalations",
                _INSERT_ESCALATIONS,
                ESCALATION_COLUMNS,
                [escalation_row(e) for e in batch.escalations],
                (recorded_at,),
            ),
            (
                "snapshots",
                _UPSERT_SNAPSHOTS,
                SNAPSHOT_COLUMNS,
                [(s.site, s.device_id, s.version, dict(s.payload)) for s in batch.snapshots],
                (recorded_at,),
            ),
        )
        sent = [
            (name, await conn.execute(statement, _bulk_params(columns, rows, constants)))
            for name, statement, columns, rows, constants in parts
            if rows
        ]
        unannounced = ((_INSERT_FRAMES, FRAME_COLUMNS, [frame_row(f) for f in batch.frames], ()),)
        for statement, columns, rows, constants in unannounced:
            if rows:
                await conn.execute(statement, _bulk_params(columns, rows, constants))
        if inserting is not None:
            assert plan is not None
            inserted = await inserting.fetchall()
            if len(inserted) != len(plan.new):
                raise LostRace("another transaction appended a planned transition first")
            notice["transitions"] = [(k, v) for k, v in inserted]
        for name, cursor in sent:
            notice[name] = [tuple(r) for r in await cursor.fetchall()]
        payloads = encode_notices(
            CommitNotice(
                origin=self.db.replica,
                transitions=tuple(notice.get("transitions", ())),
                device_events=tuple(DeviceEventKey(*r) for r in notice.get("device_events", ())),
                commands=tuple(notice.get("commands", ())),
                responses=tuple(r[0] for r in notice.get("responses", ())),
                training_events=tuple(notice.get("training_events", ())),
                snapshots=tuple(notice.get("snapshots", ())),
                escalations=tuple(r[0] for r in notice.get("escalations", ())),
            )
        )
        if payloads:
            await conn.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", (CHANNEL, payloads))

    async def _stored(self, conn: AsyncConnection, ids: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Transition]:
        cursor = await conn.execute(
            _SELECT_TRANSITIONS + sql.SQL(" WHERE (key, version) IN (SELECT * FROM unnest(%s::text[], %s::int4[]))"),
            ([k for k, _ in ids], [v for _, v in ids]),
        )
        return {(t.key, t.version): t for t in map(transition_from, await cursor.fetchall())}

    # ------------------------------------------------------------------------------------- reads

    async def restore(self, *, sites: Collection[str] | None = None) -> Restored:
        """One consistent read (``REPEATABLE READ``) of what the partitions of ``sites`` need."""
        wanted = None if sites is None else sorted(set(sites))

        async def read(conn: AsyncConnection) -> Restored:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            alarms = await self._alarms(conn, wanted)
            snapshots = await self._snapshots(conn, wanted)
            since = datetime.now(UTC) - MARKS_RESTORED_FOR
            where, params = _where(
                (), (("recorded_at >= %s", since), *(() if wanted is None else (("site = ANY(%s)", wanted),)))
            )
            cursor = await conn.execute(
                sql.SQL("SELECT site, device_id, alarm_id, event, code FROM device_alarm_event") + where, params
            )
            marks = frozenset(DeviceEventKey(*row) for row in await cursor.fetchall())
            where, params = _where((), () if wanted is None else (("site = ANY(%s)", wanted),))
            cursor = await conn.execute(_SELECT_COMMANDS + where + sql.SQL(" ORDER BY id"), params)
            commands = [command_from(row) for row in await cursor.fetchall()]
            cursor = await conn.execute(_SELECT_ESCALATIONS + where + sql.SQL(" ORDER BY id"), params)
            escalations = [escalation_from(row) for row in await cursor.fetchall()]
            return Restored(
                alarms=alarms, snapshots=snapshots, device_events=marks, commands=commands, escalations=escalations
            )

        return await self.db.run(read)

    async def transitions(
        self,
        *,
        key: str | None = None,
        device_id: str | None = None,
        site: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Transition]:
        """``since``: ``at >= since``; ``until``: ``at < until``."""
        extra: list[tuple[str, object]] = []
        if since is not None:
            extra.append(("at >= %s", _aware(since)))
        if until is not None:
            extra.append(("at < %s", _aware(until)))
        where, params = _where((("key", key), ("device_id", device_id), ("site", site)), extra)
        query = _SELECT_TRANSITIONS + where + sql.SQL(" ORDER BY at, key, version")
        if limit is not None:
            query += sql.SQL(" LIMIT %s")
            params.append(limit)
        rows = await self.db.fetchall(query, params)
        return [transition_from(row) for row in rows]

    async def current_alarms(self, *, sites: Collection[str] | None = None) -> dict[str, Alarm]:
        wanted = None if sites is None else sorted(set(sites))
        return await self.db.read(lambda conn: self._alarms(conn, wanted))

    async def snapshots(self, *, sites: Collection[str] | None = None) -> list[Snapshot]:
        wanted = None if sites is None else sorted(set(sites))
        return await self.db.read(lambda conn: self._snapshots(conn, wanted))

    async def commands(self, *, device_id: str | None = None, command_id: str | None = None) -> list[CommandRecord]:
        where, params = _where((("device_id", device_id), ("command_id", command_id)))
        rows = await self.db.fetchall(_SELECT_COMMANDS + where + sql.SQL(" ORDER BY id"), params)
        return [command_from(row) for row in rows]

    async def responses(
        self, *, key: str | None = None, actor: str | None = None, since: datetime | None = None
    ) -> list[AlarmResponse]:
        extra = () if since is None else (("at >= %s", cast(object, _aware(since))),)
        where, params = _where((("key", key), ("actor", actor)), extra)
        rows = await self.db.fetchall(_SELECT_RESPONSES + where + sql.SQL(" ORDER BY id"), params)
        return [response_from(row) for row in rows]

    async def training_events(self, session_id: str | None = None) -> list[TrainingEvent]:
        where, params = _where((("session_id", session_id),))
        rows = await self.db.fetchall(_SELECT_TRAINING + where + sql.SQL(" ORDER BY id"), params)
        return [training_from(row) for row in rows]

    async def escalations(
        self, *, key: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[Escalation]:
        """``since``: ``at >= since``; ``until``: ``at <= until``; in the order recorded."""
        extra: list[tuple[str, object]] = []
        if since is not None:
            extra.append(("at >= %s", _aware(since)))
        if until is not None:
            extra.append(("at <= %s", _aware(until)))
        where, params = _where((("key", key),), extra)
        rows = await self.db.fetchall(_SELECT_ESCALATIONS + where + sql.SQL(" ORDER BY id"), params)
        return [escalation_from(row) for row in rows]

    async def frames(
        self, session_id: str | None = None, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[PumpFrame]:
        """``since``: ``at >= since``; ``until``: ``at <= until``; in the order recorded."""
        extra: list[tuple[str, object]] = []
        if since is not None:
            extra.append(("at >= %s", _aware(since)))
        if until is not None:
            extra.append(("at <= %s", _aware(until)))
        where, params = _where((("session_id", session_id),), extra)
        rows = await self.db.fetchall(_SELECT_FRAMES + where + sql.SQL(" ORDER BY id"), params)
        return [frame_from(row) for row in rows]

    async def close(self) -> None:
        """The store does not own the database: close the :class:`Database` instead."""

    # ------------------------------------------------------------------------------ the feed's reads

    async def committed(self, notice: CommitNotice) -> Committed:
        """The rows a notice names, read now (the feed's events)."""

        async def read(conn: AsyncConnection) -> Committed:
            transitions: list[Transition] = []
            alarms: dict[str, Alarm] = {}
            if notice.transitions:
                stored = await self._stored(conn, notice.transitions)
                transitions = sorted(stored.values(), key=lambda t: (t.at, t.key, t.version))
                cursor = await conn.execute(
                    _SELECT_ALARMS + sql.SQL(" WHERE key = ANY(%s) ORDER BY key"),
                    (sorted({k for k, _ in notice.transitions}),),
                )
                alarms = {a.key: a for a in map(alarm_from, await cursor.fetchall())}
            commands: list[CommandRecord] = []
            if notice.commands:
                cursor = await conn.execute(
                    _SELECT_COMMANDS
                    + sql.SQL(
                        " WHERE (command_id, status) IN (SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY id"
                    ),
                    ([c for c, _ in notice.commands], [s for _, s in notice.commands]),
                )
                commands = [command_from(row) for row in await cursor.fetchall()]
            responses: list[AlarmResponse] = []
            if notice.responses:
                cursor = await conn.execute(
                    _SELECT_RESPONSES + sql.SQL(" WHERE response_id = ANY(%s) ORDER BY id"), (list(notice.responses),)
                )
                responses = [response_from(row) for row in await cursor.fetchall()]
            training: list[TrainingEvent] = []
            if notice.training_events:
                cursor = await conn.execute(
                    _SELECT_TRAINING
                    + sql.SQL(
                        " WHERE (session_id, event) IN (SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY id"
                    ),
                    ([s for s, _ in notice.training_events], [e for _, e in notice.training_events]),
                )
                training = [training_from(row) for row in await cursor.fetchall()]
            snapshots: list[Snapshot] = []
            if notice.snapshots:
                cursor = await conn.execute(
                    "SELECT site, device_id, version, payload FROM twin_snapshot "
                    "WHERE (site, device_id) IN (SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY site, device_id",
                    ([s for s, _ in notice.snapshots], [d for _, d in notice.snapshots]),
                )
                snapshots = [Snapshot(*row) for row in await cursor.fetchall()]
            escalations: list[Escalation] = []
            if notice.escalations:
                cursor = await conn.execute(
                    _SELECT_ESCALATIONS + sql.SQL(" WHERE escalation_id = ANY(%s) ORDER BY id"),
                    (list(notice.escalations),),
                )
                escalations = [escalation_from(row) for row in await cursor.fetchall()]
            return Committed(
                origin=notice.origin,
                transitions=transitions,
                alarms=alarms,
                device_events=notice.device_events,
                commands=commands,
                responses=responses,
                training_events=training,
                snapshots=snapshots,
                escalations=escalations,
            )

        return await self.db.run(read)

    # --------------------------------------------------------------------------------- internals

    async def _alarms(self, conn: AsyncConnection, sites: list[str] | None) -> dict[str, Alarm]:
        where, params = _where((), () if sites is None else (("site = ANY(%s)", sites),))
        cursor = await conn.execute(_SELECT_ALARMS + where + sql.SQL(" ORDER BY key"), params)
        return {a.key: a for a in map(alarm_from, await cursor.fetchall())}

    async def _snapshots(self, conn: AsyncConnection, sites: list[str] | None) -> list[Snapshot]:
        where, params = _where((), () if sites is None else (("site = ANY(%s)", sites),))
        cursor = await conn.execute(
            sql.SQL("SELECT site, device_id, version, payload FROM twin_snapshot")
            + where
            + sql.SQL(" ORDER BY site, device_id"),
            params,
        )
        return [Snapshot(*row) for row in await cursor.fetchall()]


__all__ = ["PostgresJournalStore"]
