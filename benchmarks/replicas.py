"""Twin replicas on this machine: ingest with 1, 2 and 3 replicas (the ratio to one), and the time
from a replica's death to its partitions being served again.

Real processes on real servers: a PostgreSQL 15 of its own (``fsync`` on), a Mosquitto of its own,
``pumptwin serve --database-url`` replicas (``tests/harness/replicas.py``), 16 partitions.

**Ingest** (as ``benchmarks/twin_ingest.py`` does it, so the publisher is out of the
measurement): the replicas start and settle (each partition served by the replica rendezvous
hashing gives it to, its persistent session subscribed), then all are paused (SIGSTOP: their
connections stay, the broker queues what they do not read); a recorded fleet's stream (births,
states, alarms and mostly telemetry, everything at QoS 1 so the broker queues it) is published;
then they are resumed and drain the queues. The lease TTL of these runs (``--ingest-ttl``) is
long enough that the pause costs no lease. Measured: the sum of the replicas' ``messages_in``
(their ``/healthz``), polled every 0.1 s, from 10 % to 90 % of the stream (the tail of the
busiest partition is outside the window); the whole drain is reported beside it. Every message
must arrive (nothing is shed at these backlogs). The partitions are not equal: a replica's share
is the sites rendezvous hashing gives it, so the busiest replica sets the pace.

**Take-over**: three replicas serving, one is killed (SIGKILL) or stopped (SIGTERM, a hand-over);
the time until every partition is served again (leased, loaded, its session connected), as the
survivors' ``/healthz`` say (polled every 0.1 s), for the lease TTL given (``--ttl``).

    python -m benchmarks.replicas [--pumps 300] [--messages 15000] [--ttl 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.twin_ingest import _publish, recorded_stream
from tests.harness.postgres import Postgres, running
from tests.harness.replicas import Replica, prepare_database
from tests.harness.servers import Mosquitto
from twin.cluster.partitions import partition_of

PARTITIONS = 16
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """CPU time (user + system) of ``pid`` from /proc; ``with_children``: and of its children, live
    (from their own stat) and reaped (``cutime``/``cstime``: PostgreSQL's ended backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = int(fields[11]) + int(fields[12])
    if with_children:
        total += int(fields[13]) + int(fields[14])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    child = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if int(child[1]) == pid:
                    total += int(child[11]) + int(child[12])
    return total / TICKS


async def _health(replicas: list[Replica]) -> list[dict[str, object]]:
    async def one(r: Replica) -> dict[str, object]:
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                body: dict[str, object] = (await client.get(r.url + "/healthz")).json()
                return body
        except httpx.HTTPError:
            return {}

    return list(await asyncio.gather(*(one(r) for r in replicas)))


async def _serving_all(replicas: list[Replica], needed: set[int]) -> bool:
    serving: list[int] = []
    for body in await _health(replicas):
        serving += [int(p) for p in body.get("serving", [])]  # type: ignore[attr-defined]
    return len(serving) == len(set(serving)) and set(serving) >= needed


async def _wait_serving(replicas: list[Replica], needed: set[int], timeout_s: float = 60.0) -> float:
    started = time.perf_counter()
    while not await _serving_all(replicas, needed):
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"partitions not served: {[r.tail(5) for r in replicas]}")
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


def _replicas(n: int, work: Path, url: str, mqtt: str, sites: list[str], ttl: float, tag: str) -> list[Replica]:
    return [Replica(f"{tag}-{i}", work, url, mqtt, ttl_s=ttl, partitions=PARTITIONS, sites=sites) for i in range(n)]


async def _settled(replicas: list[Replica], needed: set[int], timeout_s: float = 120.0) -> None:
    """Until every partition with sites is served, by the replica rendezvous hashing gives it to."""
    from twin.cluster.partitions import owner_of

    names = [r.name for r in replicas]
    started = time.perf_counter()
    while True:
        bodies = await _health(replicas)
        serving = {r.name: set(b.get("serving", [])) for r, b in zip(replicas, bodies, strict=True)}  # type: ignore[call-overload]
        if all(p in serving[owner_of(p, names) or ""] for p in needed):
            return
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"not settled: {serving}")
        await asyncio.sleep(0.2)


async def ingest(
    n: int, pg: Postgres, stream: list[tuple[str, bytes, int]], sites: list[str], ttl: float
) -> dict[str, float]:
    needed = {partition_of(s, PARTITIONS) for s in sites}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = pg.create_database(f"bench_ingest_{n}_{int(time.time())}")
        await prepare_database(url)
        (work / "broker").mkdir()
        broker = Mosquitto(workdir=work / "broker", extra_config="max_queued_messages 1000000")
        broker.start()
        replicas = _replicas(n, work, url, broker.url, sites, ttl, "r")
        try:
            for r in replicas:
                r.start()
            for r in replicas:
                await asyncio.to_thread(r.wait_ready)
            await _settled(replicas, needed)
            for r in replicas:
                r.pause()  # the sessions stay connected; the broker queues what they do not read
            published = time.perf_counter()
            await _publish(broker.url, stream)
            paused_s = time.perf_counter() - published
            if paused_s > ttl / 4:  # leases are renewed with 0.47 TTL or more left and dropped at 0.2 TTL
                raise RuntimeError(f"publishing took {paused_s:.1f} s: raise --ingest-ttl (leases would run out)")

            def cpu() -> dict[str, float]:
                assert broker.process is not None
                assert pg.process is not None
                return {
                    "replicas": sum(cpu_seconds(r.process.pid) for r in replicas if r.process is not None),
                    "broker": cpu_seconds(broker.process.pid),
                    "postgres": cpu_seconds(pg.process.pid, with_children=True),
                }

            cpu_before = cpu()
            started = time.perf_counter()
            for r in replicas:
                r.resume()
            marks: dict[float, float] = {}
            total = len(stream)
            while True:
                bodies = await _health(replicas)
                counted = sum(int(b.get("messages_in", 0)) for b in bodies)  # type: ignore[call-overload]
                now = time.perf_counter() - started
                for share in (0.1, 0.9, 1.0):
                    if share not in marks and counted >= share * total:
                        marks[share] = now
                if 1.0 in marks:
                    cpu_after = cpu()
                    break
                if now > 600:
                    raise TimeoutError(f"drained {counted} of {total}")
                await asyncio.sleep(0.1)
        finally:
            for r in replicas:
                r.stop()
            broker.stop()
    window = marks[0.9] - marks[0.1]
    used = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
    return {
        "rate": 0.8 * total / window,
        "drain_s": marks[1.0],
        "window_s": window,
        "publish_s": paused_s,
        "per_replica_cpu_s": total / used["replicas"],
        "cpu_us_replicas": 1e6 * used["replicas"] / total,
        "cpu_us_broker": 1e6 * used["broker"] / total,
        "cpu_us_postgres": 1e6 * used["postgres"] / total,
    }


async def takeover(pg: Postgres, sites: list[str], ttl: float, runs: int) -> dict[str, list[float]]:
    needed = {partition_of(s, PARTITIONS) for s in sites}
    out: dict[str, list[float]] = {"kill": [], "term": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = pg.create_database(f"bench_takeover_{int(time.time())}")
        await prepare_database(url)
        (work / "broker").mkdir()
        broker = Mosquitto(workdir=work / "broker")
        broker.start()
        replicas = _replicas(3, work, url, broker.url, sites, ttl, "r")
        try:
            for r in replicas:
                r.start()
            for r in replicas:
                await asyncio.to_thread(r.wait_ready)
            for run in range(runs):
                for how in ("kill", "term"):
                    await _wait_serving(replicas, needed)
                    await asyncio.sleep(ttl)  # settled: every replica serves its rendezvous share
                    bodies = await _health(replicas)
                    victim = max(
                        range(3),
                        key=lambda i: len(set(bodies[i].get("serving", [])) & needed),  # type: ignore[call-overload]
                    )
                    others = [r for i, r in enumerate(replicas) if i != victim]
                    started = time.perf_counter()
                    if how == "kill":
                        replicas[victim].kill()
                    else:
                        replicas[victim].stop()
                    await _wait_serving(others, needed)
                    out[how].append(time.perf_counter() - started)
                    print(f"run {run + 1}: {how} -> served again after {out[how][-1]:.2f} s", flush=True)
                    replicas[victim] = Replica(
                        f"r{run}{how}", work, url, broker.url, ttl_s=ttl, partitions=PARTITIONS, sites=sites
                    )
                    replicas[victim].start()
                    await asyncio.to_thread(replicas[victim].wait_ready)
        finally:
            for r in replicas:
                r.stop()
            broker.stop()
    return out


async def main_async(args: argparse.Namespace) -> None:
    stream = recorded_stream(args.pumps, args.messages)
    sites = sorted({topic.split("/")[2] for topic, _, _ in stream})
    print(f"stream: {len(stream)} messages from {args.pumps} pumps over {len(sites)} sites", flush=True)
    with running(Postgres(fsync=True)) as pg:
        rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
        costs: dict[int, list[dict[str, float]]] = {1: [], 2: [], 3: []}
        for run in range(args.runs):
            for n in (1, 2, 3):
                figure = await ingest(n, pg, stream, sites, args.ingest_ttl)
                rates[n].append(figure["rate"])
                costs[n].append(figure)
                print(
                    f"run {run + 1}: {n} replica(s): {figure['rate']:,.0f} msg/s; CPU per message: replicas "
                    f"{figure['cpu_us_replicas']:.0f} us, broker {figure['cpu_us_broker']:.0f} us, PostgreSQL "
                    f"{figure['cpu_us_postgres']:.0f} us (10-90 % in "
                    f"{figure['window_s']:.1f} s; all drained {figure['drain_s']:.1f} s after resuming; "
                    f"published in {figure['publish_s']:.1f} s while they were paused)",
                    flush=True,
                )
        times = await takeover(pg, sites, args.ttl, args.runs)
    median = {n: statistics.median(r) for n, r in rates.items()}
    print(
        json.dumps(
            {
                "benchmark": "replicas",
                "figure": {
                    "name": "ingest with 1 / 2 / 3 replicas, messages/s",
                    "value": [round(median[n]) for n in (1, 2, 3)],
                },
                "baseline": {"name": "one replica, messages/s", "value": round(median[1])},
                "ratio": [round(median[n] / median[1], 2) for n in (1, 2, 3)],
                "rates": {str(n): [round(r) for r in rs] for n, rs in rates.items()},
                "cpu_us_per_message": {
                    str(n): {
                        part: round(statistics.median(c[f"cpu_us_{part}"] for c in cs))
                        for part in ("replicas", "broker", "postgres")
                    }
                    for n, cs in costs.items()
                },
                "takeover_s": {
                    "ttl_s": args.ttl,
                    "kill": [round(t, 2) for t in times["kill"]],
                    "term": [round(t, 2) for t in times["term"]],
                },
                "messages": len(stream),
                "runs": args.runs,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=300)
    parser.add_argument("--messages", type=int, default=15_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=3.0, help="lease TTL of the take-over runs, seconds")
    parser.add_argument("--ingest-ttl", type=float, default=90.0, help="lease TTL of the ingest runs, seconds")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
