"""The twin's own ingest work a message, in-process, without MQTT: the recorded fleet stream of
``twin_ingest`` applied by ``TwinService.ingest`` in batches (as the link hands them over), with the
SQLite journal and the InfluxDB spool (no sender). A tool for working on the hot path: CPU
microseconds a message, median of the runs; no baseline (``twin_ingest`` has the ratio).

    python -m benchmarks.ingest_inproc [--pumps 200] [--messages 30000] [--batch 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.twin_ingest import recorded_stream
from twin.influx.writer import InfluxWriter
from twin.service.twin_service import Received, TwinService
from twin.settings import InfluxSettings
from twin.store.local import LocalJournalStore


async def once(stream: list[tuple[str, bytes, int]], batch: int, data_dir: Path) -> float:
    async with InfluxWriter(InfluxSettings(), data_dir / "spool") as writer:
        store = LocalJournalStore(data_dir / "journal.sqlite")
        service = TwinService(store, points=writer)
        await service.restore()
        now = datetime.now(UTC)
        received = [Received(t, p, now, q) for t, p, q in stream]
        gc.collect()
        started = time.process_time()
        for i in range(0, len(received), batch):
            await service.ingest(received[i : i + batch])
        spent = time.process_time() - started
        await store.close()
        assert not service.reject_counts, service.reject_counts
    return spent / len(stream) * 1e6


async def main_async(args: argparse.Namespace) -> None:
    stream = recorded_stream(args.pumps, args.messages)
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(await once(stream, args.batch, Path(tmp)))
        print(f"{runs[-1]:.1f} CPU us a message")
    print(
        json.dumps(
            {
                "benchmark": "ingest_inproc",
                "cpu_us_per_message": round(statistics.median(runs), 1),
                "runs": [round(r, 1) for r in runs],
                "messages": len(stream),
                "batch": args.batch,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=200)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
