"""Real-time capacity of the simulator: how many pumps, each publishing telemetry every 10 s over
its own MQTT connection, one core sustains at 1x with a lag under 1 s (p99 of publish time minus
due time, in the steady state after the first 10 s), against a real Mosquitto on the other core.
Each level gets a fresh broker.

Baseline, measured the same way in the same run: bare aiomqtt clients, one per pump, publishing a
pre-encoded telemetry payload on a plain asyncio timer (no SimPy, no model, no pydantic). The
ratio says how much of the client library's own capacity the simulator keeps.

    python -m benchmarks.sim_capacity [--seconds 30] [--levels 250,500,1000,2000,4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt

from tests.harness.servers import Mosquitto
from twin.contract import examples
from twin.contract.codec import encode
from twin.mqtt_endpoint import MqttEndpoint
from twin.sim.driver import SimDriver
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation

INTERVAL_S = 10.0
LAG_LIMIT_S = 1.0


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def simulator_lag(url: str, pumps: int, seconds: float) -> tuple[float, int]:
    epoch = datetime.now(UTC).replace(microsecond=0)
    sim = FleetSimulation(
        generate_fleet(pumps, seed=1, start=epoch),
        epoch=epoch,
        seed=1,
        sink=lambda *_: None,
        telemetry_interval_s=INTERVAL_S,
        clinic_refills=True,
    )
    driver = SimDriver(sim, MqttEndpoint.parse(url), speed=1.0, end_s=seconds)
    await driver.run()
    # steady state: samples due after the first interval (the start-up flood of births is excluded)
    return driver.stats.lag_percentile(0.99, after_s=INTERVAL_S), driver.stats.published["telemetry"]


async def bare_lag(url: str, pumps: int, seconds: float) -> tuple[float, int]:
    endpoint = MqttEndpoint.parse(url)
    payload = encode(examples.telemetry())
    lags: list[float] = []
    ready = asyncio.Event()
    connected = 0
    start_at: list[float] = []

    async def client(i: int) -> None:
        nonlocal connected
        async with aiomqtt.Client(endpoint.host, endpoint.port, identifier=f"bare-{i}") as c:
            connected += 1
            if connected == pumps:
                start_at.append(time.monotonic())
                ready.set()
            await ready.wait()
            due = start_at[0] + (i * 7.919) % INTERVAL_S
            end = start_at[0] + seconds
            while due < end:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await c.publish(f"bench/bare/{i}/telemetry", payload, qos=0)
                if due - start_at[0] >= INTERVAL_S:  # the same warm-up exclusion as the simulator's
                    lags.append(time.monotonic() - due)
                due += INTERVAL_S

    async with asyncio.TaskGroup() as tasks:
        for i in range(pumps):
            tasks.create_task(client(i))
    return _p(lags, 0.99), len(lags)


async def capacity(
    name: str, measure: Callable[[str, int, float], Awaitable[tuple[float, int]]], levels: list[int], seconds: float
) -> tuple[int, list[dict[str, float]]]:
    best, tried = 0, []
    for n in levels:
        with tempfile.TemporaryDirectory() as tmp:
            broker = Mosquitto(workdir=Path(tmp))
            broker.start()
            try:
                p99, published = await measure(broker.url, n, seconds)
            finally:
                broker.stop()
        ok = p99 < LAG_LIMIT_S
        tried.append({"pumps": n, "lag_p99_s": round(p99, 3), "telemetry": published, "ok": ok})
        print(f"{name}: {n} pumps -> telemetry lag p99 {p99:.3f} s ({published} samples) {'ok' if ok else 'too slow'}")
        if not ok:
            break
        best = n
    return best, tried


async def main_async(args: argparse.Namespace) -> None:
    levels = [int(x) for x in args.levels.split(",")]
    sim_best, sim_tried = await capacity("simulator", simulator_lag, levels, args.seconds)
    bare_best, bare_tried = await capacity("bare aiomqtt", bare_lag, levels, args.seconds)
    print(
        json.dumps(
            {
                "benchmark": "sim_capacity",
                "figure": {
                    "name": "simulated pumps sustained at 1x, telemetry every 10 s, lag p99 < 1 s",
                    "value": sim_best,
                },
                "baseline": {"name": "bare aiomqtt clients sustained the same way", "value": bare_best},
                "ratio": round(sim_best / bare_best, 2) if bare_best else None,
                "levels_tried": {"simulator": sim_tried, "bare": bare_tried},
                "note": "capacity is the largest level tried that met the limit; levels are coarse",
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--levels", default="250,500,1000,2000,3000,4000,6000")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
