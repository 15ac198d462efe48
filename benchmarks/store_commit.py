"""Commit throughput of the two store back ends: batches of N alarm transitions, same run.

    .venv/bin/python -m benchmarks.store_commit [--keys 3000] [--seconds 3]

Each back end gets a fresh store and commits batches of N = 1, 10 and 100 new transitions (each
transition the next step of one of ``--keys`` alarm points: raise, acknowledge, clear, raise
again, ... as the lifecycle makes them, so every commit folds its batch into the current alarms
and checks versions as the twin's would), one commit at a time, for ``--seconds`` each:

* ``sqlite``: the SQLite adapter on a WAL file in a temp dir (``synchronous=NORMAL``: a commit
  is not fsynced, the WAL is at checkpoints);
* ``postgres``: a real PostgreSQL started for the run (initdb in a temp dir, free port,
  ``fsync=on``, ``synchronous_commit=on``: every commit waits for its WAL flush), each batch
  fenced by a partition lease, as a replica's are;
* ``postgres_async_commit``: the same with ``synchronous_commit=off`` (a commit returns before
  its WAL flush, as SQLite's NORMAL does; a server crash may lose the last ~600 ms of commits,
  never corrupt).

Printed per back end and N: commits/s, transitions/s, median and 99th percentile of one commit
(ms); then each PostgreSQL figure as a ratio of SQLite's in the same run. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.harness.postgres import Postgres, running
from twin.alarms import lifecycle as lc
from twin.alarms.lifecycle import Alarm, Transition
from twin.contract.alarms import AlarmCode, Priority
from twin.store.local import LocalJournalStore
from twin.store.postgres import Database, PostgresJournalStore, PostgresLeaseStore
from twin.store.postgres.schema import migrate
from twin.store.protocol import Batch, Fence, JournalStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIZES = (1, 10, 100)


def transitions(keys: int) -> Iterator[Transition]:
    """An endless stream of new transitions over ``keys`` alarm points, round robin, each the
    lifecycle's next step of its point (raise, acknowledge, clear, raise again, ...)."""
    alarms: dict[int, Alarm] = {}
    at = T0
    while True:
        for i in range(keys):
            at += timedelta(milliseconds=1)
            alarm = alarms.get(i)
            if alarm is None:
                alarm, made = lc.raise_alarm(
                    f"pump-{i:05d}/reservoir_low", f"pump-{i:05d}", f"site-{i % 12}", AlarmCode.RESERVOIR_LOW,
                    "device", Priority.MEDIUM, "Low reservoir", at,
                )  # fmt: skip
            elif alarm.state is lc.AlarmState.ACTIVE_UNACKNOWLEDGED:
                alarm, made = lc.acknowledge(alarm, "nurse:ana", at)
            elif alarm.condition_active:
                alarm, made = lc.condition_cleared(alarm, at)
            else:
                alarm, made = lc.condition_returned(alarm, at)
            alarms[i] = alarm
            yield from made


async def _measure(
    store: JournalStore, stream: Iterator[Transition], size: int, seconds: float, fence: Fence | None
) -> dict[str, float]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        batch = Batch(transitions=[next(stream) for _ in range(size)], fence=fence)
        t = time.perf_counter()
        await store.commit(batch)
        samples.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    samples.sort()
    return {
        "commits_per_s": round(len(samples) / elapsed, 1),
        "transitions_per_s": round(len(samples) * size / elapsed, 1),
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)] * 1000, 3),
        "commits": len(samples),
    }


async def _run_postgres(
    server: Postgres, name: str, keys: int, seconds: float, async_commit: bool
) -> dict[int, dict[str, float]]:
    url = server.create_database(name)
    if async_commit:
        server.psql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    await migrate(url)
    results = {}
    async with Database(url, replica="bench") as db:
        lease = await PostgresLeaseStore(db).acquire(0, "bench", datetime.now(UTC), timedelta(hours=1))
        assert lease is not None
        store = PostgresJournalStore(db)
        stream = transitions(keys)
        for size in SIZES:
            results[size] = await _measure(store, stream, size, seconds, Fence(0, lease.epoch))
    return results


async def _run(keys: int, seconds: float) -> dict[str, dict[int, dict[str, float]]]:
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalJournalStore(Path(tmp) / "journal.sqlite")
        stream = transitions(keys)
        results["sqlite"] = {size: await _measure(store, stream, size, seconds, None) for size in SIZES}
        await store.close()
    with running(Postgres(fsync=True)) as server:
        results["postgres"] = await _run_postgres(server, "bench_sync", keys, seconds, async_commit=False)
        results["postgres_async_commit"] = await _run_postgres(server, "bench_async", keys, seconds, async_commit=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    results = asyncio.run(_run(args.keys, args.seconds))
    ratios: dict[str, dict[int, float]] = {}
    for backend, by_size in results.items():
        for size, figures in by_size.items():
            print(
                f"{backend:22s} N={size:<4d} {figures['commits_per_s']:9.1f} commits/s "
                f"{figures['transitions_per_s']:10.1f} transitions/s  median {figures['median_ms']:.3f} ms  "
                f"p99 {figures['p99_ms']:.3f} ms"
            )
        if backend != "sqlite":
            ratios[backend] = {
                size: round(figures["transitions_per_s"] / results["sqlite"][size]["transitions_per_s"], 3)
                for size, figures in by_size.items()
            }
    for backend, by_size in ratios.items():
        print(f"{backend} / sqlite (transitions/s, same run): " + ", ".join(f"N={s}: {r}" for s, r in by_size.items()))
    print(json.dumps({"benchmark": "store_commit", "results": results, "ratio_to_sqlite": ratios}))


if __name__ == "__main__":
    main()
