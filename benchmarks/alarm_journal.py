"""Latency of one alarm-journal call, the figure ``twin/store/journal.py`` quotes.

    .venv/bin/python -m benchmarks.alarm_journal [--alarms 2000] [--dir PATH]

A fresh journal in a temp dir (``--dir`` picks the filesystem; the default temp dir otherwise) is
filled the way a twin fills it: ``--alarms`` alarm keys, each raised, acknowledged, cleared and
raised again (one ``record`` call per transition, as the lifecycle hands them over). Then each
call is timed alone, many times:

* ``record_new``: ``record`` of one new transition (the common write);
* ``record_replay``: ``record`` of a transition already recorded (0 rows);
* ``has_device_event``: the dedupe look-up;
* ``transitions_key``: ``transitions(key=...)`` of one alarm (its ~5 transitions);
* ``fold_per_transition``: ``alarms()`` over the whole journal, divided by its transitions.

Each figure is printed as median, 99th percentile and maximum in microseconds; the last line is
JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from twin.alarms import lifecycle as lc
from twin.alarms.device_events import DeviceEventKey
from twin.contract.alarms import Priority
from twin.store.journal import Journal

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _timed(call: Callable[[], object], runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 1),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
        "max_us": round(samples[-1], 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, Journal(Path(tmp) / "twin.sqlite3") as journal:
        alarms: list[lc.Alarm] = []
        for i in range(args.alarms):
            device = f"pump-{i:05}"
            at = T0 + timedelta(seconds=i)
            alarm, made = lc.raise_alarm(
                lc.alarm_key(f"site-{i % 20}", device, "reservoir_low"), device, f"site-{i % 20}", "reservoir_low", "device",
                Priority.MEDIUM, "Low reservoir", at,
            )  # fmt: skip
            journal.record(made, device_event=DeviceEventKey(device, f"a{i}", "raised"))
            for step in (
                lambda a, t: lc.acknowledge(a, "nurse:ana", t),
                lambda a, t: lc.condition_cleared(a, t),
                lambda a, t: lc.condition_returned(a, t),
            ):
                at += timedelta(minutes=1)
                alarm, made = step(alarm, at)
                for transition in made:
                    journal.record([transition])
            alarms.append(alarm)

        pending = iter(alarms)
        later = T0 + timedelta(days=1)

        def record_new() -> None:
            alarm = next(pending)
            journal.record(lc.condition_cleared(alarm, later)[1])

        replayed = journal.transitions(limit=1)
        keys = iter([a.key for a in alarms] * 10)
        events = iter(
            [(f"pump-{i % args.alarms:05}", f"a{i % args.alarms}", "raised") for i in range(10 * args.alarms)]
        )
        runs = min(args.alarms, 2000)
        figures = {
            "record_new": _timed(record_new, runs),
            "record_replay": _timed(lambda: journal.record(replayed), runs),
            "has_device_event": _timed(lambda: journal.has_device_event(*next(events)), runs),
            "transitions_key": _timed(lambda: journal.transitions(key=next(keys)), runs),
        }
        count = len(journal.transitions())
        start = time.perf_counter()
        journal.alarms()
        figures["fold_per_transition"] = {"us": round((time.perf_counter() - start) / count * 1e6, 2)}
        for name, figure in figures.items():
            print(f"{name:22} {figure}")
        print(json.dumps({"transitions": count, **figures}))


if __name__ == "__main__":
    main()
