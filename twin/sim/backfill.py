"""Backfill: months of pump history into InfluxDB in one go, so a new Grafana has data to show.

``pumptwin sim --speed max --duration 90d --influx-url http://...`` runs the fleet as fast as
possible with the twin *in the same process* (no broker: :class:`twin.service.inprocess.InProcessTwin`)
and writes everything the twin would write live — telemetry, state changes, device alarm events,
the alarm lifecycle, twin alerts, command outcomes — stamped with simulation time, through the
same :class:`twin.influx.writer.InfluxWriter` (batched, retried, spooled when InfluxDB is away).
The simulation waits for the writer when its backlog grows, so nothing is shed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rich.console import Console

from twin.influx.writer import InfluxWriter
from twin.service.inprocess import InProcessTwin
from twin.settings import InfluxSettings
from twin.sim.runner import SimPlan, simulated_progress, simulated_text
from twin.store.journal import Journal

SLICE_S: Final = 6 * 3600.0
"""Simulated time run between yields to the writer."""

MAX_BUFFERED_POINTS: Final = 200_000
"""Points waiting in the writer at which the simulation pauses until it catches up."""


@dataclass(frozen=True)
class BackfillResult:
    messages: int
    points_accepted: int
    points_written: int
    dead_lettered: int
    alarms_open: int
    wall_s: float
    drained: bool


async def backfill(plan: SimPlan, influx: InfluxSettings, *, console: Console, spool_dir: Path) -> BackfillResult:
    if plan.duration_s is None:
        raise ValueError("a backfill needs a duration")
    started = time.perf_counter()
    messages = 0

    def count(*_: object) -> None:
        nonlocal messages
        messages += 1

    with tempfile.TemporaryDirectory(prefix="pumptwin-backfill-") as scratch:
        async with InfluxWriter(influx, spool_dir) as writer:
            console.print(f"time series: {writer.describe()}")
            journal = Journal(Path(scratch) / "journal.sqlite")
            try:
                twin = InProcessTwin(plan.simulation(), journal, writer=writer, on_message=count)
                twin.open_sessions()
                end = plan.duration_s
                with simulated_progress(console) as progress:
                    task = progress.add_task("backfilling", total=end, simulated=simulated_text(0.0, end))
                    while twin.sim.now < end:
                        twin.run(min(end, twin.sim.now + SLICE_S))
                        progress.update(task, completed=twin.sim.now, simulated=simulated_text(twin.sim.now, end))
                        await asyncio.sleep(0)
                        while writer.stats.buffered > MAX_BUFFERED_POINTS:  # noqa: ASYNC110 - the writer offers no event to wait on; polling its counter every 50 ms costs nothing
                            await asyncio.sleep(0.05)
                    progress.update(task, description="writing")
                    drained = await writer.drain(600.0)
                stats = writer.stats
                alarms_open = len(twin.service.board.open())
            finally:
                journal.close()
    return BackfillResult(
        messages=messages,
        points_accepted=stats.accepted,
        points_written=stats.written,
        dead_lettered=stats.dead_lettered,
        alarms_open=alarms_open,
        wall_s=time.perf_counter() - started,
        drained=drained,
    )
