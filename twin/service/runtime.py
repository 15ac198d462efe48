"""``pumptwin serve``: the twin service, its MQTT link, its clock, InfluxDB and the HTTP API in one
asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from twin.api.app import create_app
from twin.influx.writer import InfluxWriter
from twin.mqtt_endpoint import MqttEndpoint
from twin.service.escalator import Escalator
from twin.service.mqtt_link import run_clock, run_link
from twin.service.paging_webhook import PagingWebhook
from twin.service.twin_service import TwinService
from twin.settings import Settings
from twin.store.journal import Journal
from twin.store.users import UserStore

if TYPE_CHECKING:
    from twin.scenarios.runner import ScenarioRunner

log = logging.getLogger(__name__)

USERS_FILE = "users.sqlite"
"""Console accounts and sessions, in the data directory beside the journal (``twin.store.users``)."""


class _QuietServer(uvicorn.Server):
    """uvicorn inside our own loop: signals belong to the whole process, not to the HTTP server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningTwin:
    """Handles on a running twin, for the demo and the tests."""

    service: TwinService
    url: str
    mqtt_connected: asyncio.Event
    stop: asyncio.Event
    writer: InfluxWriter | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    users: UserStore | None = None
    escalator: Escalator | None = None
    webhook: PagingWebhook | None = None


@contextlib.asynccontextmanager
async def running_twin(
    settings: Settings,
    endpoint: MqttEndpoint,
    *,
    journal_path: Path | None = None,
    with_influx: bool = True,
    client_id: str = "pumptwin-twin",
    log_level: str = "warning",
    scenarios: ScenarioRunner | None = None,
) -> AsyncIterator[RunningTwin]:
    """Start the twin (journal, InfluxDB writer, MQTT link, clock, HTTP server); stop it on exit.
    ``scenarios``: serve the scenario routes too (a process that also runs the simulation)."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(journal_path or data_dir / "journal.sqlite")
    try:
        users = UserStore(data_dir / USERS_FILE)
    except BaseException:
        journal.close()
        raise
    stop = asyncio.Event()
    connected = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        writer: InfluxWriter | None = None
        if with_influx:
            spool_dir = settings.influx.spool_dir
            if not spool_dir.is_absolute():
                spool_dir = data_dir / spool_dir.name
            writer = await stack.enter_async_context(InfluxWriter(settings.influx, spool_dir))
            log.info("time series: %s", writer.describe())
        service = TwinService(journal, writer=writer, name=client_id)
        webhook: PagingWebhook | None = None
        if settings.escalation.webhook_url:
            webhook = await stack.enter_async_context(PagingWebhook.from_settings(settings.escalation))
            log.info("escalations: %s", webhook.describe())
        escalator = Escalator(
            service,
            settings.escalation.policy(),
            users=users,
            sinks=[webhook.submit] if webhook is not None else [],
        )

        def health() -> dict[str, Any]:
            ok = connected.is_set()
            return {
                "status": "ok" if ok else "degraded",
                "mqtt": "connected" if ok else "disconnected",
                "influx": writer.describe() if writer is not None else "disabled",
            }

        app = create_app(
            service, health=health, users=users, auth=settings.auth, scenarios=scenarios, escalator=escalator
        )
        config = uvicorn.Config(
            app, host=settings.http.host, port=settings.http.port, log_level=log_level, lifespan="off"
        )
        server = _QuietServer(config)
        tasks = [
            asyncio.create_task(
                run_link(
                    service, endpoint, stop, sites=settings.mqtt.sites or None, client_id=client_id, connected=connected
                ),
                name="twin-mqtt",
            ),
            asyncio.create_task(run_clock(service, stop), name="twin-clock"),
            asyncio.create_task(server.serve(), name="twin-http"),
        ]
        while not server.started:
            if tasks[2].done():
                tasks[2].result()  # raises: the port is taken, say so
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.http.port
        running = RunningTwin(
            service, f"http://{settings.http.host}:{port}", connected, stop, writer, tasks, users, escalator, webhook
        )
        try:
            yield running
        finally:
            stop.set()
            server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            service.flush_snapshots(everything=True)
            journal.close()
            users.close()
