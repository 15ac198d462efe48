"""``pumptwin serve --database-url``: one twin replica among several, sharing one PostgreSQL.

The composition root of a replica (issue 15; the design is ``docs/store.md`` and
``docs/scale.md``). Sites hash into P partitions (:mod:`twin.cluster.partitions`); the
:class:`~twin.cluster.keeper.LeaseKeeper` leases this replica its share; the
:class:`PartitionHost` serves each leased partition, and the :class:`FleetView` answers the API
for the whole fleet. In one asyncio loop, as **one** ``asyncio.TaskGroup``:

* per leased partition (that has sites): one :class:`~twin.service.twin_service.TwinService`
  over the partition's sites only, whose store is the shared journal under the partition's fence
  (:class:`FencedJournal`: every batch carries ``Fence(partition, epoch)``, so a batch is one
  partition's by construction), its clock, its escalations, and one MQTT link whose **client id
  is the partition's** (:func:`partition_client_id`), not the replica's, with a persistent
  session (``clean_session`` false) subscribed to the partition's sites at QoS 1: while nobody
  serves the partition the broker queues its alarms, states and results, and the next owner
  resumes that queue. Taking a partition over loads its snapshots and journal tail
  (``restore(sites=...)``) before the link subscribes, so the retained births and states and
  the queued messages land on the state the last owner left; the sequence rules and the
  device-event marks drop what that owner had already journaled;
* a **fenced commit refused** (:class:`~twin.store.protocol.StaleEpoch`: another replica took the
  partition over while this one was paused) ends that partition only: nothing of the batch was
  written, its messages are not acknowledged (the new owner gets them from the session), and the
  partition is given up. Before every (re)connect the link asks whether the lease still has time
  left (a replica woken from a pause must not take the session back from the new owner);
* one discovery subscription (its own client id, a clean session) hears every retained birth:
  a site that was not known is counted (``births_on_new_sites``), and its partition, if served
  here, is served again with the site in its subscriptions. Sites known at start: the
  ``mqtt.sites`` setting and every site the database holds. A site configured up front has its
  partition's session subscribed before its pumps publish; a site first heard of by its birth
  loses whatever QoS 1 messages its pumps published before the subscription existed (hence the
  count, and the advice to configure sites: ``docs/scale.md``);
* the commit feed (:mod:`twin.store.feed`): what other replicas commit, for the fleet-wide view
  and its live stream; the lease keeper; the HTTP server.

A task that fails ends the group, and the process exits non-zero (``pumptwin serve``'s rule), but
a partition that is taken over is not a failure. SIGTERM (and Ctrl-C) hand over cleanly: every
partition is drained (what arrived is applied and acknowledged), its snapshots flushed, its lease
released, and the replica says it is leaving, so the others take over at their next tick instead
of after the TTL.

Accounts and login sessions live in PostgreSQL too (so a console signed in on one replica is
signed in on all, and a forwarded request carries a session the owner knows): the API's account
checks are synchronous, so they go through :class:`BlockingAccounts`, which runs the PostgreSQL
account store on a thread of its own and waits for it (a round trip of about a millisecond per
request; the console's traffic, not the ingest's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

import aiomqtt
import uvicorn
from immutables import Map

from twin.alarms.lifecycle import Alarm, AlarmError
from twin.api.app import create_app
from twin.api.forwarding import NotServedHere
from twin.app.serve import Supervisor, _QuietServer, _until_stopped
from twin.cluster.keeper import LeaseKeeper
from twin.cluster.leases import LeasePolicy
from twin.cluster.partitions import partition_of
from twin.contract.topics import Channel, subscription
from twin.influx.writer import InfluxWriter
from twin.mirror import fleet as steps
from twin.mirror.alarm_board import Board, DeviceKey, restored
from twin.mirror.device_twin import DeviceTwin
from twin.mirror.fleet import Fleet, FleetConfig
from twin.mqtt_endpoint import NO_DELAY, MqttEndpoint
from twin.service.escalator import Escalator, escalation_json
from twin.service.events import (
    AlarmTransitioned,
    CommandUpdated,
    DeviceUpdated,
    EventHub,
    Notice,
    ResponseMade,
    TwinEvent,
)
from twin.service.health import Status
from twin.service.mqtt_link import run_clock, run_link
from twin.service.twin_service import TwinService, tracked_from_log
from twin.settings import Settings
from twin.store.feed import Committed, FeedEvent, Resync
from twin.store.postgres import Database, Limits, PostgresAccountStore, PostgresJournalStore, postgres_stores
from twin.store.protocol import Batch, Fence, Lease, StaleEpoch, StoreUnavailable
from twin.store.snapshots import snapshot_to_twin
from twin.store.users import UserStore

log = logging.getLogger(__name__)

T = TypeVar("T")

CLIENT_PREFIX: Final = "pumptwin-partition"
"""MQTT client ids of the partitions' sessions: ``pumptwin-partition-0007``. The same in every
replica of a deployment (that is the point: the next owner resumes the session)."""

RETRY_DELAYS_S: Final = (0.2, 0.5, 1.0, 2.0, 5.0)


def partition_client_id(partition: int) -> str:
    """The MQTT client id of ``partition``'s persistent session."""
    return f"{CLIENT_PREFIX}-{partition:04d}"


def advertised_url(settings: Settings, port: int) -> str:
    """Where other replicas reach this one's API: ``cluster.http_url``, else this host's name
    (or the bound address, if it is a specific one) and the bound port."""
    if settings.cluster.http_url:
        return settings.cluster.http_url.rstrip("/")
    host = settings.http.host
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{host}:{port}"


# ------------------------------------------------------------------------------------ the store


class FencedJournal(PostgresJournalStore):
    """The shared journal as one partition's service writes it: every batch under ``fence``; a
    batch of the partition's old owner, written after a take-over, raises
    :class:`~twin.store.protocol.StaleEpoch` and writes nothing."""

    def __init__(self, db: Database, fence: Fence) -> None:
        super().__init__(db)
        self.fence = fence

    async def commit(self, batch: Batch) -> None:
        await super().commit(dataclasses.replace(batch, fence=self.fence))


class BlockingAccounts:
    """The PostgreSQL account store behind the synchronous interface of
    :class:`~twin.store.users.UserStore` that the API's sign-in uses: each call runs on a loop
    of its own thread (with its own small pool) and is waited for. See the module docstring."""

    def __init__(self, url: str, *, replica: str, limits: Limits) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="accounts", daemon=True)
        self._thread.start()
        self._timeout = limits.call_timeout_s + 1.0
        self._db = Database(url, replica=f"{replica}/accounts", limits=dataclasses.replace(limits, pool_min=1))
        self._call(self._db.open())
        self._store = PostgresAccountStore(self._db)

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError as error:
            future.cancel()
            raise StoreUnavailable("the account store did not answer") from error

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._store, name)
        return lambda *args, **kwargs: self._call(method(*args, **kwargs))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._db.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()


# --------------------------------------------------------------------------------- the view


def _put_alarm(board: Board, alarm: Alarm) -> Board:
    device = (alarm.site, alarm.device_id)
    keys = board.by_device.get(device, frozenset())
    by_device = board.by_device if alarm.key in keys else board.by_device.set(device, keys | {alarm.key})
    return dataclasses.replace(board, alarms=board.alarms.set(alarm.key, alarm), by_device=by_device)


def _put_device(fleet: Fleet, twin: DeviceTwin, source: Fleet | None = None) -> Fleet:
    key = twin.key
    sites = fleet.sites if key in fleet.devices else fleet.sites.set(twin.site, fleet.sites.get(twin.site, 0) + 1)
    fleet = fleet._replace(devices=fleet.devices.set(key, twin), sites=sites)
    if source is not None:  # what the device page shows beside the twin: its site's clock, its forecast
        clock = source.clocks.get(twin.site)
        if clock is not None and fleet.clocks.get(twin.site) is not clock:
            fleet = fleet._replace(clocks=fleet.clocks.set(twin.site, clock))
        forecast = source.forecasts.get(key)
        if forecast is not None:
            fleet = fleet._replace(forecasts=fleet.forecasts.set(key, forecast))
    return fleet


class FleetView(TwinService):
    """The whole fleet, read only, as the API of any replica shows it: built from the shared
    database (:meth:`restore`), kept current by the partitions served here (:meth:`absorb`, as
    their changes are journaled) and by the commit feed of the others (:meth:`follow`); its hub
    is the replica's live stream. It applies no message and runs no clock. A staff action goes to
    the partition's own service when it is served here, else raises
    :class:`~twin.api.forwarding.NotServedHere` naming the owner (the API forwards it)."""

    def __init__(self, store: PostgresJournalStore, *, partitions: int, name: str, config: FleetConfig) -> None:
        super().__init__(store, config=config, name=name)
        self.journal = store
        self.partitions = partitions
        self.local: dict[int, TwinService] = {}
        """The services of the partitions served here, by partition."""
        self.feed_events = 0
        self.resyncs = 0

    # ------------------------------------------------------------------------ building it

    async def restore(self, *, sites: Iterable[str] | None = None) -> None:
        """Everything the database holds: every device's snapshot, every alarm, every command."""
        del sites
        snapshots = await self.journal.snapshots()
        alarms = await self.journal.current_alarms()
        records = await self.journal.commands()
        devices: dict[DeviceKey, DeviceTwin] = {}
        for snapshot in snapshots:
            twin = snapshot_to_twin(dict(snapshot.payload))
            if twin is not None:
                devices[twin.key] = twin
        commands = {}
        for record in records:  # in log order: the last status of a command wins
            tracked = tracked_from_log(record)
            if tracked is not None:
                commands[tracked.command_id] = tracked
        fleet = steps.restored(
            devices=Map(devices), board=restored(alarms.values()), commands=Map(commands), config=self.fleet.config
        )
        for service in self.local.values():  # what is served here is newer than the database
            fleet = self._overlay(fleet, service.fleet)
        self.fleet = fleet

    @staticmethod
    def _overlay(fleet: Fleet, source: Fleet) -> Fleet:
        for twin in source.devices.values():
            fleet = _put_device(fleet, twin, source)
        board = fleet.board
        for alarm in source.board.alarms.values():
            board = _put_alarm(board, alarm)
        commands = fleet.commands
        for command_id, tracked in source.commands.items():
            commands = commands.set(command_id, tracked)
        return fleet._replace(board=board, commands=commands)

    def adopt(self, service: TwinService, partition: int) -> None:
        """A partition is served here from now on, by ``service`` (restored): show what it holds."""
        self.local[partition] = service
        self.fleet = self._overlay(self.fleet, service.fleet)
        service.hub.listen(lambda event: self.absorb(service, event))

    def release(self, partition: int) -> None:
        """``partition`` is no longer served here (its last state stays shown until its next owner
        commits)."""
        self.local.pop(partition, None)

    def absorb(self, service: TwinService, event: TwinEvent) -> None:
        """An event of a partition served here (journaled already): show it, stream it."""
        if isinstance(event, DeviceUpdated):
            twin = service.fleet.devices.get(event.key)
            if twin is not None:
                self.fleet = _put_device(self.fleet, twin, service.fleet)
        elif isinstance(event, AlarmTransitioned):
            if event.alarm is not None:
                self.fleet = self.fleet._replace(board=_put_alarm(self.fleet.board, event.alarm))
        elif isinstance(event, CommandUpdated):
            tracked = event.tracked
            self.fleet = self.fleet._replace(commands=self.fleet.commands.set(tracked.command_id, tracked))
        self.hub.publish(event)

    async def follow(self, events: Any) -> None:
        """Apply what other replicas commit (``events``: a commit feed's ``events()``)."""
        async for event in events:
            await self.apply_feed(event)

    async def apply_feed(self, event: FeedEvent) -> None:
        self.feed_events += 1
        if isinstance(event, Resync):
            self.resyncs += 1
            log.info("fleet view: reloading from the database (%s)", event.reason)
            with contextlib.suppress(StoreUnavailable):  # the feed says Resync again once it listens
                await self.restore()
            self.hub.publish(Notice("resync", {"reason": event.reason}))
            return
        assert isinstance(event, Committed)
        fleet = self.fleet
        board = fleet.board
        for alarm in event.alarms.values():
            current = board.alarms.get(alarm.key)
            if current is None or current.version <= alarm.version:
                board = _put_alarm(board, alarm)
        fleet = fleet._replace(board=board)
        changed: list[DeviceKey] = []
        for snapshot in event.snapshots:
            twin = snapshot_to_twin(dict(snapshot.payload))
            current_twin = fleet.devices.get((snapshot.site, snapshot.device_id))
            if twin is not None and (current_twin is None or current_twin.version <= twin.version):
                fleet = _put_device(fleet, twin)
                changed.append(twin.key)
        commands = fleet.commands
        updated = []
        for record in event.commands:
            tracked = tracked_from_log(record)
            if tracked is not None:
                commands = commands.set(tracked.command_id, tracked)
                updated.append(tracked)
        self.fleet = fleet._replace(commands=commands)
        hub = self.hub
        for t in event.transitions:
            hub.publish(AlarmTransitioned(t, self.fleet.board.alarms.get(t.key)))
        for key in changed:
            hub.publish(DeviceUpdated(key))
        for tracked in updated:
            hub.publish(CommandUpdated(tracked))
        for response in event.responses:
            hub.publish(ResponseMade(response))
        for escalation in event.escalations:  # as the owner's escalator streams them
            hub.publish(Notice("escalation", escalation_json(escalation)))

    # --------------------------------------------------------------------- staff actions

    owner: Callable[[int], Coroutine[Any, Any, tuple[str | None, str | None]]] | None = None
    """Set by the composition root: the owner of a partition and its URL, from the lease table."""

    async def _serving(self, site: str) -> TwinService:
        partition = partition_of(site, self.partitions)
        service = self.local.get(partition)
        if service is not None:
            return service
        owner, url = (None, None) if self.owner is None else await self.owner(partition)
        raise NotServedHere(partition, owner, url)

    async def alarm_action(self, key: str, verb: str, actor: str, **kwargs: Any) -> Alarm:
        alarm = self.fleet.board.alarms.get(key)
        site = alarm.site if alarm is not None else key.split("/", 1)[0]
        if not site:
            raise AlarmError("unknown_alarm", f"no alarm {key!r}")
        return await (await self._serving(site)).alarm_action(key, verb, actor, **kwargs)

    async def send_command(self, key: DeviceKey, action: Any, actor: str) -> Any:
        return await (await self._serving(key[0])).send_command(key, action, actor)

    async def respond(self, key: str, action: str, actor: str, role: str, **kwargs: Any) -> Any:
        alarm = self.fleet.board.alarms.get(key)
        if alarm is None:
            raise AlarmError("unknown_alarm", f"no alarm {key!r}")
        return await (await self._serving(alarm.site)).respond(key, action, actor, role, **kwargs)

    async def patient_report(self, key: DeviceKey, report: Any) -> None:
        await (await self._serving(key[0])).patient_report(key, report)

    async def ingest(self, messages: Any) -> None:
        raise TypeError("the fleet view applies no messages: a partition's service does")

    async def tick(self, now: datetime | None = None) -> None:
        self._update_gauges()

    async def flush_snapshots(self) -> None:
        return None

    def history_of(self, key: DeviceKey) -> Any:
        service = self.local.get(partition_of(key[0], self.partitions))
        return service.history_of(key) if service is not None else []


# ---------------------------------------------------------------------------- the partitions


@dataclass
class Partition:
    """One partition served here, under one lease epoch."""

    lease: Lease
    sites: list[str]
    service: TwinService | None = None
    escalator: Escalator | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    lost: bool = False
    connected: asyncio.Event = field(default_factory=asyncio.Event)


class PartitionHost:
    """Serves the partitions the keeper leases to this replica (the keeper's
    :class:`~twin.cluster.keeper.PartitionHost`). See the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        endpoint: MqttEndpoint,
        db: Database,
        view: FleetView,
        tasks: asyncio.TaskGroup,
        points: InfluxWriter | None,
        users: UserStore | None,
        sites: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.db = db
        self.view = view
        self.tasks = tasks
        self.points = points
        self.users = users
        self.partitions = settings.cluster.partitions
        self.policy = LeasePolicy(ttl=_ttl(settings))
        self.sites: set[str] = set(sites)
        self.served: dict[int, Partition] = {}
        self.keeper: LeaseKeeper | None = None
        self.births_on_new_sites = 0
        self.taken_over = 0
        self.lost = 0
        self._lock = asyncio.Lock()
        self._retired_in = 0

    # ------------------------------------------------------------------ keeper's interface

    async def serve(self, lease: Lease) -> None:
        async with self._lock:
            await self._serve(lease)

    async def stop(self, partition: int) -> None:
        async with self._lock:
            await self._stop(partition)

    async def _serve(self, lease: Lease) -> None:
        """Start serving: the partition's own task loads it and connects (the keeper's tick does
        not wait for either, so one slow restore never delays the renewal of the other leases)."""
        p = lease.partition
        await self._stop(p)
        sites = sorted(s for s in self.sites if partition_of(s, self.partitions) == p)
        part = Partition(lease, sites)
        if sites:
            part.task = self.tasks.create_task(self._run(part), name=f"partition-{p}")
        self.served[p] = part
        self.taken_over += 1

    async def _load(self, part: Partition) -> TwinService | None:
        """The partition's service, restored from its snapshots and journal tail (tried again
        while the database is unavailable); None if the partition is stopped meanwhile."""
        p = part.lease.partition
        attempt = 0
        while True:
            service = TwinService(
                FencedJournal(self.db, Fence(p, part.lease.epoch)),
                points=self.points,
                hub=EventHub(),
                name=f"{self.settings.cluster.replica_id}/p{p}",
            )
            try:
                await service.restore(sites=part.sites)
                if self.settings.escalation.enabled:
                    part.escalator = Escalator(service, self.settings.escalation.policy(), users=self.users)
                    await part.escalator.restore()
                return service
            except StoreUnavailable as error:
                if part.stop.is_set():
                    return None
                log.warning("partition %d: cannot load it yet (%s)", p, error)
                await asyncio.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
                attempt += 1

    async def _stop(self, partition: int) -> None:
        part = self.served.pop(partition, None)
        if part is None:
            return
        self.view.release(partition)
        part.stop.set()
        self._retired_in += _count_in(part)
        if part.task is not None and part.task is not asyncio.current_task():
            await asyncio.wait([part.task])
        if part.service is not None and not part.lost:
            with contextlib.suppress(StaleEpoch, StoreUnavailable):  # a restart resumes from the last saved
                await part.service.flush_snapshots()

    def serving(self) -> list[int]:
        """The partitions loaded and connected to the broker (their messages are being ingested)."""
        return sorted(p for p, part in self.served.items() if part.service is not None and part.connected.is_set())

    def messages_in(self) -> int:
        """Messages the partitions served here took in since this replica started."""
        return self._retired_in + sum(_count_in(part) for part in self.served.values())

    # -------------------------------------------------------------------- one partition

    def _may_connect(self, part: Partition) -> bool:
        keeper = self.keeper
        lease = keeper.held.get(part.lease.partition) if keeper is not None else part.lease
        return (
            lease is not None
            and lease.epoch == part.lease.epoch
            and lease.expires_at - self.policy.stop_when_left > datetime.now(UTC)
        )

    async def _run(self, part: Partition) -> None:
        """The partition's link, clock and escalations until it is stopped or lost. A failure
        other than losing the partition ends the replica (the task group's rule)."""
        p = part.lease.partition
        try:
            service = await self._load(part)
        except StaleEpoch as error:  # the restore's first tick was refused: taken over already
            log.warning("partition %d given up while loading: %s", p, error)
            self._lose(part)
            return
        if service is None or part.stop.is_set():
            return
        part.service = service
        self.view.adopt(service, p)
        log.info("partition %d: serving %d sites under epoch %d", p, len(part.sites), part.lease.epoch)

        async def link() -> None:
            await run_link(
                service,
                self.endpoint,
                part.stop,
                sites=part.sites,
                client_id=partition_client_id(p),
                connected=part.connected,
                may_connect=lambda: self._may_connect(part),
            )
            if not part.stop.is_set():
                raise StaleEpoch(f"partition {p}: the lease ran out before the link could connect again")

        async def escalate() -> None:
            if part.escalator is None:
                return
            work = asyncio.ensure_future(part.escalator.run())
            try:
                await part.stop.wait()
            finally:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work

        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(link(), name=f"partition-{p}-mqtt")
                tasks.create_task(run_clock(service, part.stop), name=f"partition-{p}-clock")
                tasks.create_task(escalate(), name=f"partition-{p}-escalator")
        except* StaleEpoch as group:
            log.warning("partition %d given up: %s", p, group.exceptions[0])
            self._lose(part)

    def _lose(self, part: Partition) -> None:
        """``part`` is another replica's now: stop serving it, acknowledge nothing more, forget the lease."""
        p = part.lease.partition
        part.lost = True
        part.stop.set()
        self.lost += 1
        if self.served.get(p) is part:
            del self.served[p]
            self.view.release(p)
            self._retired_in += _count_in(part)
        if self.keeper is not None:
            held = self.keeper.held.get(p)
            if held is not None and held.epoch == part.lease.epoch:
                del self.keeper.held[p]

    # ------------------------------------------------------------------------- sites

    def heard_of(self, site: str) -> None:
        """A birth at ``site``: if it is new, count it, and serve its partition again with it."""
        if site in self.sites:
            return
        self.sites.add(site)
        self.births_on_new_sites += 1
        p = partition_of(site, self.partitions)
        log.info("a birth on a site not known yet: %s (partition %d)", site, p)
        if p in self.served:
            self.tasks.create_task(self._reserve(p), name=f"partition-{p}-resubscribe")

    async def _reserve(self, partition: int) -> None:
        async with self._lock:
            part = self.served.get(partition)
            if part is None or self.keeper is None:
                return
            lease = self.keeper.held.get(partition)
            if lease is None or lease.epoch != part.lease.epoch:
                return
            await self._serve(lease)


def _count_in(part: Partition) -> int:
    if part.service is None:
        return 0
    return int(
        sum(
            sample.value
            for metric in part.service.metrics.messages_in.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )


def _ttl(settings: Settings) -> Any:
    from datetime import timedelta

    return timedelta(seconds=settings.cluster.lease_ttl_s)


async def discover(host: PartitionHost, endpoint: MqttEndpoint, replica: str) -> None:
    """Hear every retained birth (see the module docstring); reconnect with back-off."""
    attempt = 0
    while True:
        try:
            async with aiomqtt.Client(
                endpoint.host,
                endpoint.port,
                username=endpoint.username,
                password=endpoint.password,
                identifier=f"pumptwin-discovery-{replica}"[:200],
                clean_session=True,
                tls_context=endpoint.tls_context(),
                socket_options=NO_DELAY,
            ) as client:
                await client.subscribe(subscription(Channel.BIRTH), qos=0)
                attempt = 0
                async for message in client.messages:
                    parts = str(message.topic).split("/")
                    if len(parts) >= 4:
                        host.heard_of(parts[2])
        except aiomqtt.MqttError as error:
            log.warning("site discovery lost the broker: %s", error)
        await asyncio.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
        attempt += 1


# --------------------------------------------------------------------------- the composition


async def known_sites(db: Database) -> list[str]:
    """Every site the database holds a device or an alarm of."""
    rows = await db.fetchall("SELECT site FROM twin_snapshot UNION SELECT site FROM current_alarm")
    return [str(row[0]) for row in rows]


async def advertise(db: Database, replica: str, url: str) -> None:
    """Write where this replica's API answers into its row of ``twin_replica`` (revision 0003)."""
    now = datetime.now(UTC)
    await db.run(
        lambda conn: conn.execute(
            "INSERT INTO twin_replica (replica, alive_until, seen_at, http_url) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (replica) DO UPDATE SET http_url = excluded.http_url",
            (replica, now, now, url),
        )
    )


def owner_lookup(db: Database) -> Callable[[int], Coroutine[Any, Any, tuple[str | None, str | None]]]:
    async def owner(partition: int) -> tuple[str | None, str | None]:
        try:
            row = await db.fetchone(
                "SELECT l.owner, r.http_url FROM partition_lease l LEFT JOIN twin_replica r ON r.replica = l.owner "
                "WHERE l.partition = %s AND l.owner IS NOT NULL AND l.expires_at > now()",
                (partition,),
            )
        except StoreUnavailable:
            return None, None
        return (None, None) if row is None else (row[0], row[1])

    return owner


def database_limits(settings: Settings) -> Limits:
    """The pool's limits from the settings (as :func:`twin.store.backend.open_stores` sets them)."""
    call = settings.database.call_timeout_s
    ttl = settings.cluster.lease_ttl_s
    return Limits(
        call_timeout_s=call,
        statement_timeout_s=0.8 * call,
        # a lease row locked by a frozen replica must be free again well inside the TTL, and a
        # takeover must not wait a whole TTL on it
        lock_timeout_s=min(0.5 * call, ttl / 3),
        idle_in_transaction_s=min(0.5 * call, ttl / 2),
        pool_max=settings.database.pool_max,
    )


async def serve_replica(settings: Settings, endpoint: MqttEndpoint, *, with_influx: bool = True) -> None:
    """Run one replica until SIGTERM or SIGINT (then hand over and return); a failed task ends it
    with the error (see the module docstring)."""
    assert settings.database.url is not None
    url = settings.database.url.get_secret_value()
    replica = settings.cluster.replica_id
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    limits = database_limits(settings)
    async with contextlib.AsyncExitStack() as stack:
        pg = await stack.enter_async_context(postgres_stores(url, replica=replica, limits=limits))
        users = cast(UserStore, BlockingAccounts(url, replica=replica, limits=limits))
        stack.callback(users.close)
        writer: InfluxWriter | None = None
        if with_influx:
            spool_dir = settings.influx.spool_dir
            if not spool_dir.is_absolute():
                spool_dir = settings.data_dir / spool_dir.name
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            writer = await stack.enter_async_context(InfluxWriter(settings.influx, spool_dir))
        view = FleetView(pg.journal, partitions=settings.cluster.partitions, name=replica, config=FleetConfig())
        view.owner = owner_lookup(pg.db)
        await view.restore()
        sites = set(settings.mqtt.sites) | set(await known_sites(pg.db))

        def health() -> dict[str, Any]:
            parts = view.health.parts
            for name in [n for n in parts if n.startswith("partition:")]:
                if int(name.split(":", 1)[1]) not in host.served:
                    del parts[name]
            for p, part in host.served.items():
                if part.service is not None:
                    status = part.service.health.status
                    view.health.report(f"partition:{p}", status, f"{len(part.sites)} sites, epoch {part.lease.epoch}")
            if writer is not None:
                stats = writer.stats
                if settings.influx.url is not None and (stats.problem is not None or stats.influx_reachable is False):
                    view.health.report(
                        "timeseries", Status.DEGRADED, stats.problem or f"unreachable: {stats.last_error}"
                    )
                else:
                    view.health.ok("timeseries", writer.describe())
            return {
                "replica": replica,
                "partitions": sorted(host.served),
                "serving": host.serving(),
                "messages_in": host.messages_in(),
                "births_on_new_sites": host.births_on_new_sites,
                "feed_events": view.feed_events,
            }

        app = create_app(view, health=health, users=users, auth=settings.auth)
        server = _QuietServer(
            uvicorn.Config(app, host=settings.http.host, port=settings.http.port, log_level="warning", lifespan="off")
        )
        async with asyncio.TaskGroup() as tasks:
            supervisor = Supervisor(tasks, view, stop)
            host = PartitionHost(
                settings=settings,
                endpoint=endpoint,
                db=pg.db,
                view=view,
                tasks=tasks,
                points=writer,
                users=users,
                sites=sites,
            )
            http = supervisor.start("twin-http", server.serve())
            while not server.started:
                if http.done():
                    break
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.http.port
            public = advertised_url(settings, port)
            await advertise(pg.db, replica, public)
            keeper = LeaseKeeper(
                pg.leases, host, replica=replica, partitions=settings.cluster.partitions, policy=host.policy
            )
            host.keeper = keeper
            supervisor.start("commit-feed", _until_stopped(view.follow(pg.feed.events()), stop))
            supervisor.start("site-discovery", _until_stopped(discover(host, endpoint, replica), stop))
            leases = supervisor.start("leases", keeper.run())
            supervisor.start("fleet-view-clock", run_clock(view, stop))
            print(
                f"twin replica {replica}: {public} (HTTP {settings.http.host}:{port}), MQTT {endpoint.url}, "
                f"{settings.cluster.partitions} partitions, lease TTL {settings.cluster.lease_ttl_s:g} s",
                flush=True,
            )
            try:
                await stop.wait()
            finally:
                stop.set()
                keeper.stop()
                await asyncio.wait([leases])  # hands every partition over (drain, flush, release, leave)
                server.should_exit = True
        log.info("replica %s stopped: every partition handed over", replica)


__all__ = [
    "CLIENT_PREFIX",
    "BlockingAccounts",
    "FencedJournal",
    "FleetView",
    "Partition",
    "PartitionHost",
    "advertised_url",
    "database_limits",
    "partition_client_id",
    "serve_replica",
]
