"""A real PostgreSQL server for tests: its own cluster (``initdb``) in a temp dir, on a free port.

Never the machine's own server: the cluster lives in a fresh directory, listens on 127.0.0.1 at a
port that was free a moment ago and puts its Unix socket in the same directory, so nothing on
5432 or in ``/var/run/postgresql`` is touched.

PostgreSQL refuses to run as root. When the tests run as root, the cluster belongs to the
``postgres`` user (created by Debian's ``postgresql`` package), the directory is made in ``/tmp``
and handed to that user (pytest's own temp dirs are private to root), and every server binary is
started with that user id (``subprocess.Popen(user=..., group=...)``, the same as ``runuser -u
postgres --`` without a wrapper process in between, so the process the harness holds *is* the
postmaster).

The server can be stopped cleanly (``pg_ctl``'s fast shutdown: SIGINT), killed with SIGKILL (the
postmaster and every backend at once: a crash of the database machine, from which PostgreSQL
recovers by replaying its WAL at the next start) and started again on the same port with the
same data. The harness finds the backends through ``/proc`` (each is a child of the postmaster
in a process group of its own). ``fsync`` is off by default: a SIGKILL loses nothing written (the kernel keeps the
written pages), only a machine crash would, which no test makes; the benchmark turns it on.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import grp
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.servers import _port_open, free_port

SERVER_USER = "postgres"
"""Who owns and runs the cluster when the tests run as root (Debian's ``postgresql`` package makes it)."""

START_TIMEOUT_S = 30.0
"""Crash recovery after a SIGKILL replays the WAL before the server accepts connections."""


def binaries() -> Path:
    """The newest installed PostgreSQL's ``bin`` directory (Debian: ``/usr/lib/postgresql/N/bin``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise FileNotFoundError("initdb not found: run `make test` (it installs the Debian package postgresql)")
    return Path(initdb).parent


@dataclass
class Postgres:
    """One PostgreSQL cluster; :meth:`start` runs ``initdb`` the first time. Use :func:`running`."""

    workdir: Path | None = None
    port: int = field(default_factory=free_port)
    fsync: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    """Extra ``-c name=value`` server settings."""
    process: subprocess.Popen[bytes] | None = None
    _own_workdir: bool = False

    def __post_init__(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="pumptwin-postgres-"))
            self._own_workdir = True
        if os.getuid() == 0:
            os.chown(self.workdir, *self._ids())

    @property
    def dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def url(self) -> str:
        """The connection URL of the ``postgres`` database (trust authentication on 127.0.0.1)."""
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _ids(self) -> tuple[int, int]:
        return pwd.getpwnam(SERVER_USER).pw_uid, grp.getgrnam(SERVER_USER).gr_gid

    def _as_server_user(self) -> dict[str, object]:
        if os.getuid() != 0:
            return {}
        uid, gid = self._ids()
        return {"user": uid, "group": gid, "extra_groups": []}

    def _initdb(self) -> None:
        subprocess.run(
            [
                str(binaries() / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                SERVER_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=self.dir,
            **self._as_server_user(),  # type: ignore[arg-type]  # Popen's user/group/extra_groups, typed loosely here
        )

    def start(self) -> None:
        if self.running:
            return
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        argv = [
            str(binaries() / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.dir}",
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            "-c",
            "max_connections=200",
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        log = self.log_path.open("ab")
        if os.getuid() == 0:
            os.chown(self.log_path, *self._ids())
        self.process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            preexec_fn=_die_with_parent,
            **self._as_server_user(),  # type: ignore[arg-type]  # Popen's user/group/extra_groups, typed loosely here
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.stop(kill=True)
                raise RuntimeError(f"PostgreSQL did not come up on port {self.port}; log tail:\n{tail}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        done = subprocess.run(
            [str(binaries() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            check=False,
        )
        return done.returncode == 0

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: a fast shutdown (SIGINT: sessions are ended, everything committed is on
        disk), or SIGKILL to the postmaster and all its backends (a crash)."""
        if self.process is None:
            return
        tree = _process_tree(self.process.pid)
        if self.process.poll() is None:
            if kill:
                _signal(tree, signal.SIGKILL)
            else:
                _signal(tree, signal.SIGCONT)  # if paused
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal(_process_tree(self.process.pid), signal.SIGKILL)
                self.process.wait(timeout=10)
        deadline = time.monotonic() + 10  # killed backends may outlive the postmaster a moment (shared memory)
        while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.process = None
        deadline = time.monotonic() + 5
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: the server hangs without closing a connection."""
        assert self.process is not None
        _signal(_process_tree(self.process.pid), signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        _signal(_process_tree(self.process.pid), signal.SIGCONT)

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with ``psql`` (a plain client, as an operator would) and return its output."""
        done = subprocess.run(
            [
                str(binaries() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SERVER_USER,
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` if given); return its URL."""
        clause = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{clause}')
        return self.database_url(name)

    def remove(self) -> None:
        """Stop the server and delete its directory (if the harness made it)."""
        self.stop(kill=True)
        if self._own_workdir:
            shutil.rmtree(self.dir, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it if the test process dies (a test run killed from
    outside must not leave a server behind; its backends notice the postmaster's death and exit)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1
"""``prctl`` option (linux/prctl.h): the signal a process gets when its parent thread dies."""


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its children (the postmaster's backends and auxiliary processes), from /proc.
    Not a process group: every PostgreSQL child makes itself a group leader (``setsid``)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state, past the command name
        if ppid == pid:
            children.append(int(entry.name))
    return [pid, *children]


def _signal(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone but for its parent's wait


@contextlib.contextmanager
def running(server: Postgres) -> Iterator[Postgres]:
    """Start ``server``; on exit stop it and delete its directory."""
    server.start()
    try:
        yield server
    finally:
        server.remove()


TEMPLATE_DATABASE = "pumptwin_template"
"""A database migrated once per server; each test's database is a copy (``CREATE DATABASE ...
TEMPLATE``: a file copy, far quicker than running the migrations again)."""

_databases = itertools.count(1)


def fresh_database(server: Postgres) -> str:
    """A new database on ``server`` with the store's schema at head; return its URL."""
    from twin.store.postgres.schema import migrate_sync

    if server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE_DATABASE}'") != "1":
        migrate_sync(server.create_database(TEMPLATE_DATABASE))
    return server.create_database(f"test_{os.getpid()}_{next(_databases)}", template=TEMPLATE_DATABASE)
