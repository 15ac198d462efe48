"""Points per second through the InfluxDB writer vs a plain line-protocol POST loop, same influxd, same run.

    .venv/bin/python -m benchmarks.influx_writer [--devices 100] [--samples 1000] [--runs 3]

Starts its own influxd (``tests/harness/servers.py``) in a temp dir. Every contender writes the
same telemetry (``devices × samples`` samples of simulated pumps) into a fresh database, in
batches of the settings' ``batch_size`` (default 5000), gzip as the settings say (default on):

* ``writer``: the twin's own path, end to end: each sample encoded as the ingest encodes it
  (:func:`twin.timeseries.lines.telemetry_lines`: the ``telemetry`` line and, simulated pumps
  being what they are, its ``sim_truth`` line; each device's escaped series keys made once),
  handed to :meth:`twin.influx.InfluxWriter.persist` (the write-ahead spool, on the caller's
  thread, as the twin does before it acknowledges a message) 1,000 at a time, yielding to the loop
  in between as a twin receiving messages would, then one sender, until ``drain`` returns.
* ``baseline_preencoded``: a loop that POSTs the same lines, encoded beforehand (encoding not
  timed), with one ``httpx.AsyncClient``, waiting for each answer: influxd's own ingest ceiling for
  this client. **The issue's target: writer ≥ 0.8 of this.**
* ``baseline``: the same loop encoding each batch with the general point encoder
  (:meth:`~twin.timeseries.points.InfluxPoint.line_protocol`) first.

Each contender runs ``--runs`` times, alternating; the median counts. Every database is checked to
hold exactly ``devices × samples`` telemetry points (and as many ``sim_truth`` points went with them). The last line printed is JSON:
``{"figure": writer, "baseline": baseline_preencoded, "ratio": writer / baseline_preencoded, ...}``;
``writer_requests``: every request of each writer run (its ``/ping`` and ``CREATE DATABASE`` included),
``baseline_requests``: the loop's (its ``CREATE DATABASE`` and one a batch).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tests.harness.influx_fleet import device_tags, sample_message
from tests.harness.servers import Influxd
from twin.contract.messages import Telemetry
from twin.influx.writer import GZIP_LEVEL, InfluxWriter
from twin.settings import InfluxSettings
from twin.timeseries.lines import telemetry_lines
from twin.timeseries.points import DeviceTags, InfluxPoint, sim_truth_point, telemetry_point

HANDOVER_CHUNK = 1000
"""Points per ``submit`` call in the writer run."""


async def _post_loop(
    url: str, db: str, batches: list[list[bytes]] | None, points: list[InfluxPoint], settings: InfluxSettings
) -> None:
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if settings.gzip:
        headers["Content-Encoding"] = "gzip"
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await client.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
        size = settings.batch_size
        count = len(batches) if batches is not None else -(-len(points) // size)
        for index in range(count):
            if batches is not None:
                lines = batches[index]
            else:
                lines = [p.line_protocol().encode() for p in points[index * size : (index + 1) * size]]
            body = b"\n".join(lines)
            if settings.gzip:
                body = gzip.compress(body, GZIP_LEVEL)
            response = await client.post("/write", params={"db": db, "precision": "ns"}, content=body, headers=headers)
            response.raise_for_status()


async def _writer_run(
    settings: InfluxSettings, samples: list[tuple[DeviceTags, Telemetry]], requests: list[int] | None = None
) -> None:
    """The writer's run; appends to ``requests`` how many requests it made (reported, not timed)."""
    async with InfluxWriter(settings) as writer:
        for start in range(0, len(samples), HANDOVER_CHUNK):
            chunk = samples[start : start + HANDOVER_CHUNK]
            writer.persist([(line, True) for tags, message in chunk for line in _both(tags, message) if line])
            await asyncio.sleep(0)
        if not await writer.drain(600):
            raise RuntimeError(f"the writer did not drain: {writer.stats}")
        if writer.stats.written != 2 * len(samples):
            raise RuntimeError(f"the writer wrote {writer.stats.written} of {2 * len(samples)}")
        if requests is not None:
            requests.append(writer.stats.requests)


def _both(tags: DeviceTags, message: Telemetry) -> tuple[bytes, bytes | None]:
    return telemetry_lines(tags, message)


def _stored(influxd: Influxd, db: str) -> int:
    result = influxd.query("SELECT count(seq) FROM telemetry", db=db)
    return int(result["results"][0]["series"][0]["values"][0][1])  # type: ignore[index]


def _start_influxd(work: Path) -> Influxd:
    """A fresh influxd; a few tries, since a free port can be taken between choosing and binding it."""
    for attempt in range(3):
        (work / f"influxd{attempt}").mkdir()
        influxd = Influxd(workdir=work / f"influxd{attempt}")
        try:
            influxd.start()
        except RuntimeError:
            influxd.stop()
            if attempt == 2:
                raise
            continue
        return influxd
    raise AssertionError("unreachable")


async def _timed(run: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started


async def _main(devices: int, samples: int, runs: int, gzip_on: bool) -> dict[str, object]:
    tags = [device_tags(device) for device in range(devices)]
    messages = [(tags[device], sample_message(device, seq)) for seq in range(samples) for device in range(devices)]
    points = [p for t, m in messages for p in (telemetry_point(t, m), sim_truth_point(t, m)) if p is not None]
    total = len(points)
    if total != 2 * len(messages):
        raise RuntimeError("every sample of a simulated pump has a sim_truth point")
    with tempfile.TemporaryDirectory(prefix="bench-influx-") as tmp:
        work = Path(tmp)
        influxd = _start_influxd(work)
        try:
            base = InfluxSettings(url=influxd.url, gzip=gzip_on)
            started = time.perf_counter()
            lines = [line for t, m in messages for line in _both(t, m) if line]
            encode_s = time.perf_counter() - started
            if lines != [p.line_protocol().encode() for p in points]:
                raise RuntimeError("the fast encoder and the point encoder disagree")
            batches = [lines[i : i + base.batch_size] for i in range(0, total, base.batch_size)]
            seconds: dict[str, list[float]] = {"writer": [], "baseline": [], "baseline_preencoded": []}
            requests: list[int] = []
            for run in range(runs):
                contenders: dict[str, Callable[[], Awaitable[None]]] = {
                    "writer": lambda run=run: _writer_run(  # type: ignore[misc]
                        base.model_copy(update={"database": f"writer{run}", "spool_dir": work / f"spool{run}"}),
                        messages,
                        requests,
                    ),
                    "baseline": lambda run=run: _post_loop(influxd.url, f"baseline{run}", None, points, base),  # type: ignore[misc]
                    "baseline_preencoded": lambda run=run: _post_loop(  # type: ignore[misc]
                        influxd.url, f"preencoded{run}", batches, points, base
                    ),
                }
                order = list(contenders) if run % 2 == 0 else list(reversed(contenders))
                for name in order:
                    seconds[name].append(await _timed(contenders[name]))
            for run in range(runs):
                for db in (f"writer{run}", f"baseline{run}", f"preencoded{run}"):
                    stored = _stored(influxd, db)
                    if stored != len(messages):
                        raise RuntimeError(f"{db} holds {stored} telemetry points, not {len(messages)}")
        finally:
            influxd.stop()
    rate = {name: total / statistics.median(values) for name, values in seconds.items()}
    return {
        "figure": round(rate["writer"]),
        "baseline": round(rate["baseline_preencoded"]),
        "ratio": round(rate["writer"] / rate["baseline_preencoded"], 3),
        "target": 0.8,
        "unit": "points/s",
        "benchmark": "influx_writer",
        "baseline_encoding_in_loop": round(rate["baseline"]),
        "ratio_vs_encoding_in_loop": round(rate["writer"] / rate["baseline"], 3),
        "encode_only_fast": round(total / encode_s),
        "points": total,
        "batch_size": base.batch_size,
        "gzip": gzip_on,
        "runs": runs,
        "writer_requests": requests,
        "baseline_requests": len(batches) + 1,
        "seconds": {name: [round(v, 3) for v in values] for name, values in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--samples", type=int, default=1000, help="telemetry samples per device")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args.devices, args.samples, args.runs, not args.no_gzip))))


if __name__ == "__main__":
    main()
