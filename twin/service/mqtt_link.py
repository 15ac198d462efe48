"""The twin's MQTT connection: subscribe to the contract, feed the service, publish its commands.

One persistent session (``clean_session=False``, a stable client id, QoS 1 subscriptions): while
the twin is down or reconnecting, the broker keeps every QoS 1 message for it (alarms, state,
births, command results), so nothing that matters is lost across a restart. The client's
incoming queue is unbounded (aiomqtt's bounded queue would drop silently); instead, when the
backlog passes :data:`SHED_BACKLOG`, telemetry samples are shed and counted, never anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import aiomqtt

from twin.contract.topics import Channel, subscription
from twin.mqtt_endpoint import MqttEndpoint
from twin.service.twin_service import TwinService

log = logging.getLogger(__name__)

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
            async with aiomqtt.Client(
                endpoint.host,
                endpoint.port,
                username=endpoint.username,
                password=endpoint.password,
                identifier=client_id,
                clean_session=False,
                keepalive=30,
                tls_context=endpoint.tls_context(),
                max_queued_incoming_messages=0,
                timeout=10,
            ) as client:
                # everything under the root (per owned site), so that garbage published there is
                # seen and counted too; the service ignores the cmd channel (our own commands)
                for site in sites or ["+"]:
                    await client.subscribe(subscription(site=None if site == "+" else site), qos=1)
                attempt = 0
                log.info("twin connected to %s", endpoint.url)
                if connected is not None:
                    connected.set()
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(_consume(service, client), name="twin-consume")
                    tasks.create_task(_publish(service, client, wake), name="twin-publish")
                    tasks.create_task(_until(stop), name="twin-stop")
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


async def _until(stop: asyncio.Event) -> None:
    await stop.wait()
    raise _Stop


async def _consume(service: TwinService, client: aiomqtt.Client) -> None:
    messages = client.messages
    telemetry_suffix = "/" + Channel.TELEMETRY.value
    async for message in messages:
        topic = message.topic.value
        backlog = len(messages)
        service.metrics.backlog.set(backlog)
        if backlog > SHED_BACKLOG and topic.endswith(telemetry_suffix):
            service.metrics.telemetry_shed.inc()
            continue
        raw = message.payload
        service.handle(topic, bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw).encode())


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
