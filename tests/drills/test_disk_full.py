"""Drill (f): the twin's data directory full for 30 s while the fleet publishes at full rate.

The data directory is a small tmpfs of its own (mounted by the drill: it needs root, or sudo
without a password), kept full to the last byte by a filler file for 30 s, then freed. Meanwhile the
twin must acknowledge nothing (each QoS 1 message stays with the broker until it is durable), say
degraded on ``/healthz`` the whole time, and recover by itself once the space is back; then every
alarm and state is journaled and in InfluxDB, once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drills.conftest import MakeRig

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

RATE = 1000.0
FULL_S = 30.0
SIZE = "96m"


def _privileged(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    if os.geteuid() != 0:
        argv = ["sudo", "-n", *argv]
    return subprocess.run(argv, capture_output=True, check=False)


@contextlib.contextmanager
def small_filesystem(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = _privileged(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0777", "tmpfs", str(path)])
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the data directory: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        _privileged(["umount", "-l", str(path)])


class Filler:
    """Keeps a filesystem full: a filler file topped up every few milliseconds, so that the space
    the twin frees (InfluxDB confirmed a spool segment, and it was deleted) is taken again at once,
    as by another process writing to the same disk."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "filler"
        self._stop = threading.Event()
        self._out = self.path.open("wb", buffering=0)
        self._top_up()
        assert shutil.disk_usage(directory).free < 64 * 1024, shutil.disk_usage(directory)
        self._thread = threading.Thread(target=self._run, name="filler", daemon=True)
        self._thread.start()

    def _top_up(self) -> None:
        for size in (1 << 20, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    self._out.write(b"\0" * size)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self._top_up()

    def remove(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._out.close()
        self.path.unlink()


@pytest.mark.timeout(200)
def test_data_directory_full_for_30_s_loses_nothing_and_says_degraded(rig: MakeRig) -> None:
    r = rig(devices=40)
    with small_filesystem(r.twin.data_dir):
        r.twin.start()
        r.until(r.twin_ok, "the twin to be healthy")
        r.fleet.births()
        r.fleet.start(RATE)
        time.sleep(4)
        filler = Filler(r.twin.data_dir)
        full_at = time.monotonic()
        r.until(lambda: not r.twin_ok(), "/healthz to say degraded", timeout_s=10, every_s=0.05)
        time.sleep(1.0)  # a batch that was already on its way may still be acknowledged
        acknowledged = r.twin.metric("pumptwin_acknowledged")
        answers: list[tuple[float, str, str]] = []
        while time.monotonic() - full_at < FULL_S:
            health = r.twin.health()
            journal = health["parts"].get("journal", {}).get("status", "?")
            answers.append((round(time.monotonic() - full_at, 1), health["status"], journal))
            time.sleep(0.5)
        acknowledged_while_full = r.twin.metric("pumptwin_acknowledged") - acknowledged
        filler.remove()
        freed_at = time.monotonic()
        r.until(r.twin_ok, "the twin to recover by itself", timeout_s=60)
        recovered_s = time.monotonic() - freed_at
        time.sleep(3)
        r.fleet.stop()
        r.settle(timeout_s=120)
        result = r.reckon(
            rate_msg_s=round(r.fleet.achieved_rate()),
            full_s=round(FULL_S),
            acknowledged_while_full=int(acknowledged_while_full),
            recovered_s=round(recovered_s, 1),
        )
    said_ok = [a for a in answers if a[1] == "ok" or a[2] == "ok"]
    assert not said_ok, f"/healthz said ok while the disk was full: {said_ok}"
    assert acknowledged_while_full == 0, f"{acknowledged_while_full} messages acknowledged while nothing was durable"
    result.assert_nothing_lost()
