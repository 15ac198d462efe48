"""``pumptwin serve`` in its own process, as an operator runs it: started, asked ``/healthz``, stopped
with SIGTERM or killed with SIGKILL, and started again on the same data directory.

The process gets its settings from the environment (``PUMPTWIN_…``), runs in its own working
directory (so no ``.env`` of the developer's is read) and logs to a file in it; the HTTP port is
read from the address line ``pumptwin serve`` prints when it is up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ADDRESS = re.compile(r"twin service: (http://[0-9.]+:[0-9]+)")

PUMPTWIN = Path(sys.executable).with_name("pumptwin")
"""The console script of this virtualenv: the drill runs exactly what an operator runs."""


@dataclass
class TwinProcess:
    """One twin's data directory and, while it runs, its process."""

    workdir: Path
    mqtt_url: str
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    url: str | None = None
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def journal(self) -> Path:
        return self.data_dir / "journal.sqlite"

    @property
    def log_path(self) -> Path:
        return self.workdir / "twin.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"

    def start(self, timeout_s: float = 30.0) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUMPTWIN_")}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        argv = [str(PUMPTWIN), "serve", "--mqtt", self.mqtt_url, "--port", "0", "--data-dir", str(self.data_dir)]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts + 1}: {' '.join(argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = _ADDRESS.search(self.log_path.read_text(errors="replace")[offset:])
            if found:
                self.url = found.group(1)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"pumptwin serve did not come up within {timeout_s} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the twin dies holding whatever it had not acknowledged."""
        self._end(signal.SIGKILL)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM and wait: a clean stop (what ``docker stop`` and systemd do)."""
        self._end(signal.SIGTERM, timeout_s)

    def _end(self, sig: signal.Signals, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        self.url = None

    def pause(self) -> None:
        """SIGSTOP: the process holds its connection but reads nothing (a twin stuck in a long pause)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, Any]:
        """GET ``path`` of the twin's API: (status, decoded JSON or text)."""
        assert self.url is not None, "the twin is not running"
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            body = error.read()
            status = error.code
            error.close()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def health(self) -> dict[str, Any]:
        """``/healthz`` as JSON (a 503 is an answer too: degraded)."""
        status, body = self.get("/healthz")
        if not isinstance(body, dict):
            raise RuntimeError(f"/healthz answered {status}: {body!r}")
        return body

    def counters(self, devices: list[str], site: str, password: str) -> dict[str, dict[str, int]]:
        """Each device's ordering counters (``/api/devices/{id}``: applied, duplicates, late, ...),
        signed in as the ``viewer`` account (see :meth:`add_viewer`)."""
        import httpx

        assert self.url is not None, "the twin is not running"
        with httpx.Client(base_url=self.url, timeout=10) as client:
            answer = client.post("/api/login", json={"username": "viewer", "password": password})
            answer.raise_for_status()
            out = {}
            for device in devices:
                detail = client.get(f"/api/devices/{device}", params={"site": site})
                detail.raise_for_status()
                out[device] = detail.json()["counters"]
            return out

    def add_viewer(self, password: str) -> None:
        """A console account (role viewer) in the twin's user store, before it starts."""
        from datetime import UTC, datetime

        from twin.roles import Role
        from twin.store.users import UserStore, hash_password

        self.data_dir.mkdir(parents=True, exist_ok=True)
        with UserStore(self.data_dir / "users.sqlite") as users:
            users.add("viewer", Role.VIEWER, hash_password(password), actor="drill", at=datetime.now(UTC))

    def metric(self, name: str) -> float:
        """The sum of one Prometheus metric's samples (all labels) from ``/metrics``."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in str(text).splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total
