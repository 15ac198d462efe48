"""A fleet's worth of points for writer tests and drills: device ``d`` sends its ``n``-th sample with seq ``n``.

Run as a program it is the twin stand-in of the crash drill: it writes rounds of telemetry through
an :class:`~twin.influx.InfluxWriter`, prints ``flushed <round>`` once a round is on disk, and
then waits to be killed::

    python -m tests.harness.influx_fleet <url or -> <spool_dir> <devices> <rounds>
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from twin.contract import examples
from twin.contract.messages import Drug, Telemetry
from twin.influx.writer import InfluxWriter
from twin.settings import InfluxSettings
from twin.timeseries.points import DeviceTags, InfluxPoint, telemetry_point

SITE = "drill-site"
START = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLE_PERIOD = timedelta(minutes=5)


def device_tags(device: int) -> DeviceTags:
    return DeviceTags(SITE, f"pump-{device:03d}", "SynchroMed II 8637-20", simulated=True, drug=Drug.MORPHINE)


def sample(device: int, seq: int) -> InfluxPoint:
    """The telemetry point of :func:`sample_message`."""
    return telemetry_point(device_tags(device), sample_message(device, seq))


def sample_message(device: int, seq: int) -> Telemetry:
    """Telemetry of ``device`` with sequence number ``seq``, ``seq`` sample periods after :data:`START`."""
    base = examples.telemetry()
    return base.model_copy(
        update={
            "device_id": f"pump-{device:03d}",
            "seq": seq,
            "session": 1,
            "device_time": START + seq * SAMPLE_PERIOD,
            "reservoir_ml": max(0.0, 20.0 - seq * 0.001),
        }
    )


def fleet_round(devices: int, seq: int) -> list[InfluxPoint]:
    return [sample(device, seq) for device in range(devices)]


async def _run(url: str | None, spool_dir: Path, devices: int, rounds: int) -> None:
    settings = InfluxSettings(
        url=url,
        spool_dir=spool_dir,
        batch_size=200,
        flush_interval_s=0.05,
        retry_initial_s=0.05,
        retry_max_s=0.5,
        timeout_s=5.0,
    )
    async with InfluxWriter(settings) as writer:
        for seq in range(rounds):
            writer.submit(fleet_round(devices, seq))
            await writer.flush()
            print(f"flushed {seq}", flush=True)
            await asyncio.sleep(0.005)
        print("done", flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    url_arg, spool_arg, devices_arg, rounds_arg = sys.argv[1:5]
    asyncio.run(_run(None if url_arg == "-" else url_arg, Path(spool_arg), int(devices_arg), int(rounds_arg)))
