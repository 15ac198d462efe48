"""The twin's MQTT connection: subscribe to the contract, feed the service, publish its commands.

One persistent session (``clean_session=False``, a stable client id, QoS 1 subscriptions): while
the twin is down or reconnecting, the broker keeps every QoS 1 message for it (alarms, state,
births, command results). Subscribing again at every connect makes the broker send the retained
births, states and site clocks, so a restarted twin catches up on the latest of each device.

**Acknowledged only when durable.** QoS 1 messages are acknowledged to the broker (paho's manual
acknowledgement) only after :meth:`TwinService.ingest` returned, that is after their alarm
transitions are in the journal and their points in the InfluxDB spool. While the journal cannot
be written, the link keeps the same batch and tries it again with back-off: nothing is
acknowledged, the broker stops sending QoS 1 messages once its in-flight window is full
(Mosquitto's ``max_inflight_messages``), ``/healthz`` says degraded, and ingest resumes by itself
when the disk does. A twin that dies holding unacknowledged messages gets them again from the
broker; the sequence rules and the alarm-event marks make the repeats harmless.

**The hot path.** Messages are taken straight from paho's ``on_message`` callback into a deque,
stamped with their arrival time, and applied in batches of up to :data:`BATCH` (one journal
transaction and one spool write per batch). aiomqtt's own delivery (a ``Message`` object and an
``asyncio.Queue`` put per message, and a task per message for its iterator) cost more than
everything the twin does with a message (``benchmarks/twin_ingest.py``), so the link uses
aiomqtt for the connection, subscriptions and publishing, and paho's callback for receiving.

**Back-pressure is a decision.** While more than :data:`SHED_BACKLOG` messages wait, telemetry
samples (QoS 0, each superseded by the next) are shed and counted; alarms, states, births and
results never are.

**Failure.** A broker that goes away is reconnected with back-off (``/healthz``: ingest
degraded). Anything else that breaks a task here ends :func:`run_link` with that error, so the
process's task group ends the process with a non-zero status and the error in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import aiomqtt
from paho.mqtt.matcher import MQTTMatcher

from twin.contract.topics import Channel, subscription
from twin.mqtt_endpoint import NO_DELAY, MqttEndpoint
from twin.service.health import Status
from twin.service.twin_service import QueueOutbox, Received, TwinService
from twin.store.protocol import StoreUnavailable

log = logging.getLogger(__name__)

BATCH: Final = 500
"""Most messages applied per journal transaction. Large enough to amortise a commit over a
backlog, small enough that a batch takes a few milliseconds and the API stays responsive."""

SHED_BACKLOG: Final = 50_000
"""Messages waiting at which telemetry starts being shed (a minute of a 1,000 msg/s fleet)."""

RETRY_DELAYS_S: Final = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Back-off between attempts to journal a batch the store refused, and between reconnects."""

DRAIN_ON_STOP_S: Final = 2.0
"""On a clean stop, how long the twin keeps applying (and acknowledging) what it already received."""

_TELEMETRY_SUFFIX: Final = "/" + Channel.TELEMETRY.value


class NoCycleMatcher(MQTTMatcher):
    """paho's matcher of per-filter callbacks, without garbage when no filter has one.

    paho looks up the per-filter callbacks of every message it receives
    (``_handle_on_message``: ``MQTTMatcher.iter_match``), and ``iter_match`` returns a generator of
    a recursive closure: a reference cycle (the function, its cells, the topic's split list) that
    only the cyclic collector frees. At 1,000 msg/s that was 11,000-18,000 objects for each young
    collection to find dead, and 3-19 ms pauses of the event loop, on the path of every alarm
    (``benchmarks/alarm_latency.py``, BENCHMARKS.md). The link registers no per-filter callback
    (everything goes to :meth:`Inbox.on_message`), so there is nothing to match: an empty matcher
    yields nothing without building the closure, and one with filters matches as paho's does."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # paho's matcher has no annotations

    def iter_match(self, topic: str) -> Any:
        root = self._root
        if not root._children and root._content is None:
            return ()
        return super().iter_match(topic)  # type: ignore[no-untyped-call]


class Inbox:
    """Messages as paho delivers them, stamped on arrival, waiting for the ingest task."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.messages: deque[Received] = deque()
        self.ready = asyncio.Event()
        self.drained = asyncio.Event()
        self.shed = 0
        self._clock = clock

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:  # paho's callback signature
        topic: str = message.topic
        if len(self.messages) >= SHED_BACKLOG and message.qos == 0 and topic.endswith(_TELEMETRY_SUFFIX):
            self.shed += 1
            return
        self.messages.append(Received(topic, message.payload, self._clock(), message.qos, message.mid))
        self.ready.set()


async def run_link(
    service: TwinService,
    endpoint: MqttEndpoint,
    stop: asyncio.Event,
    *,
    sites: list[str] | None = None,
    client_id: str = "pumptwin-twin",
    connected: asyncio.Event | None = None,
    may_connect: Callable[[], bool] | None = None,
) -> None:
    """Stay connected until ``stop``; reconnect with back-off when the broker goes away.
    ``may_connect``: asked before every (re)connect; False ends the link (a replica whose lease on
    the partition ran out must not take the partition's session back from its new owner)."""
    attempt = 0
    outbox = service.outbox
    if not isinstance(outbox, QueueOutbox):
        raise TypeError("the MQTT link publishes from a QueueOutbox")
    wake = asyncio.Event()
    outbox.wake = wake.set
    health = service.health
    health.report("ingest", Status.DEGRADED, f"connecting to {endpoint.url}")
    while not stop.is_set():
        if may_connect is not None and not may_connect():
            health.report("ingest", Status.DOWN, "not connecting: this replica may no longer serve these sites")
            return
        inbox = Inbox(service.clock)
        try:
            client = aiomqtt.Client(
                endpoint.host,
                endpoint.port,
                username=endpoint.username,
                password=endpoint.password,
                identifier=client_id,
                clean_session=False,
                keepalive=30,
                tls_context=endpoint.tls_context(),
                timeout=10,
                socket_options=NO_DELAY,
            )
            paho = client._client  # private: aiomqtt 2.x exposes neither manual ack nor a raw callback
            paho.manual_ack_set(True)
            paho.on_message = inbox.on_message
            paho._on_message_filtered = NoCycleMatcher()  # private, as above: see NoCycleMatcher
            async with client:
                filters = [subscription(site=None if site == "+" else site) for site in sites or ["+"]]
                for f in filters:
                    await client.subscribe(f, qos=1)
                attempt = 0
                log.info("twin connected to %s", endpoint.url)
                health.ok("ingest", f"connected to {endpoint.url}")
                if connected is not None:
                    connected.set()
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(_consume(service, paho, inbox, stop), name="twin-ingest")
                    tasks.create_task(_publish(client, outbox, wake), name="twin-publish")
                    tasks.create_task(_until(stop, inbox), name="twin-stop")
                    tasks.create_task(_watch(client), name="twin-connection")
        except* aiomqtt.MqttError as group:
            if connected is not None:
                connected.clear()
            health.report("ingest", Status.DEGRADED, f"broker lost: {group.exceptions[0]}"[:300])
            log.warning("twin lost the broker: %s", group.exceptions[0])
        except* _Stop:
            stop.set()
        if stop.is_set():
            health.report("ingest", Status.DOWN, "stopped")
            return
        await asyncio.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
        attempt += 1


class _Stop(Exception):
    pass


async def _watch(client: aiomqtt.Client) -> None:
    """Raise the broker's disconnection (an ``MqttError``) as soon as paho reports it: the ingest
    task takes its messages from paho's callback, so nothing else would notice a dead connection
    while no command is being published."""
    disconnected: asyncio.Future[None] = client._disconnected  # private: aiomqtt 2.x exposes no event
    await asyncio.shield(disconnected)
    raise aiomqtt.MqttError("the broker closed the connection")


async def _until(stop: asyncio.Event, inbox: Inbox) -> None:
    """On a clean stop: let the consumer apply (and acknowledge) what already arrived, for at most
    :data:`DRAIN_ON_STOP_S`, then leave. The subscriptions stay in the persistent session, so the
    broker keeps what arrives from now on for the next start."""
    await stop.wait()
    inbox.ready.set()  # wake the consumer so that it sees the stop
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_ON_STOP_S):
            await inbox.drained.wait()
    raise _Stop


async def _consume(service: TwinService, paho: Any, inbox: Inbox, stop: asyncio.Event) -> None:
    """Apply what arrived, in batches; acknowledge each batch once it is durable."""
    messages = inbox.messages
    metrics = service.metrics
    failures = 0
    while True:
        if not messages:
            if stop.is_set():
                inbox.drained.set()
                return
            inbox.ready.clear()
            await inbox.ready.wait()
            continue
        read_socket(paho, BATCH - len(messages))
        batch = [messages.popleft() for _ in range(min(BATCH, len(messages)))]
        while True:
            try:
                await service.ingest(batch)
                break
            except StoreUnavailable:
                delay = RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)]
                failures += 1
                metrics.unacknowledged.set(len(batch) + len(messages))
                await asyncio.sleep(delay)
        failures = 0
        # let the API, the live stream and the publisher in between batches, before the
        # acknowledgements: a stream woken by this batch's alarms writes them first
        await asyncio.sleep(0)
        acknowledged = 0
        for m in batch:
            if m.qos > 0:
                paho.ack(m.mid, m.qos)
                acknowledged += 1
        if acknowledged:
            metrics.acknowledged.inc(acknowledged)
        if inbox.shed:
            metrics.telemetry_shed.inc(inbox.shed)
            inbox.shed = 0
        metrics.backlog.set(len(messages))
        metrics.unacknowledged.set(0)
        metrics.lag.set(max(0.0, (service.clock() - batch[-1].received_at).total_seconds()))


def read_socket(paho: Any, limit: int) -> None:
    """Read up to ``limit`` more packets that are already waiting in the socket, now.

    aiomqtt has paho read one packet per turn of the event loop (``loop_read`` ignores its
    ``max_packets``), so a batch taken when the first message arrives would hold one message, and
    every message would pay a batch's fixed cost (a spool write, a journal transaction, an
    acknowledgement round). Reading what the socket already holds makes the batch as large as the
    backlog. Private paho calls (``_packet_read`` and its error handling, which ends in the same
    disconnect callback ``loop_read`` would reach); proven against a real Mosquitto by the
    integration tests and ``benchmarks/twin_ingest.py``."""
    again = mqtt_error_again()
    for _ in range(max(0, limit)):
        if paho._sock is None:
            return
        rc = paho._packet_read()
        if rc == again:
            return
        if rc > 0:
            paho._loop_rc_handle(rc)
            return


def mqtt_error_again() -> int:
    from paho.mqtt.enums import MQTTErrorCode

    return int(MQTTErrorCode.MQTT_ERR_AGAIN)


async def _publish(client: aiomqtt.Client, outbox: QueueOutbox, wake: asyncio.Event) -> None:
    queue = outbox.queue
    while True:
        while queue:
            out = queue[0]
            await client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
            queue.popleft()  # only after the broker took it
            raise_if_cancelling()
        wake.clear()
        await wake.wait()


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that ``asyncio.wait_for`` swallowed. On Python 3.11, ``wait_for``
    (inside aiomqtt's ``publish``) returns the result when its future completes in the same turn
    as the cancel (CPython gh-86296, fixed in 3.12): the task then goes on as if never cancelled,
    and a task group waiting for it to end waits for ever. Seen here at shutdown, while a command
    was being published."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def run_clock(service: TwinService, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """Call :meth:`TwinService.tick` every ``every_s`` until ``stop``. A tick the store refuses is
    tried again at the next second (``/healthz`` says the journal is degraded meanwhile); how late
    the loop runs is reported as its lag (``/healthz``: clock degraded above a second)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    health = service.health
    while not stop.is_set():
        lag = loop.time() - due
        health.report("clock", Status.OK if lag < 1.0 else Status.DEGRADED, f"lag {lag:.3f} s")
        with contextlib.suppress(StoreUnavailable):  # reported by the service; the next tick tries again
            await service.tick()
        due = loop.time() + every_s
        try:
            async with asyncio.timeout(every_s):
                await stop.wait()
        except TimeoutError:
            pass


__all__ = ["BATCH", "Inbox", "run_clock", "run_link"]
