"""``/healthz``'s journal part says degraded from the first refused write until a write succeeds:
a clock tick with nothing to write proves nothing about the disk. Before, every such tick set the
journal back to ok, so a twin on a full disk said ok most of the time (found by the full-disk
drill, tests/drills/test_disk_full.py: ok in 45 of 45 answers over 30 s)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.inproc import feed, new_service
from twin.contract import examples
from twin.contract.topics import Channel
from twin.service.health import Status
from twin.store.local import LocalJournalStore
from twin.store.protocol import StoreUnavailable


async def test_a_tick_with_nothing_to_write_does_not_say_the_journal_is_ok(tmp_path: Path) -> None:
    now = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    service = await new_service(tmp_path / "journal.sqlite", clock=lambda: now)
    store = service.store
    assert isinstance(store, LocalJournalStore)
    store.journal._db.execute("PRAGMA query_only = ON")  # the database refuses every write
    site, device = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
    birth_and_alarm = [(Channel.BIRTH, examples.birth()), (Channel.ALARM, examples.alarm())]
    with pytest.raises(StoreUnavailable):
        await feed(service, site, device, birth_and_alarm)
    assert service.health.parts["journal"].status is Status.DEGRADED
    await service.tick()  # nothing changed, so nothing to write: no news about the disk
    assert service.health.parts["journal"].status is Status.DEGRADED
    assert service.health.status is not Status.OK
    store.journal._db.execute("PRAGMA query_only = OFF")
    await feed(service, site, device, birth_and_alarm)  # the same messages again, as the link retries
    assert service.health.parts["journal"].status is Status.OK
    assert len(await store.transitions()) == 1
    await store.close()
