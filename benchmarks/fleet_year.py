"""A fleet-year without I/O: 1,000 pumps through 365 simulated days, each refilled when its
low-reservoir alarm fires, event-driven (twin.sim) against a naive one-minute-step SimPy model
of the same fleet, in the same process.

The naive model costs the same per step whatever the fleet does, so it is timed on the same
1,000 pumps for a few simulated days and scaled to the year (stated in the output); running it
for the whole year would take most of an hour.

    python -m benchmarks.fleet_year [--pumps 1000] [--days 365] [--naive-days 2]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import simpy

from twin.pump.model import UNUSABLE_RESIDUAL_ML
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import default_epoch, generate_fleet
from twin.sim.reference import SteppedPump, stepped_process
from twin.sim.simulation import FleetSimulation

DAY = 86_400.0


def event_driven(pumps: int, days: float, seed: int) -> tuple[float, Counter[str], int]:
    epoch = default_epoch()
    specs = generate_fleet(pumps, seed=seed, start=epoch)
    counts: Counter[str] = Counter()

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        counts[outgoing.channel.value] += 1

    started = time.perf_counter()
    sim = FleetSimulation(specs, epoch=epoch, seed=seed, sink=sink, telemetry_interval_s=None, clinic_refills=True)
    sim.open_sessions(1)
    sim.run(days * DAY)
    return time.perf_counter() - started, counts, sim.refills_done


def naive(pumps: int, days: float, seed: int) -> tuple[float, int]:
    specs = generate_fleet(pumps, seed=seed, start=default_epoch())
    started = time.perf_counter()
    env = simpy.Environment()
    models = []
    for spec in specs:
        model = SteppedPump(
            program=spec.program,
            reservoir_ml=spec.reservoir_ml,
            low_threshold_ml=spec.low_reservoir_threshold_ml,
            unusable_residual_ml=UNUSABLE_RESIDUAL_ML,
            battery_percent=spec.battery_percent,
            capacity_ml=spec.reservoir_capacity_ml,
        )
        models.append(model)
        env.process(stepped_process(env, model, 60.0, refill_on_low=True))
    env.run(until=days * DAY)
    return time.perf_counter() - started, sum(len(m.log) for m in models)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=1000)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--naive-days", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    wall, counts, refills = event_driven(args.pumps, args.days, args.seed)
    print(
        f"event-driven: {args.pumps} pumps x {args.days:g} days in {wall:.2f} s "
        f"({refills} refills, messages {dict(counts)})"
    )
    naive_wall, _ = naive(args.pumps, args.naive_days, args.seed)
    naive_year = naive_wall * args.days / args.naive_days
    print(
        f"naive one-minute steps: {args.pumps} pumps x {args.naive_days:g} days in {naive_wall:.2f} s "
        f"-> {naive_year:.0f} s for {args.days:g} days (scaled)"
    )
    print(
        json.dumps(
            {
                "benchmark": "fleet_year",
                "pumps": args.pumps,
                "days": args.days,
                "figure": {"name": "event-driven wall seconds", "value": round(wall, 3)},
                "baseline": {
                    "name": "naive one-minute-step SimPy wall seconds (scaled from a measured run of "
                    f"{args.naive_days:g} days)",
                    "value": round(naive_year, 1),
                },
                "ratio": round(naive_year / wall, 1),
                "ratio_meaning": "times faster than the naive model",
                "target_s": 10.0,
                "refills": refills,
            }
        )
    )


if __name__ == "__main__":
    main()
