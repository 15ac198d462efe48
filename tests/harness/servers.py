"""Real Mosquitto and InfluxDB servers for tests: each on a free port, in its own temp dir.

A server can be stopped (gracefully or killed) and started again on the same port with the same
data directory, so fault tests can take the broker or the database away mid-run and bring it
back. Nothing here uses the machine's system services or standard ports.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MQTT_PORT = 1883
"""The plain MQTT port a production config listens on; a test broker moves it to its free port."""


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to 0, read it back, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(predicate: object, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not come up within {timeout_s} s; log tail:\n{tail}")


@dataclass
class _Server:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self, argv: list[str]) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM and wait (clean), or SIGKILL (a crash)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        deadline = time.monotonic() + 5
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def start(self) -> None:
        raise NotImplementedError

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


def adapt_mosquitto_config(text: str, *, ports: Mapping[int, int], path_map: Mapping[str, Path]) -> str:
    """A production mosquitto config made runnable in a test, every other line kept as it is.

    ``listener P`` becomes ``listener ports[P] 127.0.0.1`` (a listener not in ``ports`` is an error: a test
    never binds a real port or a public address); path prefixes in option values are replaced by
    ``path_map`` (longest prefix first, e.g. ``/mosquitto/auth/`` -> a temp dir); ``user`` and
    ``log_dest`` lines are dropped, since the harness runs as the current user and logs to stdout.
    """
    prefixes = sorted(path_map, key=len, reverse=True)
    out = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            out.append(line)
        elif words[0] == "listener":
            port = int(words[1])
            if port not in ports:
                raise ValueError(f"listener {port} in the config has no test port (pass it in ports)")
            out.append(f"listener {ports[port]} 127.0.0.1")
        elif words[0] in ("user", "log_dest"):
            continue
        else:
            values = []
            for value in words[1:]:
                prefix = next((p for p in prefixes if value.startswith(p)), None)
                if prefix is not None:
                    rest = value[len(prefix) :]
                    value = str(path_map[prefix]) + ("/" if prefix.endswith("/") else "") + rest
                values.append(value)
            out.append(" ".join([words[0], *values]))
    return "\n".join(out) + "\n"


@dataclass
class Mosquitto(_Server):
    """A real ``mosquitto`` broker with persistence on, so retained messages and queued QoS 1
    messages of persistent sessions survive a restart, as on a production broker.

    By default it runs a permissive test config (anonymous access). With ``config_file`` it runs that
    file instead (e.g. the production ``broker/mosquitto.conf``), adapted by
    :func:`adapt_mosquitto_config`: its plain listener (1883) moves to ``port``, other listeners to
    ``listener_ports``, and paths move by ``path_map``.
    """

    extra_config: str = ""
    config_file: Path | None = None
    path_map: dict[str, Path] = field(default_factory=dict)
    listener_ports: dict[int, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        if self.config_file is not None:
            return self._write_adapted_config(self.config_file)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    # started as root, mosquitto drops to the 'mosquitto' user, which cannot write
                    # to our temp dir: stay the user who runs the tests
                    f"user {getpass.getuser()}",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.workdir}/",
                    "autosave_interval 1",
                    "max_queued_messages 100000",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    self.extra_config,
                    "",
                ]
            )
        )
        return conf

    def _write_adapted_config(self, source: Path) -> Path:
        for target in self.path_map.values():
            if not target.suffix:  # a directory prefix: mosquitto does not create its persistence dir
                target.mkdir(parents=True, exist_ok=True)
        adapted = adapt_mosquitto_config(
            source.read_text(),
            ports={MQTT_PORT: self.port, **self.listener_ports},
            path_map=self.path_map,
        )
        conf = self.workdir / "mosquitto.conf"
        # started as root, mosquitto drops to the 'mosquitto' user: stay the user who runs the tests
        conf.write_text(f"{adapted}user {getpass.getuser()}\nlog_dest stdout\n{self.extra_config}\n")
        return conf

    def start(self) -> None:
        if self.running:
            return
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self._spawn([binary, "-c", str(self._write_config())])
        _wait(lambda: _port_open(self.port), 10, "mosquitto", self.log_path)


@dataclass
class Influxd(_Server):
    """A real ``influxd`` (Debian's 1.6.7, or any 1.x) with its data in the work dir.

    The v1 HTTP API it serves (``/write``, ``/query``, ``/ping``) is the one InfluxDB 2.x and 3.x
    also serve, which is the only API PumpTwin uses.

    With ``auth_enabled`` every request but ``/ping`` needs credentials; the first start creates
    the admin ``admin_user``/``admin_password``, which :meth:`query` then uses.
    """

    rpc_port: int = field(default_factory=free_port)
    auth_enabled: bool = False
    admin_user: str = "admin"
    admin_password: str = "admin password"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        data = self.workdir / "data"
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{data}/meta"

[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
  auth-enabled = {"true" if self.auth_enabled else "false"}

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""
        )
        return conf

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:
                return bool(resp.status == 204)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        if self.running:
            return
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        self._spawn([binary, "-config", str(self._write_config())])
        _wait(self._ping, 30, "influxd", self.log_path)
        if self.auth_enabled:
            self._create_admin()

    def _create_admin(self) -> None:
        """Only possible while no user exists; after a restart the admin is already there (401)."""
        password = self.admin_password.replace("\\", "\\\\").replace("'", "\\'")
        statement = f"CREATE USER \"{self.admin_user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
        try:
            self._post_query({"q": statement}, auth=False)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code != 401:
                raise

    def _post_query(self, params: dict[str, str], *, auth: bool) -> dict[str, object]:
        request = urllib.request.Request(f"{self.url}/query", data=urllib.parse.urlencode(params).encode())
        if auth:
            token = base64.b64encode(f"{self.admin_user}:{self.admin_password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as resp:
            result: dict[str, object] = json.loads(resp.read())
            return result

    def query(self, q: str, db: str | None = None, **params: str) -> dict[str, object]:
        """Run InfluxQL through ``/query`` and return the decoded JSON (a test convenience).

        Extra ``params`` go to the request (``epoch="ns"`` for integer timestamps). With auth
        enabled the admin's credentials are sent.
        """
        params = {"q": q, **params}
        if db:
            params["db"] = db
        return self._post_query(params, auth=self.auth_enabled)


@contextlib.contextmanager
def running(server: _Server):  # type: ignore[no-untyped-def]
    server.start()
    try:
        yield server
    finally:
        server.stop()
