"""The SQLite journal on a real file: append-only, replays insert nothing, restart recovery folds
back to the live alarms (random sequences, with a restart in the middle), device-event dedupe,
commands, snapshots, schema versions, and several connections in one thread."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness.alarm_operations import START, Operation, run, sequences
from twin.alarms import lifecycle as lc
from twin.alarms.lifecycle import Alarm, AlarmError, Transition
from twin.contract.alarms import AlarmCode, DeviceAlarmClass, Priority
from twin.contract.messages import AlarmEvent, AlarmEventType
from twin.store import journal as journal_module
from twin.store.journal import (
    SCHEMA_VERSION,
    DeviceEventKey,
    Journal,
    JournalConflict,
    JournalError,
    dedupe_key,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "twin.sqlite3") as opened:
        yield opened


@contextmanager
def raw_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection in autocommit mode, closed afterwards: SQLite as any other client sees it."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        yield connection


def story() -> tuple[dict[str, Alarm], list[Transition]]:
    """Two alarms on two sites: a latched motor stall acknowledged after it cleared, and a low
    reservoir shelved for a refill."""
    stall, made = lc.raise_alarm(
        "pump-1/motor_stall", "pump-1", "clinic-a", AlarmCode.MOTOR_STALL, "device", Priority.HIGH, "Motor stall", T0
    )
    journal = list(made)
    stall, made = lc.condition_cleared(stall, T0 + MIN)
    journal += made
    stall, made = lc.acknowledge(stall, "nurse:ana", T0 + 3 * MIN, "rotor study booked")
    journal += made
    low, made = lc.raise_alarm(
        "pump-2/reservoir_low", "pump-2", "clinic-b", AlarmCode.RESERVOIR_LOW, "device", Priority.MEDIUM, "Low", T0
    )
    journal += made
    low, made = lc.shelve(low, "dr:bo", T0 + 2 * MIN, timedelta(hours=2), "refill this morning")
    journal += made
    return {stall.key: stall, low.key: low}, journal


def rows(path: Path, table: str) -> int:
    with raw_sqlite(path) as raw:
        return int(raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# ------------------------------------------------------------------------------------ the journal


def test_transitions_come_back_exactly_and_in_order(journal: Journal) -> None:
    _, made = story()
    assert journal.record(made) == len(made)
    assert journal.transitions() == made
    assert [t.at.tzinfo for t in journal.transitions()] == [UTC] * len(made)


def test_transitions_are_filtered_by_key_device_site_since_and_limit(journal: Journal) -> None:
    _, made = story()
    journal.record(made)
    stall = [t for t in made if t.device_id == "pump-1"]
    assert journal.transitions(key="pump-1/motor_stall") == stall
    assert journal.transitions(device_id="pump-1") == stall
    assert journal.transitions(site="clinic-b") == [t for t in made if t.site == "clinic-b"]
    assert journal.transitions(since=T0 + MIN) == [t for t in made if t.at >= T0 + MIN]
    assert journal.transitions(limit=2) == made[:2]
    assert journal.transitions(device_id="pump-1", since=T0 + 2 * MIN) == [stall[-1]]
    assert journal.transitions(device_id="nobody") == []
    with pytest.raises(ValueError, match="timezone"):
        journal.transitions(since=datetime(2025, 3, 1))


def test_times_in_any_zone_are_stored_in_utc_and_filtered_as_instants(journal: Journal) -> None:
    east, west = timezone(timedelta(hours=9)), timezone(timedelta(hours=-8))
    alarm, made = lc.raise_alarm(
        "pump-1/battery_eri", "pump-1", "clinic-a", "battery_eri", "device", Priority.MEDIUM, "ERI", T0.astimezone(east)
    )
    alarm, cleared = lc.condition_cleared(alarm, (T0 + MIN).astimezone(west))
    alarm, back = lc.condition_returned(alarm, (T0 + 2 * MIN).astimezone(east))
    journal.record(made + cleared + back)
    # 08:01 UTC is 00:01 in the west and 17:01 in the east: as text in their own zones they would
    # sort the other way round
    assert [t.version for t in journal.transitions(since=(T0 + MIN).astimezone(east))] == [2, 3]
    assert [t.version for t in journal.transitions(since=(T0 + 90 * timedelta(seconds=1)).astimezone(west))] == [3]
    with raw_sqlite(journal.path) as raw:
        assert [at for (at,) in raw.execute("SELECT at FROM alarm_journal ORDER BY version")] == [
            "2025-03-01T08:00:00.000000+00:00",
            "2025-03-01T08:01:00.000000+00:00",
            "2025-03-01T08:02:00.000000+00:00",
        ]


def test_recording_again_inserts_nothing(journal: Journal) -> None:
    _, made = story()
    journal.record(made)
    assert journal.record(made) == 0
    assert journal.record(made[1:3]) == 0
    assert rows(journal.path, "alarm_journal") == len(made)


def test_a_batch_with_old_and_new_transitions_inserts_only_the_new(journal: Journal) -> None:
    _, made = story()
    journal.record(made[:2])
    assert journal.record(made) == len(made) - 2
    assert journal.transitions() == made


def test_a_different_transition_under_a_recorded_version_is_a_conflict_and_nothing_is_recorded(
    journal: Journal,
) -> None:
    _, made = story()
    journal.record(made[:2])
    forged = replace(made[1], actor="someone else")
    with pytest.raises(JournalConflict, match="pump-1/motor_stall v2"):
        journal.record(
            [made[2], forged], device_event=DeviceEventKey("clinic-a", "pump-1", "a1", "cleared", "battery_eri")
        )
    assert journal.transitions() == made[:2]  # made[2] was rolled back with the batch
    assert not journal.has_device_event("clinic-a", "pump-1", "a1", "cleared")


def test_a_version_gap_is_refused(journal: Journal) -> None:
    _, made = story()
    with pytest.raises(JournalError, match="v2: version 1 was never recorded"):
        journal.record([made[1]])
    assert journal.transitions() == []


def test_the_journal_has_no_update_or_delete_api() -> None:
    public = {name for name in dir(Journal) if not name.startswith("_")}
    assert public == {
        "alarms",
        "checkpoint_elsewhere",
        "close",
        "commands",
        "commit",
        "device_events",
        "escalations",
        "frames",
        "has_device_event",
        "load_snapshots",
        "log_command",
        "record",
        "record_escalations",
        "record_frames",
        "record_response",
        "record_training_event",
        "responses",
        "save_snapshot",
        "schema_version",
        "snapshots",
        "training_events",
        "transitions",
    }


@pytest.mark.parametrize("table", ["alarm_journal", "command_log", "device_alarm_event"])
def test_sqlite_itself_refuses_to_update_or_delete_journal_rows(journal: Journal, table: str) -> None:
    _, made = story()
    journal.record(made, device_event=DeviceEventKey("clinic-a", "pump-1", "a1", "raised", "battery_eri"))
    journal.log_command("c1", "pump-1", "clinic-a", "pending", "nurse:ana", T0)
    with raw_sqlite(journal.path) as raw:
        for statement in (f"UPDATE {table} SET device_id = 'x'", f"DELETE FROM {table}"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)
    assert rows(journal.path, table) >= 1


def test_schema_version_wal_and_synchronous_normal(journal: Journal) -> None:
    assert journal.schema_version == SCHEMA_VERSION
    with raw_sqlite(journal.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL; per connection, so read ours


def test_a_file_from_a_newer_pumptwin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twin.sqlite3"
    Journal(path).close()
    with raw_sqlite(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError, match="schema version"):
        Journal(path)


def test_an_older_file_is_migrated_forward_keeping_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "twin.sqlite3"
    live, made = story()
    with Journal(path) as old:
        old.record(made)
    later = (*journal_module.MIGRATIONS, ("CREATE INDEX alarm_journal_actor ON alarm_journal (actor)",))
    monkeypatch.setattr(journal_module, "MIGRATIONS", later)
    monkeypatch.setattr(journal_module, "SCHEMA_VERSION", len(later))
    with Journal(path) as new:
        assert new.schema_version == SCHEMA_VERSION + 1
        assert new.alarms() == live
    with raw_sqlite(path) as raw:
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'alarm_journal_actor'").fetchone()


def test_a_migration_that_fails_leaves_the_file_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "twin.sqlite3"
    Journal(path).close()
    broken = (*journal_module.MIGRATIONS, ("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL"))
    monkeypatch.setattr(journal_module, "MIGRATIONS", broken)
    monkeypatch.setattr(journal_module, "SCHEMA_VERSION", len(broken))
    with pytest.raises(sqlite3.OperationalError):
        Journal(path)
    with raw_sqlite(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchone() is None


def test_reopening_keeps_everything_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "twin.sqlite3"
    live, made = story()
    with Journal(path) as first:
        first.record(made)
    with Journal(path) as second:
        assert second.schema_version == SCHEMA_VERSION
        assert second.transitions() == made
        assert second.alarms() == live


# -------------------------------------------------------------------------------------- recovery


def test_alarms_fold_back_to_the_live_state(journal: Journal) -> None:
    live, made = story()
    journal.record(made)
    assert journal.alarms() == live


def test_a_journal_that_does_not_fold_is_reported_not_rewritten(journal: Journal) -> None:
    _, made = story()
    journal.record(made)
    with raw_sqlite(journal.path) as raw:  # a row the lifecycle would never make: ack of a normal alarm
        raw.execute(
            "INSERT INTO alarm_journal (key, version, device_id, site, code, priority, source, latching, message, "
            "event, from_state, to_state, actor, at, comment, raised_at, time_to_ack_s, expires_at, recorded_at) "
            "SELECT key, version + 1, device_id, site, code, priority, source, latching, message, event, to_state, "
            "to_state, actor, at, comment, raised_at, time_to_ack_s, expires_at, recorded_at FROM alarm_journal "
            "WHERE key = 'pump-1/motor_stall' AND version = 3"
        )
    with pytest.raises(AlarmError, match="replay_mismatch"):
        journal.alarms()


def _play(
    ops: list[Operation], alarms: dict[str, Alarm], now: datetime
) -> tuple[dict[str, Alarm], datetime, list[list[Transition]]]:
    batches = []
    for op in ops:
        now, alarms, made, _ = run(alarms, op, now)
        batches.append(made)
    return alarms, now, batches


@settings(max_examples=100, deadline=None)
@given(sequences, st.data())
def test_recovery_after_a_restart_neither_loses_nor_duplicates_an_alarm(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Operation], data: st.DataObject
) -> None:
    """Run a random sequence recording every call's transitions; restart (close and reopen) at a
    random point; go on from the *recovered* alarms. The recovered alarms equal the live ones, the
    old transitions recorded again insert nothing, and the file holds each transition once."""
    split = data.draw(st.integers(0, len(ops)), label="restart after")
    path = tmp_path_factory.mktemp("journal") / "twin.sqlite3"
    before, now, first_batches = _play(ops[:split], {}, START)
    with Journal(path) as journal:
        for batch in first_batches:
            assert journal.record(batch) == len(batch)
    with Journal(path) as journal:
        recovered = journal.alarms()
        assert recovered == before
        after, _, second_batches = _play(ops[split:], recovered, now)
        for batch in second_batches:
            assert journal.record(batch) == len(batch)
        assert sum(journal.record(batch) for batch in first_batches + second_batches) == 0  # replays
        assert journal.alarms() == after
        everything = [t for batch in first_batches + second_batches for t in batch]
        assert journal.transitions() == everything
    assert rows(path, "alarm_journal") == len(everything)
    # and the same live run, without a restart, ends in the same alarms
    assert _play(ops, {}, START)[0] == after


# ------------------------------------------------------------------------------ device events


def test_a_device_event_recorded_once_is_recognised(journal: Journal) -> None:
    message = AlarmEvent(
        device_id="pump-1",
        device_time=T0,
        session=1,
        seq=7,
        alarm_id="a3-motor_stall",
        code=AlarmCode.MOTOR_STALL,
        event=AlarmEventType.RAISED,
        device_class=DeviceAlarmClass.CRITICAL,
        priority=Priority.HIGH,
        raised_at=T0,
        message="Motor stall",
    )
    key = dedupe_key("clinic-a", message)
    assert key == DeviceEventKey("clinic-a", "pump-1", "a3-motor_stall", "raised", "motor_stall")
    assert not journal.has_device_event(key.site, key.device_id, key.alarm_id, key.event)
    _, made = story()
    journal.record(made[:1], device_event=key)
    assert journal.has_device_event("clinic-a", "pump-1", "a3-motor_stall", "raised")
    assert not journal.has_device_event("clinic-a", "pump-1", "a3-motor_stall", "cleared")
    assert not journal.has_device_event("clinic-a", "pump-2", "a3-motor_stall", "raised")
    assert not journal.has_device_event("clinic-b", "pump-1", "a3-motor_stall", "raised")  # another site's pump-1
    assert journal.record([], device_event=key) == 0  # a second delivery: nothing new, no error
    assert rows(journal.path, "device_alarm_event") == 1


# -------------------------------------------------------------------------------------- commands


def test_commands_are_logged_once_per_status_and_read_back(journal: Journal) -> None:
    assert journal.log_command("c1", "pump-1", "clinic-a", "pending", "nurse:ana", T0, {"action": "refill"})
    assert journal.log_command("c2", "pump-2", "clinic-b", "pending", "dr:bo", T0 + MIN)
    assert journal.log_command("c1", "pump-1", "clinic-a", "applied", "device", T0 + 2 * MIN, {"ml": 18.5})
    assert not journal.log_command("c1", "pump-1", "clinic-a", "applied", "device", T0 + 3 * MIN, {"ml": 0})
    c1 = journal.commands(command_id="c1")
    assert [(c.status, c.at, c.detail) for c in c1] == [
        ("pending", T0, {"action": "refill"}),
        ("applied", T0 + 2 * MIN, {"ml": 18.5}),
    ]
    assert [c.command_id for c in journal.commands(device_id="pump-2")] == ["c2"]
    assert [c.command_id for c in journal.commands()] == ["c1", "c2", "c1"]
    assert journal.commands(device_id="pump-2", command_id="c1") == []


def test_a_command_detail_json_cannot_hold_is_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match="JSON"):
        journal.log_command("c1", "pump-1", "clinic-a", "pending", "nurse:ana", T0, {"ml": float("nan")})
    assert journal.commands() == []


# ------------------------------------------------------------------------------------- snapshots


def test_snapshots_are_upserted_newest_version_wins_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "twin.sqlite3"
    with Journal(path) as journal:
        assert journal.save_snapshot("pump-1", "clinic-a", 3, {"reservoir_ml": 12.5, "alarms": ["motor_stall"]})
        assert journal.save_snapshot("pump-2", "clinic-b", 1, {"reservoir_ml": 20.0})
        assert journal.save_snapshot("pump-1", "clinic-a", 4, {"reservoir_ml": 12.4, "alarms": []})
        assert not journal.save_snapshot("pump-1", "clinic-a", 2, {"reservoir_ml": 99.0})  # older: refused
        assert journal.save_snapshot("pump-1", "clinic-a", 4, {"reservoir_ml": 12.3, "alarms": []})  # same: kept
    with Journal(path) as journal:
        assert journal.load_snapshots() == {
            ("clinic-a", "pump-1"): {"reservoir_ml": 12.3, "alarms": []},
            ("clinic-b", "pump-2"): {"reservoir_ml": 20.0},
        }
        assert journal.save_snapshot("pump-1", "clinic-b", 1, {"reservoir_ml": 5.0})  # the same id at another site
        assert len(journal.snapshots()) == 3


# -------------------------------------------------------------------------- several connections


def test_two_journals_on_one_file_in_one_thread_share_one_record(tmp_path: Path) -> None:
    path = tmp_path / "twin.sqlite3"
    live, made = story()
    with Journal(path) as old, Journal(path) as new:  # e.g. a restart that opens before the old one closed
        assert old.record(made[:3]) == 3
        assert new.record(made) == len(made) - 3
        assert old.record(made) == 0
        with pytest.raises(JournalConflict):
            old.record([replace(made[-1], comment="another reason")])
        assert old.alarms() == new.alarms() == live
        assert old.transitions() == new.transitions() == made


async def test_coroutines_sharing_one_journal_record_every_transition_once(journal: Journal) -> None:
    """Many tasks on one loop, each recording its own alarm's transitions with awaits between calls:
    every transition is recorded once, per key in version order."""

    async def one_alarm(device: str) -> dict[str, Alarm]:
        alarm, made = lc.raise_alarm(
            lc.alarm_key("clinic-a", device, "battery_eri"),
            device,
            "clinic-a",
            "battery_eri",
            "device",
            Priority.MEDIUM,
            "ERI",
            T0,
        )
        journal.record(made)
        for step in range(1, 6):
            await asyncio.sleep(0)
            change = lc.condition_cleared if alarm.condition_active else lc.condition_returned
            alarm, made = change(alarm, T0 + step * MIN)
            journal.record(made)
            journal.record(made)  # a retry of the same write
        return {alarm.key: alarm}

    results = await asyncio.gather(*(one_alarm(f"pump-{i}") for i in range(20)))
    live = {key: alarm for result in results for key, alarm in result.items()}
    assert journal.alarms() == live
    assert rows(journal.path, "alarm_journal") == 20 * 6
    for key in live:
        assert [t.version for t in journal.transitions(key=key)] == [1, 2, 3, 4, 5, 6]
