"""The twin's MQTT connection: subscribe to the contract, feed the service, publish its commands.

One persistent session (``clean_session=False``, a stable client id, QoS 1 subscriptions): while
the twin is down or reconnecting, the broker keeps every QoS 1 message for it (alarms, state,
births, command results), so nothing that matters is lost across a restart. QoS 1 messages are
acknowledged to the broker only after they are applied (paho's manual acknowledgement), so a twin
that crashes with messages received but not yet processed gets them again; repeats are dropped
by sequence number. The broker limits unacknowledged messages in flight (Mosquitto's
``max_inflight_messages``), which is the ingest's natural back-pressure. The client's
incoming queue is unbounded (aiomqtt's bounded queue would drop silently); instead, when the
backlog passes :data:`SHED_BACKLOG`, telemetry samples are shed and counted, never anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Final

import aiomqtt

from twin.contract.topics import Channel, subscription
from twin.mqtt_endpoint import MqttEndpoint
from twin.service.twin_service import TwinService

log = logging.getLogger(__name__)

BATCH: Final = 500
"""Messages processed between yields to the event loop when a backlog is being worked off."""

DRAIN_ON_STOP_S: Final = 2.0
"""On a clean stop, how long the twin keeps processing what it already received."""

SHED_BACKLOG: Final = 50_000
"""Incoming messages waiting at which telemetry starts being shed (a minute of a 1,000 msg/s fleet)."""

RECONNECT_DELAYS_S: Final = (0.2, 0.5, 1.0, 2.0, 5.0)


async def run_link(
    service: TwinService,
    endpoint: MqttEndpoint,
    stop: asyncio.Event,
    *,
    sites: list[str] | None = None,
    client_id: str = "pumptwin-twin",
    connected: asyncio.Event | None = None,
) -> None:
    """Stay connected until ``stop``; reconnect with back-off when the broker goes away."""
    attempt = 0
    wake = asyncio.Event()
    service.on_outbound = wake.set
    while not stop.is_set():
        try:
            inboxes: list[asyncio.Queue[aiomqtt.Message]] = []
            client = aiomqtt.Client(
                endpoint.host,
                endpoint.port,
                username=endpoint.username,
                password=endpoint.password,
                identifier=client_id,
                clean_session=False,
                keepalive=30,
                tls_context=endpoint.tls_context(),
                max_queued_incoming_messages=0,
                queue_type=_inbox_type(inboxes),
                timeout=10,
            )
            # QoS 1 messages are acknowledged after they are applied, not on receipt (see _process)
            client._client.manual_ack_set(True)  # private: aiomqtt 2.x does not expose paho's manual ack
            async with client:
                # everything under the root (per owned site), so that garbage published there is
                # seen and counted too; the service ignores the cmd channel (our own commands)
                filters = [subscription(site=None if site == "+" else site) for site in sites or ["+"]]
                for f in filters:
                    await client.subscribe(f, qos=1)
                attempt = 0
                log.info("twin connected to %s", endpoint.url)
                if connected is not None:
                    connected.set()
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(_consume(service, client, inboxes[0] if inboxes else None), name="twin-consume")
                    tasks.create_task(_publish(service, client, wake), name="twin-publish")
                    tasks.create_task(_until(stop, service, client), name="twin-stop")
        except* aiomqtt.MqttError as group:
            if connected is not None:
                connected.clear()
            log.warning("twin lost the broker: %s", group.exceptions[0])
        except* _Stop:
            stop.set()
        if stop.is_set():
            return
        await asyncio.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
        attempt += 1


class _Stop(Exception):
    pass


async def _until(stop: asyncio.Event, service: TwinService, client: aiomqtt.Client) -> None:
    """On a clean stop: process (and acknowledge) what was already received, for at most
    :data:`DRAIN_ON_STOP_S`, then leave. The subscriptions stay in the persistent session, so the
    broker keeps what arrives from now on for the next start."""
    await stop.wait()
    messages = client.messages
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_ON_STOP_S):
            while len(messages) > 0:
                _process(service, client, await anext(messages))
    raise _Stop


def _process(service: TwinService, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    raw = message.payload
    service.handle(message.topic.value, bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw).encode())
    if message.qos > 0:
        # acknowledged only now that it is applied (and its alarm transitions journaled): a twin
        # that dies before this line gets the message again from the broker
        client._client.ack(message.mid, message.qos)  # private, as above


def _inbox_type(holder: list[asyncio.Queue[aiomqtt.Message]]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue (its public ``queue_type`` option), remembered by the link."""

    class Inbox(asyncio.Queue[aiomqtt.Message]):
        """Also stamps each message's arrival, so the twin can say how long messages wait."""

        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize)
            self.arrivals: deque[float] = deque()
            self.last_wait_s = 0.0
            holder.append(self)

        def _put(self, item: aiomqtt.Message) -> None:
            self.arrivals.append(time.monotonic())
            super()._put(item)

        def _get(self) -> aiomqtt.Message:
            if self.arrivals:
                self.last_wait_s = time.monotonic() - self.arrivals.popleft()
            item: aiomqtt.Message = super()._get()
            return item

    return Inbox


async def _consume(service: TwinService, client: aiomqtt.Client, inbox: asyncio.Queue[aiomqtt.Message] | None) -> None:
    """Take messages as they come; whatever queued up behind one is taken in the same turn, without
    a task per message (aiomqtt's iterator spawns one each time), yielding to the loop every
    :data:`BATCH` messages so the API and the publisher stay responsive."""
    messages = client.messages
    telemetry_suffix = "/" + Channel.TELEMETRY.value
    async for first in messages:
        message: aiomqtt.Message | None = first
        taken = 0
        while message is not None:
            backlog = len(messages)
            if backlog > SHED_BACKLOG and message.qos == 0 and message.topic.value.endswith(telemetry_suffix):
                service.metrics.telemetry_shed.inc()
            else:
                _process(service, client, message)
            taken += 1
            message = inbox.get_nowait() if inbox is not None and not inbox.empty() else None
            if message is not None and taken % BATCH == 0:
                await asyncio.sleep(0)
        service.metrics.backlog.set(len(messages))
        if inbox is not None:
            service.metrics.lag.set(getattr(inbox, "last_wait_s", 0.0))


async def _publish(service: TwinService, client: aiomqtt.Client, wake: asyncio.Event) -> None:
    while True:
        while service.outbound:
            out = service.outbound[0]
            await client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
            service.outbound.popleft()  # only after the broker took it
        wake.clear()
        await wake.wait()


async def run_clock(service: TwinService, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """Call :meth:`TwinService.tick` every ``every_s`` until ``stop``."""
    while not stop.is_set():
        try:
            service.tick()
        except Exception:
            log.exception("tick failed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stop.wait()
