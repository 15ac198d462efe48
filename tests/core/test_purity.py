"""The functional core does no I/O, provably: each core module, imported alone in a fresh
interpreter, pulls in none of the I/O libraries (not even transitively)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import twin

FORBIDDEN = (
    "asyncio",
    "aiomqtt",
    "paho",
    "httpx",
    "sqlite3",
    "yaml",
    "uvicorn",
    "fastapi",
    "starlette",
    "asyncpg",
    "psycopg",
    "sqlalchemy",
    "influxdb_client",
    "prometheus_client",
)
"""What a pure module must never load: event loops, brokers, HTTP, databases, files of config."""

PURE_PACKAGES = ("contract", "pump", "mirror", "alarms", "timeseries", "training")
"""Every module of these packages is core (``contract.asyncapi`` writes a document: shell)."""

PURE_MODULES = (
    "twin.roles",
    "twin.sim.device",
    "twin.sim.fleet",
    "twin.sim.simulation",
    "twin.sim.reference",
    "twin.scenarios.model",
    "twin.scenarios.timeline",
    "twin.scenarios.evaluation",
    "twin.scenarios.fleet",
    "twin.store.protocol",
    "twin.store.snapshots",
    "twin.store.batch_plan",
    "twin.store.feed",
    "twin.cluster.partitions",
    "twin.cluster.leases",
    "twin.gateway.readout",
    "twin.gateway.publication",
    "twin.fhir.codes",
)
SHELL_MODULES = frozenset({"twin.contract.asyncapi", "twin.training.desk"})
"""Shell modules that live beside the core they serve: the AsyncAPI generator writes a file; the
training desk journals and streams (its scoring and sessions are pure)."""


def core_modules() -> list[str]:
    root = Path(twin.__file__).parent
    found = list(PURE_MODULES)
    for package in PURE_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            name = f"twin.{package}" + ("" if path.stem == "__init__" else f".{path.stem}")
            if name not in SHELL_MODULES:
                found.append(name)
    return sorted(set(found))


def test_the_core_list_is_not_empty_and_names_real_modules() -> None:
    assert len(core_modules()) > 40


@pytest.mark.parametrize("module", core_modules())
def test_a_core_module_loads_no_io_library(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        f"bad = {FORBIDDEN!r}\n"
        "found = sorted({m.split('.')[0] for m in sys.modules} & set(bad))\n"
        "print(','.join(found))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} loads {result.stdout.strip()}"
