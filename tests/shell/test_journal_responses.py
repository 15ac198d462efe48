"""Staff responses in the journal (table ``alarm_response``, schema 2): recorded once, read back
exactly and in order, filtered, append-only, and added to a journal file of schema 1."""

from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin.alarms import lifecycle as lc
from twin.alarms.responses import AlarmResponse
from twin.contract.alarms import AlarmCode, Priority
from twin.store import journal as journal_module
from twin.store.journal import SCHEMA_VERSION, Journal

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def response(n: int, **changes: object) -> AlarmResponse:
    base = AlarmResponse(
        response_id=f"r-{n}",
        key="pump-1/reservoir_empty",
        device_id="pump-1",
        site="clinic-a",
        code="reservoir_empty",
        priority="high",
        alarm_version=2,
        alarm_state="active_acknowledged",
        action="refill",
        note="filled 20 mL",
        actor="nurse.jo",
        role="trainee",
        at=T0 + timedelta(minutes=n),
        command_id=f"c-{n}",
        detail={"type": "refill", "volume_ml": 20.0},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_responses_are_recorded_once_and_read_back_exactly_in_order(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        first = response(1)
        second = response(2, action="assess_withdrawal", note=None, command_id=None, detail={}, actor="nurse.kim")
        other = response(3, key="pump-2/motor_stall", device_id="pump-2", action="rotor_study", command_id=None)
        assert journal.record_response(first)
        assert journal.record_response(second)
        assert journal.record_response(other)
        assert not journal.record_response(first)  # the same response id again: nothing written
        assert journal.responses() == [first, second, other]
        assert journal.responses(key="pump-1/reservoir_empty") == [first, second]
        assert journal.responses(device_id="pump-2") == [other]
        assert journal.responses(actor="nurse.kim") == [second]
        assert journal.responses(since=T0 + timedelta(minutes=2)) == [second, other]
        assert journal.responses(limit=1) == [first]


def test_responses_are_append_only(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        journal.record_response(response(1))
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE alarm_response SET actor = 'someone else'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM alarm_response")


def test_a_schema_1_journal_gains_the_response_and_training_tables_and_keeps_its_alarms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.sqlite"
    alarm, made = lc.raise_alarm(
        "pump-1/motor_stall", "pump-1", "clinic-a", AlarmCode.MOTOR_STALL, "device", Priority.HIGH, "Motor stall", T0
    )
    with monkeypatch.context() as m:
        m.setattr(journal_module, "MIGRATIONS", journal_module.MIGRATIONS[:1])
        m.setattr(journal_module, "SCHEMA_VERSION", 1)
        with Journal(path) as old:
            assert old.schema_version == 1
            old.record(made)
    assert SCHEMA_VERSION == 5
    with Journal(path) as journal:
        assert journal.schema_version == 5  # 2: responses, 3: training events, 4: devices keyed by site, 5: escalations
        rekeyed = dataclasses.replace(alarm, key="clinic-a/pump-1/motor_stall")  # 4: the site joins the key
        assert journal.alarms() == {rekeyed.key: rekeyed}
        assert journal.record_response(response(1, key=rekeyed.key))
        assert [r.key for r in journal.responses()] == [rekeyed.key]
        assert journal.training_events() == []
