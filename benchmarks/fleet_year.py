"""A fleet-year without I/O: 100,000 pumps through 365 simulated days with the clinic and the faults
on (refills booked from the predicted date, ERI replacements, catheter revisions, dose adjustments,
the hazards at their published rates), every contract message produced but none published (the
sink counts them). Against a naive one-minute-step SimPy model of the same pumps, in the same run.

The fleet is generated once, then split across worker processes (``--workers``, default one per
core): worker ``i`` of ``n`` simulates pumps ``i, i + n, i + 2n, ...`` of the fleet. Every random
stream of the simulation is seeded by the fleet's seed and the pump's device id (its pump, its
clinic, its hazards), and pumps do not interact, so a pump's messages are the same whether it runs
alone, in a partition or in the whole fleet (tests/core/test_fleet_partition.py): the union of the
partitions is the fleet's run. For the same reason a worker simulates its share ``--chunk`` pumps
at a time (default 25; 0: its whole share on one environment), each chunk on its own environment
for the whole period, one chunk after another, every pump's messages the same: the pumps' state
then stays in the caches instead of being spread over gigabytes that every event misses (at 6,000
pumps, 2026-12-02: about 0.87 CPU ms a pump-year in chunks of 3 to 25, 0.96 in chunks of 200, 1.10
to 1.16 in chunks of 2,000; a whole 50,000-pump share on one environment cost about twice as much a
pump as 3,000 do). A finished chunk is freed (its cycles broken: the collector is off). Workers are forked from the process that built the fleet; the fleet
is frozen out of the cyclic collector (``gc.freeze()``) before the fork, and each worker freezes what
it built before it runs. The cyclic collector is off while the fleet is generated and while a worker
builds and runs its pumps (``--gc tuned``): nothing the simulation makes is cyclic garbage (the peak
RSS is the same with it on, ``--gc default``), but with 10,000 pumps' long-lived state a single
young-generation pass costs tens of milliseconds: with the default settings, 10,000 pumps in one
process spent 20 of 44 CPU seconds in the collector (measured early on this branch), and raised
thresholds still left a fifth.

The naive model costs the same per step whatever the fleet does, so it is timed on the first
``--naive-pumps`` pumps for ``--naive-days`` and scaled linearly to the fleet and the year (stated
in the output); running it for the whole fleet-year would take days.

``--gc default`` runs without the collector settings and ``--workers 1`` in one process: with both,
the harness is the one main had (a same-run "before" on an older tree:
``PYTHONPATH=<old tree> python benchmarks/fleet_year.py --workers 1 --gc default --pumps 10000``).

    python -m benchmarks.fleet_year [--pumps 100000] [--days 365] [--workers N] [--chunk 25] [--naive-days 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

import simpy

from twin.contract.topics import Channel
from twin.pump.model import UNUSABLE_RESIDUAL_ML
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import PumpSpec, default_epoch, generate_fleet
from twin.sim.reference import SteppedPump, stepped_process
from twin.sim.simulation import FleetSimulation

DAY = 86_400.0
TARGET_S = 60.0
DEFAULT_CHUNK = 25


@dataclass
class Part:
    """What one worker did: its pumps, the messages by channel, the clinic's refills and tally."""

    pumps: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    tally: Counter[str] = field(default_factory=Counter)
    refills: int = 0
    build_s: float = 0.0
    run_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_mb: float = 0.0

    def add(self, other: Part) -> None:
        self.pumps += other.pumps
        self.messages.update(other.messages)
        self.tally.update(other.tally)
        self.refills += other.refills
        self.build_s = max(self.build_s, other.build_s)
        self.run_s = max(self.run_s, other.run_s)
        self.cpu_s += other.cpu_s
        self.max_rss_mb = max(self.max_rss_mb, other.max_rss_mb)


def partition(specs: list[PumpSpec], index: int, parts: int) -> list[PumpSpec]:
    """Worker ``index``'s share of the fleet: every ``parts``-th pump from the ``index``-th."""
    return specs[index::parts]


def simulate(specs: list[PumpSpec], days: float, seed: int, *, tuned_gc: bool = True, chunk: int | None = None) -> Part:
    """Simulate ``specs`` for ``days`` with the clinic and the faults on, counting the messages:
    ``chunk`` pumps at a time (consecutive slices of ``specs``, each on its own environment, one
    after the other; all of them at once without it)."""
    cpu = time.process_time()
    if tuned_gc:
        gc.freeze()  # what exists already (the fleet's specs) is long-lived
        gc.disable()  # see the module docstring: the simulation makes no cyclic garbage
    part = Part(pumps=len(specs))
    messages: Counter[Channel] = Counter()

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        messages[outgoing.channel] += 1

    size = chunk if chunk and chunk > 0 else max(1, len(specs))
    for first in range(0, len(specs), size):
        begun = time.perf_counter()
        sim = FleetSimulation(
            specs[first : first + size],
            epoch=default_epoch(),
            seed=seed,
            sink=sink,
            telemetry_interval_s=None,
            clinic_refills=True,
            random_faults=True,
        )
        sim.open_sessions(1)
        if tuned_gc:
            gc.freeze()  # the fleet as built: long-lived, never garbage
        built = time.perf_counter()
        sim.run(days * DAY)
        part.run_s += time.perf_counter() - built
        part.build_s += built - begun
        part.tally.update(sim.tally)
        part.refills += sim.refills_done
        _release(sim)
    part.messages = Counter({channel.value: n for channel, n in messages.items()})
    part.cpu_s = time.process_time() - cpu
    part.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if tuned_gc:
        # everything made since the last freeze is young: frozen first, re-enabling the collector
        # does not make its next young pass walk all of it (over a second at 10,000 pumps)
        gc.freeze()
        gc.enable()
    return part


def _release(sim: FleetSimulation) -> None:
    """Free a finished chunk by reference counting, the collector being off: its cycles broken
    (the events still queued hold the simulation's methods; each device's alarm hook is one)."""
    sim.env._queue.clear()
    for device in sim.devices.values():
        device.on_alarm = None
    sim.observers.clear()


_FLEET: list[PumpSpec] = []  # the fleet, inherited by forked workers


def _worker(args: tuple[int, int, float, int, bool, int | None]) -> Part:
    index, parts, days, seed, tuned_gc, chunk = args
    return simulate(partition(_FLEET, index, parts), days, seed, tuned_gc=tuned_gc, chunk=chunk)


def event_driven(
    pumps: int, days: float, seed: int, workers: int, *, tuned_gc: bool = True, chunk: int | None = None
) -> tuple[Part, float]:
    """The fleet-year over ``workers`` processes: (what they did together, generating the fleet's CPU seconds)."""
    cpu = time.process_time()
    if tuned_gc:
        gc.disable()
    _FLEET[:] = generate_fleet(pumps, seed=seed, start=default_epoch())
    if tuned_gc:
        gc.enable()
    generate_cpu = time.process_time() - cpu
    total = Part()
    if workers == 1:
        total.add(simulate(_FLEET, days, seed, tuned_gc=tuned_gc, chunk=chunk))
        return total, generate_cpu
    if tuned_gc:
        gc.freeze()  # forked workers then leave the fleet's pages (and gc headers) alone
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for part in pool.imap_unordered(_worker, [(i, workers, days, seed, tuned_gc, chunk) for i in range(workers)]):
            total.add(part)
    return total, generate_cpu


def naive(pumps: int, days: float, seed: int) -> float:
    """Wall seconds of the naive one-minute-step model of the fleet's first ``pumps`` pumps."""
    specs = generate_fleet(pumps, seed=seed, start=default_epoch())
    started = time.perf_counter()
    env = simpy.Environment()
    for spec in specs:
        model = SteppedPump(
            program=spec.program,
            reservoir_ml=spec.reservoir_ml,
            low_threshold_ml=spec.low_reservoir_threshold_ml,
            unusable_residual_ml=UNUSABLE_RESIDUAL_ML,
            battery_percent=spec.battery_percent,
            capacity_ml=spec.reservoir_capacity_ml,
        )
        env.process(stepped_process(env, model, 60.0, refill_on_low=True))
    env.run(until=days * DAY)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--gc", choices=("tuned", "default"), default="tuned")
    parser.add_argument("--naive-pumps", type=int, default=1000)
    parser.add_argument("--naive-days", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_CHUNK,
        help="pumps a worker simulates at a time (0: its whole share at once)",
    )
    args = parser.parse_args()
    tuned = args.gc == "tuned"

    load = os.getloadavg()
    started = time.perf_counter()
    total, generate_cpu = event_driven(args.pumps, args.days, args.seed, args.workers, tuned_gc=tuned, chunk=args.chunk)
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = generate_cpu + (total.cpu_s if args.workers == 1 else children.ru_utime + children.ru_stime)
    pump_years = args.pumps * args.days / 365.0
    print(
        f"event-driven: {args.pumps:,} pumps x {args.days:g} days on {args.workers} worker(s) in {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU ({1000 * cpu / pump_years:.2f} CPU ms a pump-year; fleet generated in "
        f"{generate_cpu:.1f} s; slowest worker built in {total.build_s:.1f} s, ran in {total.run_s:.1f} s); "
        f"{total.refills:,} refills, messages {dict(total.messages)}; peak RSS of a worker "
        f"{total.max_rss_mb:,.0f} MB; load average before {load[0]:.2f}"
    )
    naive_wall = naive(min(args.naive_pumps, args.pumps), args.naive_days, args.seed)
    scale = (args.pumps / min(args.naive_pumps, args.pumps)) * (args.days / args.naive_days)
    naive_fleet_year = naive_wall * scale
    print(
        f"naive one-minute steps: {min(args.naive_pumps, args.pumps):,} pumps x {args.naive_days:g} days in "
        f"{naive_wall:.2f} s -> {naive_fleet_year:,.0f} s for the fleet-year (scaled x{scale:,.0f}, one process)"
    )
    print(
        json.dumps(
            {
                "benchmark": "fleet_year",
                "pumps": args.pumps,
                "days": args.days,
                "workers": args.workers,
                "gc": args.gc,
                "figure": {"name": "event-driven wall seconds", "value": round(wall, 2)},
                "cpu_s": round(cpu, 2),
                "cpu_ms_per_pump_year": round(1000 * cpu / pump_years, 3),
                "baseline": {
                    "name": "naive one-minute-step SimPy wall seconds, one process (scaled from a measured run "
                    f"of {min(args.naive_pumps, args.pumps)} pumps x {args.naive_days:g} days)",
                    "value": round(naive_fleet_year, 1),
                },
                "ratio": round(naive_fleet_year / wall, 1),
                "ratio_meaning": "times faster than the naive model",
                "target_s": TARGET_S,
                "refills": total.refills,
                "worker_max_rss_mb": round(total.max_rss_mb),
                "messages": dict(total.messages),
                "load_average_before": round(load[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
