"""``pumptwin serve``: the twin service, its MQTT link, its clock, InfluxDB and the HTTP API in one
asyncio loop, as **one** ``asyncio.TaskGroup`` of named tasks.

Failure policy (a paragraph of why): a twin that keeps answering its API while nothing is ingested
is worse than one that is down, because the console and ``/healthz`` would say all is well. So:

* a part that can recover reports ``degraded`` in ``/healthz`` until it has: the broker going
  away (the link reconnects), the journal refusing writes (ingest retries, acknowledging
  nothing meanwhile), InfluxDB away (points wait in the spool), the clock loop running late;
* a task that *fails* (raises anything it does not recover from) or *ends* while the process is
  meant to run is logged once, clearly (``task twin-mqtt failed: ...``), and takes the whole
  task group down: every other task is cancelled, the journal is closed, and ``pumptwin serve``
  exits with status 1 so that a supervisor (systemd, Docker, Kubernetes) restarts it. On restart
  the broker redelivers what was not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import uvicorn

from twin.api.app import create_app
from twin.influx.writer import InfluxWriter
from twin.mirror.fleet import FleetConfig
from twin.mqtt_endpoint import MqttEndpoint
from twin.service.escalator import Escalator
from twin.service.health import Status
from twin.service.mqtt_link import run_clock, run_link
from twin.service.paging_webhook import PagingWebhook
from twin.service.twin_service import TwinService
from twin.settings import Settings
from twin.store.local import LocalJournalStore
from twin.store.users import UserStore
from twin.training.desk import TrainingDesk

if TYPE_CHECKING:
    from twin.scenarios.runner import ScenarioRunner

log = logging.getLogger(__name__)

USERS_FILE = "users.sqlite"
"""Console accounts and sessions, in the data directory beside the journal (``twin.store.users``)."""

JOURNAL_FILE = "journal.sqlite"


async def _until_stopped(work: Awaitable[None], stop: asyncio.Event) -> None:
    """Run ``work`` (a loop that never ends by itself) until ``stop``."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    finally:
        for pending in (task, waiter):
            pending.cancel()


class TaskEnded(Exception):
    """A task that should run for the life of the process returned."""


class _QuietServer(uvicorn.Server):
    """uvicorn inside our own loop: signals belong to the whole process, not to the HTTP server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Supervisor:
    """Names the tasks of one task group and reports each in the health: a failure is logged once
    and re-raised (it ends the group); an early end is a failure too, unless ``stop`` was set."""

    def __init__(self, tasks: asyncio.TaskGroup, service: TwinService, stop: asyncio.Event) -> None:
        self.tasks = tasks
        self.service = service
        self.stop = stop
        self.running: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, work: Awaitable[Any]) -> asyncio.Task[None]:
        async def guarded() -> None:
            health = self.service.health
            health.report(f"task:{name}", Status.OK, "running")
            try:
                await work
            except asyncio.CancelledError:
                health.report(f"task:{name}", Status.DOWN, "cancelled")
                raise
            except BaseException as exc:
                health.report(f"task:{name}", Status.DOWN, f"failed: {exc!r}"[:300])
                log.critical("task %s failed: %r; the twin stops", name, exc, exc_info=exc)
                raise
            if not self.stop.is_set():
                health.report(f"task:{name}", Status.DOWN, "ended")
                log.critical("task %s ended while the twin was running; the twin stops", name)
                raise TaskEnded(name)
            health.report(f"task:{name}", Status.DOWN, "stopped")

        task = self.tasks.create_task(guarded(), name=name)
        self.running[name] = task
        return task


@dataclass
class RunningTwin:
    """Handles on a running twin, for the demo and the tests."""

    service: TwinService
    url: str
    mqtt_connected: asyncio.Event
    stop: asyncio.Event
    writer: InfluxWriter | None = None
    users: UserStore | None = None
    supervisor: Supervisor | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    escalator: Escalator | None = None
    webhook: PagingWebhook | None = None
    desk: TrainingDesk | None = None


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
    config: FleetConfig | None = None,
) -> AsyncIterator[RunningTwin]:
    """Start the twin (journal, InfluxDB writer, MQTT link, clock, HTTP server) in one task group;
    stop it on exit. A task that fails ends the group: the body of the ``async with`` is cancelled
    and the failure comes out of it (see the module docstring). ``scenarios``: serve the scenario
    and training routes too (a process that also runs the simulation)."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    store = LocalJournalStore(journal_path or data_dir / JOURNAL_FILE)
    stop = asyncio.Event()
    connected = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(store.close)
        users = stack.enter_context(UserStore(data_dir / USERS_FILE))
        writer: InfluxWriter | None = None
        if with_influx:
            spool_dir = settings.influx.spool_dir
            if not spool_dir.is_absolute():
                spool_dir = data_dir / spool_dir.name
            writer = await stack.enter_async_context(InfluxWriter(settings.influx, spool_dir))
        service = TwinService(store, points=writer, name=client_id, config=config)
        await service.restore()

        def health() -> dict[str, Any]:
            if writer is None:
                return {"timeseries": "disabled"}
            stats = writer.stats
            if settings.influx.url is not None and stats.problem is not None:  # answers, but refuses: why, the fix
                service.health.report("timeseries", Status.DEGRADED, stats.problem)
            elif settings.influx.url is not None and stats.influx_reachable is False:
                service.health.report("timeseries", Status.DEGRADED, f"InfluxDB unreachable: {stats.last_error}")
            else:  # reachable, or no InfluxDB configured (points wait in the spool for one: a choice)
                service.health.ok("timeseries", writer.describe())
            return {}

        webhook: PagingWebhook | None = None
        if settings.escalation.webhook_url:
            webhook = await stack.enter_async_context(PagingWebhook.from_settings(settings.escalation))
            log.info("escalations: %s", webhook.describe())
        escalator = Escalator(
            service, settings.escalation.policy(), users=users, sinks=[webhook.submit] if webhook is not None else []
        )
        await escalator.restore()
        desk: TrainingDesk | None = None
        if scenarios is not None:
            desk = TrainingDesk(scenarios, service, users)
            await desk.restore()
        app = create_app(
            service,
            health=health,
            users=users,
            auth=settings.auth,
            scenarios=scenarios,
            training=desk,
            escalator=escalator,
        )
        config_http = uvicorn.Config(
            app, host=settings.http.host, port=settings.http.port, log_level=log_level, lifespan="off"
        )
        server = _QuietServer(config_http)
        async with asyncio.TaskGroup() as tasks:
            supervisor = Supervisor(tasks, service, stop)
            supervisor.start(
                "twin-mqtt",
                run_link(
                    service, endpoint, stop, sites=settings.mqtt.sites or None, client_id=client_id, connected=connected
                ),
            )
            supervisor.start("twin-clock", run_clock(service, stop))
            if store.journal.path is not None:  # the WAL's checkpoints off the event loop
                supervisor.start("journal-checkpoints", store.run_checkpoints(stop))
            supervisor.start("escalator", _until_stopped(escalator.run(), stop))
            if desk is not None:
                supervisor.start("training-desk", _until_stopped(desk.run(), stop))
            http = supervisor.start("twin-http", server.serve())
            while not server.started:
                if http.done():
                    break  # the port is taken: the group fails with the reason
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.http.port
            running = RunningTwin(
                service,
                f"http://{settings.http.host}:{port}",
                connected,
                stop,
                writer,
                users,
                supervisor,
                supervisor.running,
                escalator,
                webhook,
                desk,
            )
            try:
                yield running
            finally:
                stop.set()
                server.should_exit = True
        await service.flush_snapshots()


async def serve_forever(settings: Settings, endpoint_url: str | None) -> None:
    """``pumptwin serve``: run until SIGTERM or Ctrl-C (a clean stop); a failed task ends it with the error."""
    from twin.embedded_broker import embedded_broker

    async with contextlib.AsyncExitStack() as stack:
        url: str = endpoint_url if endpoint_url else await stack.enter_async_context(embedded_broker())
        endpoint = MqttEndpoint.parse(
            url,
            username=settings.mqtt.username,
            password=settings.mqtt.password.get_secret_value() if settings.mqtt.password else None,
            ca_file=settings.mqtt.ca_file,
        )
        if settings.database.url is not None:  # one replica among several (docs/scale.md)
            from twin.app.replica import serve_replica

            await serve_replica(settings, endpoint)
            return
        running = await stack.enter_async_context(running_twin(settings, endpoint))
        print(f"twin service: {running.url} (API docs {running.url}/docs), MQTT {endpoint.url}", flush=True)
        print(f"time series: {running.writer.describe() if running.writer is not None else 'disabled'}", flush=True)
        settle_heap()
        await _terminated()


async def _terminated() -> None:
    """Wait for SIGTERM (``docker stop``, systemd, Kubernetes), then return, so that the twin stops
    the clean way: what it received is applied and acknowledged, every device is snapshotted and
    the spool is sent for a moment. Python's default for SIGTERM ends the process on the spot."""
    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, terminated.set)
    try:
        await terminated.wait()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    log.info("SIGTERM: the twin stops")


GC_YOUNG_THRESHOLD: Final = 20_000
"""Allocations between collections of the youngest generation in ``pumptwin serve`` (see :func:`settle_heap`)."""


def settle_heap() -> None:
    """Once the process has started: collect the start-up garbage, then move every object alive
    now (modules, the app, pydantic's validators, the restored fleet: ~100,000 objects) out of the
    cyclic collector's sight (:func:`gc.freeze`). Without it every full collection walks them all:
    measured 36-150 ms pauses of the event loop during the alarm-latency benchmark, the p99 of an
    alarm's way to the live stream (BENCHMARKS.md); with it a full collection walks only what was
    made since. What is frozen is never freed, so this is for a long-lived process's start-up only
    (``pumptwin serve``), not for a twin started many times in one process (tests).

    Then the youngest generation is collected every :data:`GC_YOUNG_THRESHOLD` allocations instead
    of 700: the ingest makes and drops a few dozen containers a message (effects, models, map
    nodes), and at 700 enough of them were caught alive by a young collection to be promoted and
    walked again by the older ones (in-process ingest, same run, alternating: 41-54 µs a message
    against 50-78 µs, and 6 full collections instead of 14; BENCHMARKS.md, twin_ingest)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
