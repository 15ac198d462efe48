"""What a simulator run is, decided before anything starts: :class:`SimPlan` (the fleet, the seed,
the epoch, the speed, the duration, the telemetry interval, clinic and faults). Reads a fleet file
when one is given; runs nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from twin.sim.fleet import PumpSpec, generate_fleet
from twin.sim.fleet_file import load_fleet_file
from twin.sim.simulation import FleetSimulation

WALL_TELEMETRY_INTERVAL_S: Final = 10.0
"""Default telemetry interval in wall-clock seconds: each pump samples every 10 s of real time,
whatever the speed (so 60x samples every 10 simulated minutes)."""

FLAT_OUT_TELEMETRY_INTERVAL_S: Final = 600.0
"""Default simulated interval when running as fast as possible (backfill): 10 minutes."""


@dataclass(frozen=True)
class SimPlan:
    """Everything a simulator run needs, decided before anything starts."""

    specs: list[PumpSpec]
    seed: int
    epoch: datetime
    speed: float | None
    duration_s: float | None
    telemetry_every_s: float
    random_faults: bool
    clinic: bool

    @classmethod
    def build(
        cls,
        *,
        pumps: int,
        fleet_file: Path | None,
        sites: list[str] | None = None,
        seed: int,
        speed: float | None,
        duration_s: float | None,
        start: datetime | None,
        telemetry_every_s: float | None,
        random_faults: bool,
        clinic: bool,
        now: datetime | None = None,
    ) -> SimPlan:
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        fleet = load_fleet_file(fleet_file) if fleet_file else None
        if start is None and fleet is not None and fleet.start is not None:
            start = fleet.start
        if start is None:
            start = now - timedelta(seconds=duration_s) if (speed is None and duration_s) else now
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        specs = fleet.pumps if fleet is not None else generate_fleet(pumps, seed=seed, start=start, sites=sites)
        if telemetry_every_s is None:
            telemetry_every_s = FLAT_OUT_TELEMETRY_INTERVAL_S if speed is None else WALL_TELEMETRY_INTERVAL_S * speed
        return cls(specs, seed, start, speed, duration_s, telemetry_every_s, random_faults, clinic)

    def simulation(self) -> FleetSimulation:
        return FleetSimulation(
            self.specs,
            epoch=self.epoch,
            seed=self.seed,
            sink=lambda device, outgoing, t: None,  # replaced by the driver
            telemetry_interval_s=self.telemetry_every_s,
            clinic_refills=self.clinic,
            random_faults=self.random_faults,
        )
