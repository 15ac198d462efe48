"""Every pump's messages, byte for byte, against a pinned reference.

The simulator's fast paths (states made without validation, memoised next events, callbacks in
place of SimPy processes, ...) must not change a single byte any pump publishes, nor when it
publishes it, nor what the clinic does. Each case below runs a fleet with the simulation's own
code and digests, per device, every message (its simulation time, channel and JSON, in order) and
every clinic event; the digests of all devices are digested in device order. The pinned values
were computed at 206b748 (before the fleet-year work of branch ``fy``) with this same file:

    PYTHONPATH=<tree> python -m tests.core.test_fleet_digest            # print every case's digest
    PYTHONPATH=<tree> python -m tests.core.test_fleet_digest 2000 1 5 faults --dump /tmp/a.txt

(the second form: any fleet, with each device's digest written to a file, to find which pump
differs between two trees).
"""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from dataclasses import dataclass

import pytest

from twin.sim.clinic import SECONDS_PER_YEAR
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import default_epoch, generate_fleet
from twin.sim.simulation import FleetSimulation


@dataclass(frozen=True)
class Case:
    pumps: int
    years: float
    seed: int
    faults: bool
    telemetry_s: float | None = None


def device_digests(case: Case) -> tuple[dict[str, str], int]:
    """Each device's digest of its messages and clinic events, and the number of messages."""
    hashes: dict[str, hashlib._Hash] = defaultdict(hashlib.sha256)
    count = 0

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        nonlocal count
        count += 1
        line = f"{t!r}\t{outgoing.channel.value}\t{outgoing.message.model_dump_json()}\n"
        hashes[device.device_id].update(line.encode())

    specs = generate_fleet(case.pumps, seed=case.seed, start=default_epoch())
    sim = FleetSimulation(
        specs,
        epoch=default_epoch(),
        seed=case.seed,
        sink=sink,
        telemetry_interval_s=case.telemetry_s,
        clinic_refills=True,
        random_faults=case.faults,
        record_events=True,
    )
    sim.open_sessions(1)
    sim.run(case.years * SECONDS_PER_YEAR)
    assert sim.events is not None
    for event in sim.events:
        hashes[event.device_id].update(f"event\t{event!r}\n".encode())
    tally = ",".join(f"{k}={v}" for k, v in sorted(sim.tally.items()))
    hashes["~tally"].update(f"{tally};refills={sim.refills_done}".encode())
    return {device: h.hexdigest() for device, h in hashes.items()}, count


def fleet_digest(case: Case) -> tuple[str, int]:
    per_device, count = device_digests(case)
    whole = hashlib.sha256("".join(f"{d}:{h}\n" for d, h in sorted(per_device.items())).encode())
    return whole.hexdigest(), count


CASES: dict[str, tuple[Case, str, int]] = {
    # the benchmark's own fleet (seed 1), a year with the clinic and the faults
    "benchmark_fleet_year": (
        Case(2000, 1.0, 1, True),
        "ff3fe0d0a38c236205565717a59d947d2007941a9439fcf37de44d06291723be",
        30103,
    ),
    # pumps through battery ERI / EOS, replacements and repeated revisions
    "decade_with_faults": (
        Case(300, 10.0, 5, True),
        "3500dd2ad904551906533411ebaafb62a4573d731865acf189a51d1b6e550b02",
        40203,
    ),
    # the clinic alone
    "year_without_faults": (
        Case(1000, 1.0, 7, False),
        "117ff7b389ef54e8e7c56c6aaac1bd129549a29a33b8f580e27c7659ad985f2c",
        14910,
    ),
    # hourly telemetry beside everything else (radio losses hold it)
    "telemetry_hourly": (
        Case(30, 0.1, 3, True, 3600.0),
        "74005111dc9217d8dc06bea26a6f77ca00c8ee05ba017f4d1c2806fe5664d08c",
        26429,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_pumps_messages_are_the_pinned_reference(name: str) -> None:
    case, expected, expected_count = CASES[name]
    digest, count = fleet_digest(case)
    assert (digest, count) == (expected, expected_count), name


def _main(argv: list[str]) -> None:
    if not argv:
        for name, (case, _, _) in sorted(CASES.items()):
            digest, count = fleet_digest(case)
            print(f"{name}: {digest} {count}")
        return
    dump = None
    if "--dump" in argv:
        i = argv.index("--dump")
        dump = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    pumps, years, seed = int(argv[0]), float(argv[1]), int(argv[2])
    faults = len(argv) > 3 and argv[3] == "faults"
    telemetry = float(argv[4]) if len(argv) > 4 else None
    case = Case(pumps, years, seed, faults, telemetry)
    per_device, count = device_digests(case)
    whole = hashlib.sha256("".join(f"{d}:{h}\n" for d, h in sorted(per_device.items())).encode())
    print(f"{case}: {whole.hexdigest()} {count}")
    if dump:
        with open(dump, "w") as f:
            f.writelines(f"{d}:{h}\n" for d, h in sorted(per_device.items()))


if __name__ == "__main__":
    _main(sys.argv[1:])
