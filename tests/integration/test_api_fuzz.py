"""A short schemathesis pass over the twin's HTTP API: every operation of its own OpenAPI schema,
requests generated from that schema (and made to break it), sent over a real socket to a real
uvicorn serving the app, signed in as an admin (every route open to it). The property: **no
answer is a server error** (5xx), and every answer the schema describes conforms to it.

The twin behind it holds a mirrored pump with an open alarm and a command, so paths that name a
real device, alarm or command are reachable; ``/api/stream`` (an endless server-sent stream) and
``/api/logout`` (it would end the session the pass runs in) are left out. A short pass: a few
dozen examples an operation (``FUZZ_EXAMPLES``), derandomised so that a failure is reproducible.
It found: ``/api/alarm-load?hours=5e-324`` (an overflow), ``since`` with a far offset, an invalid
device id in a command path (issue 18).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.harness.accounts import PASSWORDS, add_accounts
from tests.harness.inproc import feed, new_service
from twin.api.app import create_app
from twin.contract import examples
from twin.contract.topics import Channel
from twin.roles import Role
from twin.scenarios.runner import ScenarioRunner
from twin.scenarios.scenario_file import load_library
from twin.store.users import UserStore

pytestmark = pytest.mark.integration

FUZZ_EXAMPLES: Final = 25
"""Examples per operation: enough to find the 5xx of issue 18 again, short enough for every run."""

LEFT_OUT: Final = ("/api/stream", "/api/logout")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Twin:
    """The app on a uvicorn of its own loop, in a thread (the test thread sends the requests)."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._data_dir = data_dir
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-twin", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        service = await new_service(self._data_dir / "journal.sqlite", clock=lambda: datetime.now(UTC))
        users = UserStore(self._data_dir / "users.sqlite")
        add_accounts(users)
        site, device = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
        await feed(
            service,
            site,
            device,
            [
                (Channel.BIRTH, examples.birth()),
                (Channel.STATE, examples.state()),
                (Channel.TELEMETRY, examples.telemetry()),
                (Channel.ALARM, examples.alarm()),
            ],
        )
        await service.send_command((site, device), examples.command().action, "admin")
        app = create_app(service, users=users, scenarios=ScenarioRunner(load_library()))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        serving = asyncio.create_task(self._server.serve())
        while not self._server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no started event
            await asyncio.sleep(0.02)
        self._ready.set()
        try:
            await serving
        finally:
            users.close()
            await service.store.close()

    def __enter__(self) -> _Twin:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the twin did not start: {self._error!r}")
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Twin]:
    with _Twin(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


@pytest.fixture(scope="module")
def admin(twin: _Twin) -> Iterator[requests.Session]:
    session = requests.Session()
    answer = session.post(
        f"{twin.url}/api/login", json={"username": Role.ADMIN.value, "password": PASSWORDS[Role.ADMIN]}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    yield session
    session.close()


def _schema() -> Any:
    """The app's OpenAPI schema as the app itself builds it (no server needed to collect tests)."""
    import tempfile

    async def build() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            service = await new_service(Path(tmp) / "journal.sqlite", clock=lambda: datetime.now(UTC))
            users = UserStore(Path(tmp) / "users.sqlite")
            try:
                spec: dict[str, Any] = create_app(
                    service, users=users, scenarios=ScenarioRunner(load_library())
                ).openapi()
                return spec
            finally:
                users.close()
                await service.store.close()

    spec = asyncio.run(build())
    loaded = schemathesis.openapi.from_dict(spec)
    return loaded.exclude(path=list(LEFT_OUT))


schema = _schema()


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_schema_allows_or_breaks_makes_a_server_error(
    case: Any, twin: _Twin, admin: requests.Session
) -> None:
    response = case.call(base_url=twin.url, session=admin, timeout=30)
    case.validate_response(response, checks=(not_a_server_error, response_schema_conformance))
