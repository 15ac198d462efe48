"""Backfill into a real influxd: a fleet's months of history through the twin, against the POST
ceiling of the same influxd, same run.

    .venv/bin/python -m benchmarks.backfill [--pumps 1000] [--days 90] [--telemetry-every-h 1]

Starts its own influxd (``tests/harness/servers.py``) in a temp dir, then:

* ``backfill``: :func:`twin.app.backfill.backfill`, what ``pumptwin sim --speed max --duration 90d
  --telemetry-every 1h --influx-url ...`` runs: the generated fleet (clinic on, random faults on)
  simulated as fast as possible, the twin in the same process applying every message (journal,
  alarm lifecycle, twin alerts), and everything it writes (telemetry, states, alarm events,
  transitions, commands) spooled and sent by the :class:`~twin.influx.InfluxWriter`, until the
  writer has drained. Points per second = points written / wall seconds.
* ``ceiling``: as many lines as the backfill wrote (telemetry samples and their ``sim_truth``), encoded beforehand (not timed),
  POSTed in batches of the same size, gzip as the writer, with one ``httpx.AsyncClient``, waiting
  for each answer: influxd's own ingest ceiling for this client on this machine.

The figure is the ratio of the two rates. The backfill's database is checked to hold every point
written (a count of telemetry points against the simulation's telemetry messages). The last line
printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import json
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console

from benchmarks.influx_writer import _start_influxd, _stored
from tests.harness.influx_fleet import device_tags, sample_message
from twin.app.backfill import backfill
from twin.influx.writer import GZIP_LEVEL
from twin.settings import InfluxSettings
from twin.sim.plan import SimPlan
from twin.timeseries.lines import telemetry_lines

DAY_S = 86_400.0


async def _ceiling(url: str, db: str, lines: list[bytes], settings: InfluxSettings) -> float:
    """Seconds to POST ``lines`` (pre-encoded) in the writer's batch size."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if settings.gzip:
        headers["Content-Encoding"] = "gzip"
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await client.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
        size = settings.batch_size
        started = time.perf_counter()
        for start in range(0, len(lines), size):
            body = b"\n".join(lines[start : start + size])
            if settings.gzip:
                body = gzip.compress(body, GZIP_LEVEL)
            answer = await client.post("/write", params={"db": db, "precision": "ns"}, content=body, headers=headers)
            answer.raise_for_status()
        return time.perf_counter() - started


async def _main(pumps: int, days: float, telemetry_every_h: float, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        work = Path(tmp)
        influxd = _start_influxd(work)
        try:
            settings = InfluxSettings(url=influxd.url, database="backfill")
            plan = SimPlan.build(
                pumps=pumps,
                fleet_file=None,
                seed=seed,
                speed=None,
                duration_s=days * DAY_S,
                start=None,
                telemetry_every_s=telemetry_every_h * 3600.0,
                random_faults=True,
                clinic=True,
            )
            quiet = Console(file=io.StringIO())
            result = await backfill(plan, settings, console=quiet, spool_dir=work / "spool")
            if not result.drained or result.dead_lettered:
                raise RuntimeError(f"the backfill did not write everything: {result}")
            telemetry_stored = _stored(influxd, "backfill")
            devices = min(pumps, 1000)
            lines: list[bytes] = []
            samples = 0
            seq = 0
            while len(lines) < result.points_written:  # a sample and its truth, device by device
                for d in range(devices):
                    lines += [line for line in telemetry_lines(device_tags(d), sample_message(d, seq)) if line]
                    samples += 1
                    if len(lines) >= result.points_written:
                        break
                seq += 1
            ceiling_s = await _ceiling(influxd.url, "ceiling", lines, settings)
            if _stored(influxd, "ceiling") != samples:
                raise RuntimeError("the ceiling database does not hold every line")
        finally:
            influxd.stop()
    backfill_rate = result.points_written / result.wall_s
    ceiling_rate = len(lines) / ceiling_s
    return {
        "benchmark": "backfill",
        "figure": {
            "name": "backfill points/s (simulation, twin, writer, until drained)",
            "value": round(backfill_rate),
        },
        "baseline": {"name": "pre-encoded POST loop points/s, same influxd", "value": round(ceiling_rate)},
        "ratio": round(backfill_rate / ceiling_rate, 3),
        "pumps": pumps,
        "days": days,
        "telemetry_every_h": telemetry_every_h,
        "messages": result.messages,
        "points_written": result.points_written,
        "telemetry_points_stored": telemetry_stored,
        "alarms_open_at_end": result.alarms_open,
        "backfill_wall_s": round(result.wall_s, 1),
        "ceiling_wall_s": round(ceiling_s, 1),
        "simulated_days_per_wall_s": round(days / result.wall_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=1000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--telemetry-every-h", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args.pumps, args.days, args.telemetry_every_h, args.seed))))


if __name__ == "__main__":
    main()
