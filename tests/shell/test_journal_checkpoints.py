"""The journal's WAL checkpoints off the event loop (``LocalJournalStore.run_checkpoints``), on a
real SQLite file: with the checkpointer handed the job, the commits run none (the WAL keeps what
they wrote); the checkpointer's passes copy it into the file while commits go on; when it stops,
the commits run their own checkpoints again; a store in memory has nothing to checkpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from twin.alarms.lifecycle import raise_alarm
from twin.contract.alarms import Priority
from twin.store.local import LocalJournalStore
from twin.store.protocol import Batch

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def _batch(i: int) -> Batch:
    _, transitions = raise_alarm(
        f"ward/p{i}/reservoir_low",
        f"p{i}",
        "ward",
        "reservoir_low",
        "device",
        Priority.MEDIUM,
        "x" * 2000,
        T0 + timedelta(seconds=i),
    )
    return Batch(transitions=transitions)


def _autocheckpoint(store: LocalJournalStore) -> int:
    return int(store.journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_the_checkpointer_takes_the_checkpoints_off_the_commits_and_gives_them_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    store = LocalJournalStore(path)
    wal = path.with_name(path.name + "-wal")
    assert _autocheckpoint(store) == 1000  # SQLite's default while no checkpointer runs
    checkpointer = store.journal.checkpoint_elsewhere()
    assert checkpointer is not None
    assert _autocheckpoint(store) == 0
    for i in range(1500):  # well past the 1,000 pages a commit would have checkpointed at
        await store.commit(_batch(i))
    frames, copied = checkpointer.checkpoint()
    assert frames > 1000  # the commits ran no checkpoint: everything they wrote was still in the WAL
    assert copied == frames  # one pass copied it all into the file
    checkpointer.close()
    store.journal._db.execute("PRAGMA wal_autocheckpoint = 1000")
    written = wal.stat().st_size  # the WAL of 1,500 commits (SQLite reuses the file, never shrinks it)

    # the running task: passes while commits go on, and the commits' own checkpoints back at the end
    stop = asyncio.Event()
    task = asyncio.create_task(store.run_checkpoints(stop, every_s=0.05))
    await asyncio.sleep(0.1)
    assert _autocheckpoint(store) == 0
    for i in range(1500, 4500):  # twice what the WAL held
        await store.commit(_batch(i))
        if i % 300 == 0:
            await asyncio.sleep(0.15)  # a pause between bursts, as the twin's traffic has
    await asyncio.sleep(0.3)
    stop.set()
    await task
    assert _autocheckpoint(store) == 1000
    # twice the WAL's worth of commits went through it, and it did not grow to that: the passes
    # copied it into the file while the commits went on, and the commits started the WAL afresh
    assert wal.stat().st_size < 1.5 * written
    probe = LocalJournalStore(path)  # a second connection: everything committed is there
    assert len(probe.journal.transitions()) == 4500
    await probe.close()
    await store.close()


async def test_a_store_in_memory_has_no_checkpointer() -> None:
    store = LocalJournalStore(None)
    assert store.journal.checkpoint_elsewhere() is None
    await store.run_checkpoints(asyncio.Event())  # returns at once
    await store.close()
