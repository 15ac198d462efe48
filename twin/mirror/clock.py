"""Whose clock a time threshold runs on.

A real pump's thresholds run on the twin's wall clock: its read-outs come at clinic visits, and
"overdue" means overdue in the clinic's time. A *simulated* pump runs on the simulation's clock,
which may go 600 or 3,600 times faster than the wall, or stand still while an instructor pauses a
session. So that a live session does what the headless run of the same scenario does, the twin
runs a simulated pump's thresholds (silence, forecasts) on simulated time:

* **thresholds** run on the site's *watermark*: the latest simulated time the twin has heard from
  the site, in its :class:`~twin.contract.messages.SimClock` messages and in the device time of
  every message of its pumps (:func:`advance`). It never runs ahead of what the simulation
  published, stands still while a session is paused or the simulation has stopped, and is the
  same whether the simulation runs at 1x or 600x: a pump silent for six simulated hours is silent
  when the site's other messages say six hours have passed, not when the wall clock guesses so.
  The twin re-evaluates a site's pumps when its watermark passes their next deadline
  (:func:`twin.mirror.alerts.next_change`), and the transitions are made by the step (message)
  that moved the watermark;
* **displays** (the console's "report age", the device page's clock) run the site clock on at its
  speed from the latest clock message (:func:`device_time`, :func:`device_rate`), or from the
  pump's own reports at its estimated clock rate.

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


def advance(watermark: datetime | None, heard: datetime) -> datetime:
    """A site's watermark once ``heard`` (a device time or a clock message's time) was heard."""
    return heard if watermark is None or heard > watermark else watermark


def threshold_time(twin: DeviceTwin, watermark: datetime | None, wall: datetime) -> datetime | None:
    """The device time ``twin``'s time thresholds are evaluated at: its site's watermark for a
    simulated pump (its own last device time if the site has none yet), the twin's estimate of
    the pump's clock for a real one."""
    if twin.simulated is not False:
        if watermark is None:
            return twin.last_device_time
        if twin.last_device_time is not None and twin.last_device_time > watermark:
            return twin.last_device_time
        return watermark
    return twin.device_now(wall)


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
