"""Escalations and session pump frames in the journal (tables ``alarm_escalation`` and
``training_frame``, schema 4): recorded once, read back exactly and in order, append-only, and
added to a journal file of the schema before."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin.alarms import lifecycle as lc
from twin.alarms.escalation import DEFAULT_POLICY, Roster, climb, due
from twin.contract.alarms import Priority
from twin.roles import Role
from twin.store import journal as journal_module
from twin.store.journal import SCHEMA_VERSION, Journal
from twin.training.frames import PumpFrame

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ROSTER = Roster({"ian": Role.INSTRUCTOR, "ada": Role.ADMIN})


def test_escalations_are_recorded_once_and_read_back_exactly(tmp_path: Path) -> None:
    made = due(
        [lc.raise_alarm("w/p1/motor_stall", "p1", "ward", "motor_stall", "device", Priority.HIGH, "stall", T0)[0]],
        {},
        DEFAULT_POLICY,
        T0 + 6 * MIN,
        ROSTER,
    )
    assert [e.level for e in made] == [1, 2]
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.record_escalations(made) == 2
        assert journal.record_escalations(made) == 0  # the same ids again: nothing written
        assert journal.escalations() == made
        assert journal.escalations(key="w/p2/motor_stall") == []
        assert journal.escalations(device_id="p1", limit=1) == made[:1]
        assert journal.escalations(since=T0 + 7 * MIN) == []
    with Journal(tmp_path / "j.sqlite") as reopened:  # a restart climbs on from the record
        assert climb({}, reopened.escalations()) == climb({}, made)


def test_frames_are_recorded_once_per_seq_and_read_by_session_and_window(tmp_path: Path) -> None:
    frames = [
        PumpFrame("t-1", "w", "p1", 1, T0, {"reservoir_ml": 18.0, "infusing": True, "active_alarms": []}),
        PumpFrame("t-1", "w", "p2", 1, T0, {"reservoir_ml": 9.5, "infusing": True, "active_alarms": []}),
        PumpFrame(
            "t-1", "w", "p1", 2, T0 + MIN, {"reservoir_ml": 18.0, "infusing": False, "active_alarms": ["motor_stall"]}
        ),
        PumpFrame("t-2", "w", "p1", 1, T0 + 9 * MIN, {"reservoir_ml": 17.9, "infusing": True, "active_alarms": []}),
    ]
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.record_frames(frames) == 4
        assert journal.record_frames(frames[:2]) == 0
        assert journal.frames("t-1") == frames[:3]
        assert journal.frames(since=T0 + MIN, until=T0 + 9 * MIN) == frames[2:]
        assert journal.frames("t-3") == []


@pytest.mark.parametrize("table", ["alarm_escalation", "training_frame"])
def test_sqlite_refuses_to_update_or_delete_escalations_and_frames(tmp_path: Path, table: str) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.record_escalations(
            due(
                [lc.raise_alarm("w/p1/x", "p1", "w", "x", "device", Priority.HIGH, "x", T0)[0]],
                {},
                DEFAULT_POLICY,
                T0 + 3 * MIN,
                ROSTER,
            )
        )
        journal.record_frames([PumpFrame("t-1", "w", "p1", 1, T0, {"reservoir_ml": 1.0})])
        with closing(sqlite3.connect(journal.path)) as raw:
            for statement in (f"UPDATE {table} SET device_id = 'x'", f"DELETE FROM {table}"):
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    raw.execute(statement)


def test_a_file_of_the_schema_before_gains_the_tables_and_keeps_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite"
    with monkeypatch.context() as old:
        old.setattr(journal_module, "MIGRATIONS", journal_module.MIGRATIONS[:4])
        with Journal(path) as journal:
            assert journal.schema_version == 4
            made = lc.raise_alarm("w/p1/x", "p1", "w", "x", "device", Priority.HIGH, "x", T0)[1]
            journal.record(made)
    with Journal(path) as journal:
        assert journal.schema_version == SCHEMA_VERSION == 5
        assert len(journal.transitions()) == 1
        assert journal.escalations() == []
        assert journal.frames() == []
