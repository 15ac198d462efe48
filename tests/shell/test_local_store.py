"""The SQLite adapter's own behaviour, on real files: a full disk and a read-only database are
StoreUnavailable with nothing written (and the store works again once there is room); writes by
today's :meth:`Journal.record` on the same file are seen by the adapter's fold; a fenced batch is
refused (one machine has no leases). The rest of its contract is the shared store suite
(``tests/integration/test_store_contract.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.test_store_contract import full_batch, journal_order, story
from twin.roles import Role
from twin.store.journal import Journal
from twin.store.local import LocalAccountStore, LocalJournalStore
from twin.store.protocol import Batch, Fence, Snapshot, StoreUnavailable

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


async def test_a_full_disk_is_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    store = LocalJournalStore(tmp_path / "journal.sqlite")
    live, made = story()
    await store.commit(Batch(transitions=made[:1]))
    db = store.journal._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own limit: the next page it needs is refused
    big = Batch(transitions=made[1:], snapshots=(Snapshot("clinic-a", "pump-1", 1, {"blob": "x" * 200_000}),))
    with pytest.raises(StoreUnavailable, match="SQLITE_FULL"):
        await store.commit(big)
    assert await store.transitions() == made[:1]
    assert await store.snapshots() == []
    db.execute("PRAGMA max_page_count = 1073741823")  # room again
    await store.commit(big)
    assert await store.transitions() == journal_order(made)
    assert await store.current_alarms() == live
    await store.close()


async def test_a_read_only_database_is_unavailable(tmp_path: Path) -> None:
    store = LocalJournalStore(tmp_path / "journal.sqlite")
    accounts = LocalAccountStore(tmp_path / "users.sqlite")
    store.journal._db.execute("PRAGMA query_only = ON")
    accounts.users._db.execute("PRAGMA query_only = ON")
    _, made = story()
    with pytest.raises(StoreUnavailable, match="SQLITE_READONLY"):
        await store.commit(full_batch(made))
    with pytest.raises(StoreUnavailable, match="SQLITE_READONLY"):
        await accounts.add("ana", Role.VIEWER, "hash", actor="admin", at=T0)
    assert await store.transitions() == []  # reads still work
    await store.close()
    await accounts.close()


async def test_writes_by_todays_journal_on_the_same_file_are_folded_in(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    store = LocalJournalStore(path)
    live, made = story()
    await store.commit(Batch(transitions=made[:2]))
    assert len(await store.current_alarms()) == 1
    with Journal(path) as today:
        today.record(made[2:])  # another writer moves the alarms on behind the adapter's fold
    assert await store.current_alarms() == live
    await store.commit(Batch(transitions=made))  # and the adapter sees them as repeats
    assert await store.transitions() == journal_order(made)
    await store.close()


async def test_a_fenced_batch_is_refused_on_one_machine(tmp_path: Path) -> None:
    store = LocalJournalStore(tmp_path / "journal.sqlite")
    _, made = story()
    with pytest.raises(ValueError, match="no leases"):
        await store.commit(Batch(transitions=made, fence=Fence(0, 1)))
    assert await store.transitions() == []
    await store.close()
