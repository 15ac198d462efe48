"""Alarm latency: from a device publishing an alarm event to the transition on the twin's live
stream, at 1,000 messages per second, p50 and p99.

A real Mosquitto, the twin as its own process (``pumptwin serve``, the production entry point),
and this process publishing a simulated fleet's recorded traffic (mostly telemetry, with the
alarm raises and clears the fleet produced) at a steady 1,000 messages/s over one connection,
while reading ``/api/stream`` as a signed-in viewer. Each alarm event is timed from just before
its publish to the arrival of the matching ``alarm`` event (same device, code and raise/clear) on
the stream.

Baseline, in the same run and for the same messages: a bare MQTT subscriber in this process, so
the broker round trip alone (publish -> broker -> subscriber).

    python -m benchmarks.alarm_latency [--rate 1000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path

import aiomqtt
import httpx

from benchmarks.twin_ingest import recorded_stream
from tests.harness.servers import Mosquitto
from twin.contract.topics import Channel, parse_topic, subscription

PASSWORD = "bench-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _alarm_key(topic: str, payload: bytes) -> tuple[str, str, str] | None:
    if not topic.endswith("/alarm"):
        return None
    body = json.loads(payload)
    return (parse_topic(topic).device_id, body["code"], "raise" if body["event"] == "raised" else "clear")


async def run(rate: float, seconds: float) -> dict[str, object]:
    count = int(rate * seconds)
    stream = recorded_stream(300, count)
    alarms_in_stream = sum(1 for t, p, _ in stream if _alarm_key(t, p))
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(workdir=Path(tmp) / "broker")
        (Path(tmp) / "broker").mkdir()
        broker.start()
        data_dir = Path(tmp) / "twin"
        port = _free_port()
        pumptwin = str(Path(sys.executable).with_name("pumptwin"))
        env = {**os.environ, "BENCH_PW": PASSWORD}
        subprocess.run(  # noqa: ASYNC221 - set-up before anything is measured; nothing else runs yet
            [
                pumptwin,
                "users",
                "add",
                "bench",
                "--role",
                "viewer",
                "--password-env",
                "BENCH_PW",
                "--data-dir",
                str(data_dir),
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        twin = subprocess.Popen(  # noqa: ASYNC220 - the twin must be its own process; starting it does not block
            [pumptwin, "serve", "--mqtt", broker.url, "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sent: dict[tuple[str, str, str], deque[float]] = defaultdict(deque)
        twin_latency: list[float] = []
        bare_latency: list[float] = []
        bare_sent: dict[tuple[str, str, str], deque[float]] = defaultdict(deque)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=None) as api:
                for _ in range(200):
                    with contextlib.suppress(httpx.TransportError):
                        if (await api.get("/healthz")).json().get("mqtt") == "connected":
                            break
                    await asyncio.sleep(0.1)
                login = await api.post("/api/login", json={"username": "bench", "password": PASSWORD})
                login.raise_for_status()
                ready = asyncio.Event()

                async def listen() -> None:
                    async with api.stream("GET", "/api/stream") as response:
                        event = None
                        async for line in response.aiter_lines():
                            if line.startswith("event:"):
                                event = line.split(":", 1)[1].strip()
                                if event == "hello":
                                    ready.set()
                            elif line.startswith("data:") and event == "alarm":
                                data = json.loads(line.split(":", 1)[1])
                                if data["actor"] != "device" or data["event"] not in ("raise", "reraise", "clear"):
                                    continue
                                key = (
                                    data["device_id"],
                                    data["code"],
                                    "clear" if data["event"] == "clear" else "raise",
                                )
                                if sent[key]:
                                    twin_latency.append(time.perf_counter() - sent[key].popleft())

                async def bare() -> None:
                    host, mport = broker.url.split("//")[1].split(":")
                    async with aiomqtt.Client(host, int(mport)) as client:
                        await client.subscribe(subscription(Channel.ALARM), qos=1)
                        async for message in client.messages:
                            key = _alarm_key(message.topic.value, message.payload)  # type: ignore[arg-type]
                            if key and bare_sent[key]:
                                bare_latency.append(time.perf_counter() - bare_sent[key].popleft())

                listener = asyncio.create_task(listen())
                subscriber = asyncio.create_task(bare())
                await ready.wait()
                await asyncio.sleep(0.5)
                host, mport = broker.url.split("//")[1].split(":")
                started = time.perf_counter()
                async with aiomqtt.Client(host, int(mport), max_queued_outgoing_messages=0) as pub:
                    for i, (topic, payload, qos) in enumerate(stream):
                        due = started + i / rate
                        delay = due - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        key = _alarm_key(topic, payload)
                        if key:
                            now = time.perf_counter()
                            sent[key].append(now)
                            bare_sent[key].append(now)
                        await pub.publish(topic, payload, qos=qos)
                achieved = count / (time.perf_counter() - started)
                await asyncio.sleep(3.0)
                listener.cancel()
                subscriber.cancel()
                for task in (listener, subscriber):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            twin.terminate()
            twin.wait(timeout=30)
            broker.stop()
    return {
        "messages": count,
        "alarm_events": alarms_in_stream,
        "achieved_rate": round(achieved),
        "twin": {
            "n": len(twin_latency),
            "p50_ms": round(_quantile(twin_latency, 0.5) * 1000, 2),
            "p99_ms": round(_quantile(twin_latency, 0.99) * 1000, 2),
            "mean_ms": round(statistics.mean(twin_latency) * 1000, 2),
        },
        "bare": {
            "n": len(bare_latency),
            "p50_ms": round(_quantile(bare_latency, 0.5) * 1000, 2),
            "p99_ms": round(_quantile(bare_latency, 0.99) * 1000, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.rate, args.seconds))
    twin, bare = result["twin"], result["bare"]
    assert isinstance(twin, dict)
    assert isinstance(bare, dict)
    print(
        f"{result['messages']} messages at {result['achieved_rate']}/s, {result['alarm_events']} alarm events; "
        f"twin stream p50 {twin['p50_ms']} ms p99 {twin['p99_ms']} ms (n={twin['n']}); "
        f"bare MQTT p50 {bare['p50_ms']} ms p99 {bare['p99_ms']} ms (n={bare['n']})"
    )
    print(
        json.dumps(
            {
                "benchmark": "alarm_latency",
                "figure": {
                    "name": "alarm publish -> live stream, p50 / p99 ms",
                    "p50": twin["p50_ms"],
                    "p99": twin["p99_ms"],
                },
                "baseline": {
                    "name": "alarm publish -> bare MQTT subscriber, p50 / p99 ms",
                    "p50": bare["p50_ms"],
                    "p99": bare["p99_ms"],
                },
                "ratio": {
                    "p50": round(twin["p50_ms"] / bare["p50_ms"], 1),
                    "p99": round(twin["p99_ms"] / bare["p99_ms"], 1),
                },
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
