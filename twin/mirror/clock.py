"""Whose clock a time threshold runs on.

A real pump's thresholds run on the twin's wall clock: its read-outs come at clinic visits, and
"overdue" means overdue in the clinic's time. A *simulated* pump runs on the simulation's clock,
which may go 600 or 3,600 times faster than the wall, or stand still while an instructor pauses a
session. So that a live session does what the headless run of the same scenario does, the twin
runs a simulated pump's thresholds (silence, forecasts) on simulated time:

* from its site's :class:`~twin.contract.messages.SimClock` message when the simulator publishes
  one (exact, and it knows about pauses and changes of speed);
* otherwise from the pump's own reports: its last device time advanced at its estimated clock rate.

Pure: wall time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from twin.contract.messages import SimClock
from twin.mirror.device_twin import DeviceTwin


@dataclass(frozen=True, slots=True)
class SiteClock:
    """A simulation's clock at one site, as its latest clock message said, and when that arrived."""

    sim_time: datetime
    speed: float | None  # simulated seconds per wall second; 0 paused; None as fast as possible
    received_at: datetime  # the twin's wall time at receipt
    run: str
    seq: int

    def now(self, wall: datetime) -> datetime:
        """The simulation's time at wall time ``wall`` (held still when paused or when running
        flat out, where only the next message knows how far it got)."""
        if not self.speed:
            return self.sim_time
        elapsed = max(0.0, (wall - self.received_at).total_seconds())
        return self.sim_time + timedelta(seconds=elapsed * self.speed)


def site_clock(message: SimClock, received_at: datetime) -> SiteClock:
    return SiteClock(message.sim_time, message.speed, received_at, message.run, message.seq)


def newer(current: SiteClock | None, message: SimClock) -> bool:
    """Does ``message`` supersede ``current`` (a new run, or a later message of the same run)?"""
    if current is None or current.run != message.run:
        return True
    return message.seq > current.seq


def device_time(twin: DeviceTwin, clock: SiteClock | None, wall: datetime) -> datetime | None:
    """What ``twin``'s device clock reads at ``wall``: the site's simulation clock for a simulated
    pump with one, else the twin's estimate from the pump's own reports (None if never heard)."""
    if clock is not None and twin.simulated is not False:
        return clock.now(wall)
    return twin.device_now(wall)


def device_rate(twin: DeviceTwin, clock: SiteClock | None) -> float:
    """How fast :func:`device_time` runs on: device seconds per wall second (so that a console can
    run the pump's clock on between two readings). A site clock's speed (0 when paused or when
    running flat out: :meth:`SiteClock.now` holds still then), else the rate estimated from the
    pump's reports."""
    if clock is not None and twin.simulated is not False:
        return clock.speed or 0.0
    return twin.clock_rate
