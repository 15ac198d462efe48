"""Fixtures shared by every test tier: real servers for integration tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.harness import postgres as postgres_harness
from tests.harness.servers import Influxd, Mosquitto

# Property tests prove what they compute, never how fast: on the shared 2-core machines (CI
# included) hypothesis's default 200 ms deadline per example is a flake waiting to happen
# (preventive: none was seen; the flake seen was a filter health check, handled in its test).
# Tests that set their own deadline keep it.
settings.register_profile("pumptwin", deadline=None)
settings.load_profile("pumptwin")


def _require(binary: str, package: str) -> None:
    if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
        pytest.fail(f"{binary} is not installed: run `make test` (it installs the Debian package {package})")


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A fresh, real Mosquitto on a free port; the test may stop and restart it."""
    _require("mosquitto", "mosquitto")
    server = Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """A fresh, real InfluxDB (v1 API) on a free port; the test may stop and restart it."""
    _require("influxd", "influxdb")
    server = Influxd(workdir=tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influxd_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """A real InfluxDB with authentication on; ``query`` runs as its admin user."""
    _require("influxd", "influxdb")
    server = Influxd(workdir=tmp_path_factory.mktemp("influxd-auth"), auth_enabled=True)
    server.start()
    yield server
    server.stop()


def _require_postgres() -> None:
    try:
        postgres_harness.binaries()
    except FileNotFoundError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres_harness.Postgres]:
    """One real PostgreSQL for the session (its own cluster, free port, temp dir); tests take
    databases of it (:func:`postgres_url`) and must not stop it."""
    _require_postgres()
    with postgres_harness.running(postgres_harness.Postgres()) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: postgres_harness.Postgres) -> str:
    """A fresh database with the store's schema, on the session's PostgreSQL."""
    return postgres_harness.fresh_database(postgres_server)


@pytest.fixture
def postgres() -> Iterator[postgres_harness.Postgres]:
    """A real PostgreSQL of the test's own, which it may stop, kill and restart."""
    _require_postgres()
    with postgres_harness.running(postgres_harness.Postgres()) as server:
        yield server
