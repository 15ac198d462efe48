"""The twin's durable record in one SQLite file: the append-only alarm journal (the audit trail,
and how a restarted twin recovers its alarms), the append-only command log, device alarm events
already applied, and a per-device snapshot for restart recovery.

Additions to the agreed interface, and why: ``record(..., device_event=)`` marks a device event
applied in the same transaction as its transitions (a mark without them, or them without the
mark, would make a redelivery wrong); ``dedupe_key(message)`` builds that mark from an
``AlarmEvent``; ``save_snapshot(..., at=None)`` and ``log_command`` return whether they wrote;
``load_snapshots()`` maps device id to the payload exactly as saved (site and version are columns
for the write guard, put them in the payload if the twin needs them back); ``schema_version``.

Tables (schema version in ``PRAGMA user_version``; :data:`MIGRATIONS` brings any older file up):

* ``alarm_journal`` — every :class:`~twin.alarms.lifecycle.Transition`, all fields, plus
  ``recorded_at`` (wall clock of the write). **Identity: (key, version)**: a key's versions are
  1, 2, 3... (the lifecycle numbers every transition of an alarm), so recording the same
  transition again is a no-op and replays never duplicate. Why not ``(key, event, at,
  to_state)``: at simulation speed one alarm can clear, re-raise and clear again within one
  instant, and two such clears would collide; the version cannot. A *different* transition under
  an existing (key, version) is a :class:`JournalConflict` (two writers, or a bug), and a version
  that skips one is a :class:`JournalError`: either would make the journal unfoldable.
* ``device_alarm_event`` — ``(device_id, alarm_id, event)`` of each device alarm event applied
  (:func:`dedupe_key`), written in the same transaction as its transitions, so a device event
  delivered twice (MQTT QoS 1, or again after a restart) is recognised by :meth:`Journal.has_device_event`.
* ``command_log`` — command status changes: ``(command_id, status)`` is unique (a command reaches
  each status once; logging it again is a no-op).
* ``twin_snapshot`` — one row per device (upsert), the twin's serialised state; an older
  ``version`` never overwrites a newer one.
* ``alarm_response`` (schema 2) — every response action staff recorded on an alarm
  (:class:`AlarmResponse`): who (user and role), when, what (action, note, parameters), the
  command it sent if any, and the alarm as the responder saw it (its ``version`` and state). The
  alarm version places the response exactly among the alarm's transitions, so a training score
  can tell which occurrence it answered and what had happened to the alarm before, without
  comparing timestamps.

* ``training_event`` (schema 3) — the events of each training session's life.
* ``alarm_escalation`` (schema 5) — every :class:`~twin.alarms.escalation.Escalation`: an
  unanswered alarm reaching a tier of its ladder, with who was told. Identity: ``escalation_id``
  (key, ladder start, level), so recording it again is a no-op.
* ``training_frame`` (schema 5) — :class:`~twin.training.frames.PumpFrame` s, what each session
  pump showed while the session ran (what a replay plays back). Identity: (session, site, device, seq).

Append-only is enforced twice: the class has no update or delete method, and triggers make
SQLite refuse any ``UPDATE`` or ``DELETE`` on the journal tables (``sqlite3.IntegrityError``).

Recovery: :meth:`Journal.alarms` folds the whole journal through the lifecycle
(:func:`twin.alarms.lifecycle.replay`), which re-runs every operation and checks it makes the
recorded transition again. A shelve or audio pause that ran out while the twin was down is still
in the folded alarm: the caller applies :func:`~twin.alarms.lifecycle.expire` at start-up and
records what it makes.

Durability and speed: WAL journal, ``synchronous=NORMAL``. A commit appends to the WAL without
``fsync``; the WAL is synced at checkpoints. So a *process* crash loses nothing committed; a power
cut or kernel crash can lose the last commits before the latest checkpoint, and never corrupts the
file. That trade is what makes a call cheap: measured with ``benchmarks/alarm_journal.py`` (ext4
on the 2-core build machine, 8,000 transitions recorded; median / 99th percentile): ``record`` of
one new transition 48 µs / 250 µs, of a transition already recorded 21 µs / 24 µs,
``has_device_event`` 3 µs / 5 µs, ``transitions(key=…)`` of one alarm 32 µs / 51 µs. About one
write in 200 takes 1 to 4 ms: it runs a WAL checkpoint (SQLite's default, every 1,000 pages);
``pumptwin serve`` runs them off the event loop instead (:meth:`SqliteStore.checkpoint_elsewhere`,
:meth:`twin.store.local.LocalJournalStore.run_checkpoints`).
So a call takes well under a millisecond, and the twin calls the journal directly inside the event loop: a thread
hop (``asyncio.to_thread``) would cost more than the call, and keeping every write on the loop's
thread keeps the journal's order the order in which the twin decided. Recovery (:meth:`Journal.alarms`)
folds about 15 µs per transition: 1.5 s for 100,000 transitions, at start-up only.

Threads: the connection belongs to the thread that opened the journal (Python's sqlite3 refuses
calls from another thread). Several :class:`Journal` objects, in one or several processes, may
open the same file: writes are serialised by SQLite (``BEGIN IMMEDIATE``, waiting up to
:data:`BUSY_TIMEOUT_S`) and readers never block writers.

Failure modes: :class:`JournalError` (a newer schema, a version gap, WAL unavailable),
:class:`JournalConflict`, ``sqlite3.Error`` from the disk (e.g. ``OperationalError`` when the disk
is full or the lock wait times out), :class:`~twin.alarms.lifecycle.AlarmError` with reason
``replay_mismatch`` from :meth:`Journal.alarms` when the journal does not fold, ``ValueError``
for naive datetimes and for payloads JSON cannot hold (NaN, non-string keys, objects).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from twin.alarms.device_events import DeviceEventKey, dedupe_key
from twin.alarms.escalation import Escalation
from twin.alarms.lifecycle import Alarm, AlarmState, Source, Transition, TransitionEvent, replay
from twin.alarms.responses import AlarmResponse
from twin.contract.alarms import Priority
from twin.mirror.commands import CommandRecord
from twin.store.batch_plan import JournalConflict, JournalError
from twin.store.protocol import Batch, Snapshot
from twin.store.snapshots import EncodedPayload
from twin.store.sqlite import BUSY_TIMEOUT_S, SqliteStore, append_only
from twin.training.events import TrainingEvent
from twin.training.frames import PumpFrame

_append_only = append_only


MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the first schema
    (
        """
        CREATE TABLE alarm_journal (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            device_id TEXT NOT NULL,
            site TEXT NOT NULL,
            code TEXT NOT NULL,
            priority TEXT NOT NULL,
            source TEXT NOT NULL,
            latching INTEGER NOT NULL,
            message TEXT NOT NULL,
            event TEXT NOT NULL,
            from_state TEXT,
            to_state TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL,
            comment TEXT,
            raised_at TEXT NOT NULL,
            time_to_ack_s REAL,
            expires_at TEXT,
            recorded_at TEXT NOT NULL,
            UNIQUE (key, version)
        ) STRICT
        """,
        "CREATE INDEX alarm_journal_device ON alarm_journal (device_id, at)",
        "CREATE INDEX alarm_journal_site ON alarm_journal (site, at)",
        "CREATE INDEX alarm_journal_at ON alarm_journal (at)",
        *_append_only("alarm_journal"),
        """
        CREATE TABLE device_alarm_event (
            device_id TEXT NOT NULL,
            alarm_id TEXT NOT NULL,
            event TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (device_id, alarm_id, event)
        ) STRICT, WITHOUT ROWID
        """,
        *_append_only("device_alarm_event"),
        """
        CREATE TABLE command_log (
            id INTEGER PRIMARY KEY,
            command_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            site TEXT NOT NULL,
            status TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL,
            detail TEXT NOT NULL CHECK (json_valid(detail)),
            UNIQUE (command_id, status)
        ) STRICT
        """,
        "CREATE INDEX command_log_device ON command_log (device_id, id)",
        *_append_only("command_log"),
        """
        CREATE TABLE twin_snapshot (
            device_id TEXT PRIMARY KEY,
            site TEXT NOT NULL,
            version INTEGER NOT NULL,
            payload TEXT NOT NULL CHECK (json_valid(payload)),
            updated_at TEXT NOT NULL
        ) STRICT
        """,
    ),
    # 2: staff responses to alarms (the console's response actions; read by training scores)
    (
        """
        CREATE TABLE alarm_response (
            id INTEGER PRIMARY KEY,
            response_id TEXT NOT NULL UNIQUE,
            key TEXT NOT NULL,
            device_id TEXT NOT NULL,
            site TEXT NOT NULL,
            code TEXT NOT NULL,
            priority TEXT NOT NULL,
            alarm_version INTEGER NOT NULL CHECK (alarm_version >= 1),
            alarm_state TEXT NOT NULL,
            action TEXT NOT NULL,
            note TEXT,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            at TEXT NOT NULL,
            command_id TEXT,
            detail TEXT NOT NULL CHECK (json_valid(detail)),
            recorded_at TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX alarm_response_key ON alarm_response (key, id)",
        "CREATE INDEX alarm_response_at ON alarm_response (at)",
        "CREATE INDEX alarm_response_actor ON alarm_response (actor, at)",
        *_append_only("alarm_response"),
    ),
    # 3: training sessions, as the events of their lives (started, paused, resumed, ended)
    (
        """
        CREATE TABLE training_event (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL,
            detail TEXT NOT NULL CHECK (json_valid(detail)),
            UNIQUE (session_id, event)
        ) STRICT
        """,
        "CREATE INDEX training_event_session ON training_event (session_id, id)",
        *_append_only("training_event"),
    ),
    # 4: devices are known by site and id. Alarm keys become <site>/<device>/<code>; device alarm
    # events and snapshots are keyed by site too (the same id at two sites is two devices). The
    # append-only triggers are lifted for the rewrite only, inside this migration's transaction.
    (
        "DROP TRIGGER alarm_journal_no_update",
        "UPDATE alarm_journal SET key = site || '/' || key WHERE key NOT LIKE site || '/%/%'",
        *_append_only("alarm_journal")[:1],
        "DROP TRIGGER alarm_response_no_update",
        "UPDATE alarm_response SET key = site || '/' || key WHERE key NOT LIKE site || '/%/%'",
        *_append_only("alarm_response")[:1],
        "DROP TRIGGER device_alarm_event_no_update",
        "DROP TRIGGER device_alarm_event_no_delete",
        "ALTER TABLE device_alarm_event RENAME TO device_alarm_event_3",
        """
        CREATE TABLE device_alarm_event (
            site TEXT NOT NULL,
            device_id TEXT NOT NULL,
            alarm_id TEXT NOT NULL,
            event TEXT NOT NULL,
            code TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (site, device_id, alarm_id, event)
        ) STRICT, WITHOUT ROWID
        """,
        "CREATE INDEX device_alarm_event_recorded ON device_alarm_event (recorded_at)",
        """
        INSERT INTO device_alarm_event (site, device_id, alarm_id, event, code, recorded_at)
        SELECT coalesce((SELECT site FROM alarm_journal j WHERE j.device_id = e.device_id LIMIT 1), ''),
               e.device_id, e.alarm_id, e.event, '', e.recorded_at
        FROM device_alarm_event_3 e
        """,
        "DROP TABLE device_alarm_event_3",
        *_append_only("device_alarm_event"),
        "ALTER TABLE twin_snapshot RENAME TO twin_snapshot_3",
        """
        CREATE TABLE twin_snapshot (
            site TEXT NOT NULL,
            device_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            payload TEXT NOT NULL CHECK (json_valid(payload)),
            updated_at TEXT NOT NULL,
            PRIMARY KEY (site, device_id)
        ) STRICT
        """,
        "INSERT INTO twin_snapshot SELECT site, device_id, version, payload, updated_at FROM twin_snapshot_3",
        "DROP TABLE twin_snapshot_3",
    ),
    # 5: escalations of unanswered alarms (who was told, when), and the frames a session replay shows
    (
        """
        CREATE TABLE alarm_escalation (
            id INTEGER PRIMARY KEY,
            escalation_id TEXT NOT NULL UNIQUE,
            key TEXT NOT NULL,
            device_id TEXT NOT NULL,
            site TEXT NOT NULL,
            code TEXT NOT NULL,
            priority TEXT NOT NULL,
            level INTEGER NOT NULL CHECK (level >= 1),
            tier TEXT NOT NULL,
            recipients TEXT NOT NULL CHECK (json_valid(recipients)),
            notified TEXT NOT NULL CHECK (json_valid(notified)),
            unacknowledged_since TEXT NOT NULL,
            due_at TEXT NOT NULL,
            at TEXT NOT NULL,
            alarm_version INTEGER NOT NULL CHECK (alarm_version >= 1),
            alarm_state TEXT NOT NULL,
            message TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX alarm_escalation_key ON alarm_escalation (key, id)",
        "CREATE INDEX alarm_escalation_at ON alarm_escalation (at)",
        *_append_only("alarm_escalation"),
        """
        CREATE TABLE training_frame (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            site TEXT NOT NULL,
            device_id TEXT NOT NULL,
            seq INTEGER NOT NULL CHECK (seq >= 1),
            at TEXT NOT NULL,
            state TEXT NOT NULL CHECK (json_valid(state)),
            UNIQUE (session_id, site, device_id, seq)
        ) STRICT
        """,
        "CREATE INDEX training_frame_session ON training_frame (session_id, id)",
        "CREATE INDEX training_frame_at ON training_frame (at)",
        *_append_only("training_frame"),
    ),
)
"""Schema migrations, oldest first: migration *n* (1-based) takes ``user_version`` from n-1 to n.
Append new migrations; never edit a released one."""

SCHEMA_VERSION: Final = len(MIGRATIONS)

_JOURNAL_COLUMNS: Final = (
    "key, version, device_id, site, code, priority, source, latching, message, event, from_state, to_state, "
    "actor, at, comment, raised_at, time_to_ack_s, expires_at"
)


_RESPONSE_COLUMNS: Final = (
    "response_id, key, device_id, site, code, priority, alarm_version, alarm_state, action, note, actor, role, "
    "at, command_id, detail"
)


_ESCALATION_COLUMNS: Final = (
    "escalation_id, key, device_id, site, code, priority, level, tier, recipients, notified, "
    "unacknowledged_since, due_at, at, alarm_version, alarm_state, message"
)


class Journal(SqliteStore):
    """The twin's SQLite store at ``path`` (created with its directory if missing, migrated if old).

    Use as a context manager or call :meth:`close`. Raises :class:`JournalError` if the file was
    written by a newer PumpTwin (a schema version this code does not know) or WAL is unavailable.
    """

    def __init__(self, path: Path | None) -> None:
        super().__init__(path, MIGRATIONS, error=JournalError)

    # ------------------------------------------------------------------------------ the journal

    def record(self, transitions: Sequence[Transition], *, device_event: DeviceEventKey | None = None) -> int:
        """Append ``transitions`` (in order) and mark ``device_event`` as applied, in one
        transaction; return how many transitions were new (already recorded ones are skipped).

        Raises :class:`JournalConflict` or :class:`JournalError` (a version gap): then nothing of
        the call is recorded, and the caller must not treat the transitions as durable.
        """
        if not transitions and device_event is None:
            return 0
        recorded_at = _text(datetime.now(UTC))
        with self._transaction():
            inserted = self._insert_transitions(transitions, recorded_at)
            if device_event is not None:
                self._insert_device_event(device_event, recorded_at)
        return inserted

    def commit(self, batch: Batch) -> None:
        """Write everything in ``batch`` in one transaction (see :mod:`twin.store.protocol`):
        all or nothing, and a batch committed again changes nothing."""
        if batch.empty:
            return
        recorded_at = _text(datetime.now(UTC))
        with self._transaction():
            self._insert_transitions(batch.transitions, recorded_at)
            for mark in batch.device_events:
                self._insert_device_event(mark, recorded_at)
            for record in batch.commands:
                self._insert_command(record)
            for response in batch.responses:
                self._insert_response(response, recorded_at)
            for event in batch.training_events:
                self._insert_training_event(event)
            for snapshot in batch.snapshots:
                self._upsert_snapshot(
                    snapshot.site, snapshot.device_id, snapshot.version, snapshot.payload, recorded_at
                )
            self._insert_escalations(batch.escalations, recorded_at)
            self._insert_frames(batch.frames)

    def _insert_transitions(self, transitions: Sequence[Transition], recorded_at: str) -> int:
        inserted = 0
        for t in transitions:
            row = _row(t)
            cursor = self._db.execute(
                f"INSERT INTO alarm_journal ({_JOURNAL_COLUMNS}, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key, version) DO NOTHING",
                (*row, recorded_at),
            )
            if cursor.rowcount == 0:
                stored = self._one(t.key, t.version)
                if stored != t:
                    raise JournalConflict(f"{t.key} v{t.version}: recorded {stored}, now given {t}")
                continue
            if t.version > 1 and self._one(t.key, t.version - 1) is None:
                raise JournalError(f"{t.key} v{t.version}: version {t.version - 1} was never recorded")
            inserted += 1
        return inserted

    def _insert_device_event(self, mark: DeviceEventKey, recorded_at: str) -> None:
        self._db.execute(
            "INSERT INTO device_alarm_event (site, device_id, alarm_id, event, code, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (mark.site, mark.device_id, mark.alarm_id, mark.event, mark.code, recorded_at),
        )

    def device_events(self, *, since: datetime | None = None) -> list[DeviceEventKey]:
        """Device alarm events applied (recorded ``since``, if given), oldest first."""
        sql = "SELECT site, device_id, alarm_id, event, code FROM device_alarm_event"
        params: tuple[object, ...] = ()
        if since is not None:
            sql += " WHERE recorded_at >= ?"
            params = (_text(since),)
        return [DeviceEventKey(*row) for row in self._db.execute(sql + " ORDER BY recorded_at", params)]

    def transitions(
        self,
        *,
        key: str | None = None,
        device_id: str | None = None,
        site: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Transition]:
        """Recorded transitions in the order they were recorded (per key: version order),
        filtered by every argument given; ``since``: ``at >= since``; ``limit``: the first
        ``limit`` of them (page on with ``since``)."""
        rows = self._select(
            f"SELECT {_JOURNAL_COLUMNS} FROM alarm_journal",
            {"key": key, "device_id": device_id, "site": site},
            since,
            limit,
        )
        return [_transition(row) for row in rows]

    def alarms(self) -> dict[str, Alarm]:
        """Every alarm as the journal makes it (key -> alarm), by folding it through the
        lifecycle. Raises ``AlarmError("replay_mismatch")`` if the journal does not fold."""
        rows = self._db.execute(f"SELECT {_JOURNAL_COLUMNS} FROM alarm_journal ORDER BY key, version")
        return replay(_transition(row) for row in rows)

    def has_device_event(self, site: str, device_id: str, alarm_id: str, event: str) -> bool:
        """Was this device alarm event recorded (``record(..., device_event=...)``) before?
        ``event``: ``raised`` or ``cleared`` (an ``AlarmEventType`` will do)."""
        found = self._db.execute(
            "SELECT 1 FROM device_alarm_event WHERE site = ? AND device_id = ? AND alarm_id = ? AND event = ?",
            (site, device_id, alarm_id, str(event)),
        ).fetchone()
        return found is not None

    def _one(self, key: str, version: int) -> Transition | None:
        row = self._db.execute(
            f"SELECT {_JOURNAL_COLUMNS} FROM alarm_journal WHERE key = ? AND version = ?", (key, version)
        ).fetchone()
        return None if row is None else _transition(row)

    # ---------------------------------------------------------------------------------- commands

    def log_command(
        self,
        command_id: str,
        device_id: str,
        site: str,
        status: str,
        actor: str,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> bool:
        """Append one command status; ``False`` if this command already had this status (nothing
        written). ``detail`` must be JSON-serialisable (``ValueError``/``TypeError`` otherwise)."""
        with self._transaction():
            return self._insert_command(
                CommandRecord(command_id, device_id, site, str(status), actor, at, dict(detail or {}))
            )

    def _insert_command(self, r: CommandRecord) -> bool:
        cursor = self._db.execute(
            "INSERT INTO command_log (command_id, device_id, site, status, actor, at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (command_id, status) DO NOTHING",
            (r.command_id, r.device_id, r.site, str(r.status), r.actor, _text(r.at), _json(r.detail)),
        )
        return cursor.rowcount == 1

    def commands(self, device_id: str | None = None, command_id: str | None = None) -> list[CommandRecord]:
        """Logged command statuses in the order they were logged, filtered by what is given."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (("device_id", device_id), ("command_id", command_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT command_id, device_id, site, status, actor, at, detail FROM command_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [
            CommandRecord(c, d, s, status, actor, datetime.fromisoformat(at), json.loads(detail))
            for c, d, s, status, actor, at, detail in self._db.execute(sql + " ORDER BY id", params)
        ]

    # --------------------------------------------------------------------------------- responses

    def record_response(self, response: AlarmResponse) -> bool:
        """Append one response; ``False`` if its ``response_id`` was already recorded (nothing
        written). ``detail`` must be JSON-serialisable."""
        with self._transaction():
            return self._insert_response(response, _text(datetime.now(UTC)))

    def _insert_response(self, r: AlarmResponse, recorded_at: str) -> bool:
        cursor = self._db.execute(
            f"INSERT INTO alarm_response ({_RESPONSE_COLUMNS}, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (response_id) DO NOTHING",
            (
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
                _text(r.at),
                r.command_id,
                _json(r.detail),
                recorded_at,
            ),
        )
        return cursor.rowcount == 1

    def record_training_event(self, event: TrainingEvent) -> bool:
        """Append one training-session event; ``False`` if the session already has an event of
        that name (nothing written: a session starts once and ends once; ``paused``/``resumed``
        carry a counter in their name, e.g. ``paused-2``)."""
        with self._transaction():
            return self._insert_training_event(event)

    def _insert_training_event(self, event: TrainingEvent) -> bool:
        cursor = self._db.execute(
            "INSERT INTO training_event (session_id, event, actor, at, detail) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (session_id, event) DO NOTHING",
            (event.session_id, event.event, event.actor, _text(event.at), _json(event.detail)),
        )
        return cursor.rowcount == 1

    def training_events(self, session_id: str | None = None) -> list[TrainingEvent]:
        """Training-session events in the order recorded (of one session, or of all)."""
        sql = "SELECT session_id, event, actor, at, detail FROM training_event"
        params: tuple[object, ...] = ()
        if session_id is not None:
            sql += " WHERE session_id = ?"
            params = (session_id,)
        rows = self._db.execute(sql + " ORDER BY id", params)
        return [
            TrainingEvent(sid, event, actor, _time(at), json.loads(detail)) for sid, event, actor, at, detail in rows
        ]

    def responses(
        self,
        *,
        key: str | None = None,
        device_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AlarmResponse]:
        """Recorded responses in the order they were recorded, filtered by every argument given
        (``since``: ``at >= since``)."""
        rows = self._select(
            f"SELECT {_RESPONSE_COLUMNS} FROM alarm_response",
            {"key": key, "device_id": device_id, "actor": actor},
            since,
            limit,
        )
        return [_response(row) for row in rows]

    def _select(
        self, select: str, equal: Mapping[str, object | None], since: datetime | None, limit: int | None
    ) -> list[tuple[Any, ...]]:
        """``select`` filtered by every column of ``equal`` whose value is given and by
        ``at >= since``, in the order recorded, at most ``limit`` rows."""
        where = [f"{column} = ?" for column, value in equal.items() if value is not None]
        params: list[object] = [value for value in equal.values() if value is not None]
        if since is not None:
            where.append("at >= ?")
            params.append(_text(since))
        sql = select + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return list(self._db.execute(sql, params))

    # ------------------------------------------------------------------------------ escalations

    def record_escalations(self, escalations: Sequence[Escalation]) -> int:
        """Append ``escalations`` in one transaction; return how many were new (an
        ``escalation_id`` already recorded is skipped)."""
        if not escalations:
            return 0
        with self._transaction():
            return self._insert_escalations(escalations, _text(datetime.now(UTC)))

    def _insert_escalations(self, escalations: Sequence[Escalation], recorded_at: str) -> int:
        inserted = 0
        for e in escalations:
            cursor = self._db.execute(
                f"INSERT INTO alarm_escalation ({_ESCALATION_COLUMNS}, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (escalation_id) DO NOTHING",
                (*_escalation_row(e), recorded_at),
            )
            inserted += cursor.rowcount
        return inserted

    def escalations(
        self,
        *,
        key: str | None = None,
        device_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Escalation]:
        """Recorded escalations in the order they were recorded, filtered by every argument given
        (``since``: ``at >= since``)."""
        rows = self._select(
            f"SELECT {_ESCALATION_COLUMNS} FROM alarm_escalation",
            {"key": key, "device_id": device_id},
            since,
            limit,
        )
        return [_escalation(row) for row in rows]

    # ----------------------------------------------------------------------------------- frames

    def record_frames(self, frames: Sequence[PumpFrame]) -> int:
        """Append session pump frames in one transaction; return how many were new (a
        ``(session_id, site, device_id, seq)`` already recorded is skipped)."""
        if not frames:
            return 0
        with self._transaction():
            return self._insert_frames(frames)

    def _insert_frames(self, frames: Sequence[PumpFrame]) -> int:
        inserted = 0
        for f in frames:
            cursor = self._db.execute(
                "INSERT INTO training_frame (session_id, site, device_id, seq, at, state) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id, site, device_id, seq) DO NOTHING",
                (f.session_id, f.site, f.device_id, f.seq, _text(f.at), _json(f.state)),
            )
            inserted += cursor.rowcount
        return inserted

    def frames(
        self, session_id: str | None = None, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[PumpFrame]:
        """Frames in the order recorded: of one session, or of every session, with ``since <= at <= until``."""
        where: list[str] = []
        params: list[object] = []
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        if since is not None:
            where.append("at >= ?")
            params.append(_text(since))
        if until is not None:
            where.append("at <= ?")
            params.append(_text(until))
        sql = "SELECT session_id, site, device_id, seq, at, state FROM training_frame"
        rows = self._db.execute(sql + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id", params)
        return [
            PumpFrame(sid, site, device, seq, _time(at), json.loads(state))
            for sid, site, device, seq, at, state in rows
        ]

    # --------------------------------------------------------------------------------- snapshots

    def save_snapshot(
        self, device_id: str, site: str, version: int, payload: Mapping[str, Any], *, at: datetime | None = None
    ) -> bool:
        """Store the device's twin state (replacing the previous one); ``False`` and nothing
        written if a snapshot with a higher ``version`` is already stored. ``at``: ``updated_at``
        (default: now). ``payload`` must be JSON-serialisable."""
        with self._transaction():
            return self._upsert_snapshot(site, device_id, version, payload, _text(at or datetime.now(UTC)))

    def _upsert_snapshot(self, site: str, device_id: str, version: int, payload: Mapping[str, Any], at: str) -> bool:
        cursor = self._db.execute(
            "INSERT INTO twin_snapshot (site, device_id, version, payload, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (site, device_id) DO UPDATE SET version = excluded.version, "
            "payload = excluded.payload, updated_at = excluded.updated_at "
            "WHERE excluded.version >= twin_snapshot.version",
            # an EncodedPayload (the ingest's SnapshotEncoder) brings its own text
            (site, device_id, version, payload.text if type(payload) is EncodedPayload else _json(payload), at),
        )
        return cursor.rowcount == 1

    def snapshots(self, *, sites: Collection[str] | None = None) -> list[Snapshot]:
        """Every stored snapshot (of ``sites`` only, if given)."""
        rows = self._db.execute("SELECT site, device_id, version, payload FROM twin_snapshot ORDER BY site, device_id")
        wanted = None if sites is None else set(sites)
        return [
            Snapshot(site, device_id, version, json.loads(payload))
            for site, device_id, version, payload in rows
            if wanted is None or site in wanted
        ]

    def load_snapshots(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every stored snapshot: (site, device id) -> the payload as saved."""
        return {(s.site, s.device_id): dict(s.payload) for s in self.snapshots()}


# --------------------------------------------------------------------------------------- encoding


def _text(at: datetime) -> str:
    """UTC ISO-8601 with microseconds: exact, and sorts as text in time order (years 1000-9999)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no timezone")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _optional_text(at: datetime | None) -> str | None:
    return None if at is None else _text(at)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _row(t: Transition) -> tuple[object, ...]:
    return (
        t.key,
        t.version,
        t.device_id,
        t.site,
        str(t.code),
        Priority(t.priority).value,
        t.source,
        int(t.latching),
        t.message,
        TransitionEvent(t.event).value,
        None if t.from_state is None else AlarmState(t.from_state).value,
        AlarmState(t.to_state).value,
        t.actor,
        _text(t.at),
        t.comment,
        _text(t.raised_at),
        t.time_to_ack_s,
        _optional_text(t.expires_at),
    )


def _response(row: tuple[Any, ...]) -> AlarmResponse:
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
        at=_time(at),
        command_id=command_id,
        detail=json.loads(detail),
    )


def _escalation_row(e: Escalation) -> tuple[object, ...]:
    return (
        e.escalation_id,
        e.key,
        e.device_id,
        e.site,
        str(e.code),
        Priority(e.priority).value,
        e.level,
        e.tier,
        json.dumps(list(e.recipients)),
        json.dumps(list(e.notified)),
        _text(e.unacknowledged_since),
        _text(e.due_at),
        _text(e.at),
        e.alarm_version,
        AlarmState(e.alarm_state).value,
        e.message,
    )


def _escalation(row: tuple[Any, ...]) -> Escalation:
    (
        eid,
        key,
        device_id,
        site,
        code,
        priority,
        level,
        tier,
        recipients,
        notified,
        since,
        due_at,
        at,
        version,
        state,
        message,
    ) = row
    return Escalation(
        escalation_id=eid,
        key=key,
        device_id=device_id,
        site=site,
        code=code,
        priority=Priority(priority),
        level=level,
        tier=tier,
        recipients=tuple(json.loads(recipients)),
        notified=tuple(json.loads(notified)),
        unacknowledged_since=_time(since),
        due_at=_time(due_at),
        at=_time(at),
        alarm_version=version,
        alarm_state=AlarmState(state),
        message=message,
    )


def _source(text: str) -> Source:
    if text == "device":
        return "device"
    if text == "twin":
        return "twin"
    raise JournalError(f"unknown alarm source {text!r} in the journal")


def _transition(row: tuple[Any, ...]) -> Transition:
    (
        key,
        version,
        device_id,
        site,
        code,
        priority,
        source,
        latching,
        message,
        event,
        from_state,
        to_state,
        actor,
        at,
        comment,
        raised_at,
        time_to_ack_s,
        expires_at,
    ) = row
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
        at=_time(at),
        comment=comment,
        raised_at=_time(raised_at),
        time_to_ack_s=time_to_ack_s,
        version=version,
        source=_source(source),
        latching=bool(latching),
        message=message,
        expires_at=None if expires_at is None else _time(expires_at),
    )


__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AlarmResponse",
    "CommandRecord",
    "DeviceEventKey",
    "Escalation",
    "Journal",
    "JournalConflict",
    "JournalError",
    "PumpFrame",
    "TrainingEvent",
    "dedupe_key",
]
