"""A real pump's refill checks in the service, on a real SQLite journal: a journal that cannot be written keeps
the old checks with the old fleet (and the same read-out is checked once the journal takes it), and a restarted
twin keeps them (they are in the device snapshot), so its next check and its discrepancy alert go on as before."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.harness.inproc import new_service
from twin.alarms.lifecycle import alarm_key
from twin.gateway.publication import publications
from twin.gateway.readout import Interrogation
from twin.gateway.readout_file import load_readout
from twin.mirror.alerts import TwinAlertCode
from twin.service.twin_service import Received, TwinService
from twin.store.local import LocalJournalStore
from twin.store.protocol import StoreUnavailable

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "interrogations"
SERIES = [load_readout(p) for p in sorted(EXAMPLES.glob("itb-0412-*.interrogation.yaml"))]
KEY = (SERIES[0].site, SERIES[0].device_id)
DISCREPANCY = alarm_key(KEY[0], KEY[1], TwinAlertCode.REFILL_DISCREPANCY.value)


class Clock:
    def __init__(self) -> None:
        self.now = SERIES[0].interrogated_at

    def __call__(self) -> datetime:
        return self.now


async def _import(service: TwinService, clock: Clock, readout: Interrogation) -> None:
    clock.now = readout.interrogated_at + timedelta(hours=1)
    await service.ingest([Received(m.topic, m.payload, clock.now, m.qos) for m in publications(readout)])


def _checks(service: TwinService) -> int:
    visits = service.fleet.visits.get(KEY)
    return len(visits.checks) if visits is not None else 0


def _read_only(service: TwinService, on: bool) -> None:
    """SQLite's own switch: every write is refused with SQLITE_READONLY (as on a read-only disk)."""
    store = service.store
    assert isinstance(store, LocalJournalStore)
    store.journal._db.execute(f"PRAGMA query_only = {'ON' if on else 'OFF'}")


async def test_a_journal_that_cannot_be_written_keeps_the_old_checks(tmp_path: Path) -> None:
    clock = Clock()
    service = await new_service(tmp_path / "journal.sqlite", clock=clock)
    for readout in SERIES[:3]:
        await _import(service, clock, readout)
    assert _checks(service) == 2
    before = service.fleet
    _read_only(service, True)
    with pytest.raises(StoreUnavailable):
        await _import(service, clock, SERIES[3])  # the discrepant visit: it raises an alarm, which must be journaled
    assert service.fleet is before  # nothing adopted: not the twin, not the checks, not the board
    assert _checks(service) == 2
    _read_only(service, False)
    await _import(service, clock, SERIES[3])  # the link tries the same messages again
    assert _checks(service) == 3
    alarm = service.fleet.board.alarms.get(DISCREPANCY)
    assert alarm is not None
    assert alarm.condition_active
    await service.store.close()


async def test_a_restarted_twin_keeps_the_refill_checks(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    clock = Clock()
    service = await new_service(path, clock=clock)
    for readout in SERIES[:4]:
        await _import(service, clock, readout)
    visits = service.fleet.visits[KEY]
    alarm = service.fleet.board.alarms.get(DISCREPANCY)
    assert alarm is not None
    assert "twin predicted" in alarm.message
    await service.flush_snapshots()
    await service.store.close()

    again = await new_service(path, clock=clock)  # restore: snapshots, journal, ticked at the same time
    assert again.fleet.visits[KEY] == visits
    restored = again.fleet.board.alarms.get(DISCREPANCY)
    assert restored is not None
    assert restored.condition_active  # the restore's tick evaluated the twin's own check, not the pump's
    assert restored.message == alarm.message
    await _import(again, clock, SERIES[4])  # the next visit is checked against the one before the restart
    assert (
        [c.refill_at for c in again.fleet.visits[KEY].checks]
        == [
            r.last_refill.at  # type: ignore[union-attr]
            for r in SERIES[1:5]
        ]
    )
    cleared = again.fleet.board.alarms.get(DISCREPANCY)
    assert cleared is not None
    assert not cleared.condition_active
    await again.store.close()
