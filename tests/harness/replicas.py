"""Twin replicas as real processes (``pumptwin serve --database-url``) for drills and benchmarks.

Each :class:`Replica` is a subprocess with its own data directory, HTTP port and replica id, on a
shared PostgreSQL database and broker; the harness can SIGKILL it, SIGSTOP/SIGCONT it, or stop it
cleanly with SIGTERM (a hand-over). Accounts live in the database (one per role,
:data:`tests.harness.accounts.PASSWORDS`), so a client signed in on one replica is signed in on
all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.harness.accounts import PASSWORDS
from tests.harness.servers import free_port
from twin.roles import Role
from twin.store.postgres import Database, PostgresAccountStore
from twin.store.postgres.schema import migrate
from twin.store.users import hash_password

PUMPTWIN = str(Path(sys.executable).parent / "pumptwin")


async def prepare_database(url: str) -> None:
    """Migrate the database and add one account per role."""
    await migrate(url)
    async with Database(url, replica="test-accounts") as db:
        store = PostgresAccountStore(db)
        for role, password in PASSWORDS.items():
            if await store.get(role.value) is None:
                await store.add(role.value, role, hash_password(password), actor="test", at=datetime.now(UTC))


@dataclass
class Replica:
    """One ``pumptwin serve --database-url`` process (see the module docstring)."""

    name: str
    workdir: Path
    database_url: str
    mqtt_url: str
    ttl_s: float = 3.0
    partitions: int = 16
    sites: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PUMPTWIN_DATABASE__URL": self.database_url,
            "PUMPTWIN_CLUSTER__REPLICA_ID": self.name,
            "PUMPTWIN_CLUSTER__LEASE_TTL_S": str(self.ttl_s),
            "PUMPTWIN_CLUSTER__PARTITIONS": str(self.partitions),
            "PUMPTWIN_MQTT__SITES": json.dumps(self.sites),
            **self.env,
        }
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    PUMPTWIN,
                    "serve",
                    "--mqtt",
                    self.mqtt_url,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.workdir / self.name),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.paused = False

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until ``/healthz`` answers (any status: partitions may still be being taken)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited {self.process.returncode}: {self.tail()}")
            try:
                httpx.get(self.url + "/healthz", timeout=2.0)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"replica {self.name} did not answer: {self.tail()}")

    def health(self) -> dict[str, object]:
        body: dict[str, object] = httpx.get(self.url + "/healthz", timeout=5.0).json()
        return body

    def served(self) -> list[int]:
        """The partitions it serves, as its ``/healthz`` says."""
        partitions = self.health().get("partitions", [])
        assert isinstance(partitions, list)
        return [int(p) for p in partitions]

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(10)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (a clean hand-over) and wait; SIGKILL if it does not end. Returns its status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process is not None else 0
        if self.paused:
            self.resume()
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return -9

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def sign_in(base_url: str, role: Role = Role.ADMIN) -> httpx.Client:
    """A synchronous client signed in as ``role`` at ``base_url``."""
    client = httpx.Client(base_url=base_url, timeout=15.0)
    answer = client.post("/api/login", json={"username": role.value, "password": PASSWORDS[role]})
    assert answer.status_code == 200, answer.text
    return client


__all__ = ["PUMPTWIN", "Replica", "prepare_database", "sign_in"]
