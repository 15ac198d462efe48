"""Publishing checked read-outs over MQTT, under the gateway's own broker account (the shell of the gateway).

One connection per batch. For every pump in the batch the gateway first reads the broker's retained
``birth`` (its device time is the interrogation the broker holds, its session the one the next read-out
follows: :func:`twin.gateway.publication.session_of`), then publishes the batch's read-outs of that pump oldest
first, each as :func:`~twin.gateway.publication.publications` lists them (QoS 1: :meth:`aiomqtt.Client.publish` returns once the broker acknowledged it), and
reads the retained birth back to confirm the broker kept it. A read-out older than the one the broker holds is
not published (``superseded``): its retained birth and state would replace newer facts for any twin that
starts afresh. Publishing the one the broker holds again is harmless (the twin drops every repeat) and is
what finishes a batch cut off half-way.

Why the read-back: under MQTT 3.1.1 a broker acknowledges a publish its ACL refuses and drops it, so only the
retained birth shows that the gateway's account may publish for the site (``pumptwin broker gateway-site``).
Reading a retained message has no "nothing there" answer in MQTT; the gateway subscribes to the births, then
subscribes once more: Mosquitto sends a subscription's retained messages right after its SUBACK and handles
one connection's packets in order, so when the second SUBACK is in, every retained birth of the first is
too. :data:`RETAINED_GRACE_S` covers a broker that does not keep that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

import aiomqtt

from twin.contract.codec import ContractError, decode_device_message
from twin.contract.messages import Birth
from twin.contract.topics import Channel, TopicError, build_topic, parse_topic
from twin.gateway.publication import publications, session_of
from twin.gateway.readout import Interrogation
from twin.mqtt_endpoint import NO_DELAY, MqttEndpoint

log = logging.getLogger(__name__)

RETAINED_GRACE_S: Final = 0.3
"""Extra wait for retained births after the ordering sentinel (see the module docstring)."""

CONNECT_TIMEOUT_S: Final = 10.0
"""Longest wait for the broker's answer to a connect, a subscribe or a publish."""


class GatewayError(RuntimeError):
    """The broker could not be used (unreachable, refused the login, or did not keep what was published)."""


class OutcomeStatus(StrEnum):
    PUBLISHED = "published"
    SUPERSEDED = "superseded"  # the broker holds a newer interrogation of this pump: nothing published


@dataclass(frozen=True, slots=True)
class Outcome:
    source: str
    site: str
    device_id: str
    interrogated_at: datetime
    session: int
    status: OutcomeStatus
    messages: int
    detail: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """A checked read-out and the file it came from."""

    source: str
    readout: Interrogation


@contextlib.asynccontextmanager
async def connected(endpoint: MqttEndpoint, *, client_id: str | None = None) -> AsyncIterator[aiomqtt.Client]:
    """An MQTT connection for one batch; raises :class:`GatewayError` if the broker cannot be used."""
    client = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        identifier=client_id or f"pumptwin-gateway-{uuid.uuid4().hex[:12]}",
        tls_context=endpoint.tls_context(),
        clean_session=True,
        timeout=CONNECT_TIMEOUT_S,
        max_queued_incoming_messages=0,
        socket_options=NO_DELAY,
    )
    try:
        async with client:
            yield client
    except aiomqtt.MqttError as exc:
        raise GatewayError(f"MQTT broker {endpoint.url}: {exc}") from None


async def retained_births(client: aiomqtt.Client, topics: Sequence[str]) -> dict[str, Birth]:
    """The retained birth on each of ``topics`` (a topic without one is absent)."""
    if not topics:
        return {}
    unique = sorted(set(topics))
    await client.subscribe([(t, 1) for t in unique])
    await client.subscribe(unique[0], qos=1)  # the ordering sentinel (module docstring)
    births: dict[str, Birth] = {}
    await asyncio.sleep(0)
    while True:
        try:
            async with asyncio.timeout(RETAINED_GRACE_S if len(client.messages) == 0 else None):
                message = await anext(aiter(client.messages))
        except TimeoutError:
            break
        topic = str(message.topic)
        if topic not in unique or not isinstance(message.payload, bytes | bytearray):
            continue
        try:
            birth = decode_device_message(parse_topic(topic), bytes(message.payload))
        except (ContractError, TopicError):
            continue  # not a birth the gateway can read: as if there were none
        if isinstance(birth, Birth) and (topic not in births or birth.session > births[topic].session):
            births[topic] = birth
    await client.unsubscribe(unique)
    return births


async def publish_readouts(
    endpoint: MqttEndpoint, batch: Sequence[Loaded], *, client_id: str | None = None
) -> list[Outcome]:
    """Publish ``batch`` (every read-out already checked), each pump's oldest first. Raises
    :class:`GatewayError` when the broker is unreachable or did not keep a birth (what was published
    before stays published, and publishing the batch again is harmless)."""
    ordered = sorted(batch, key=lambda item: (item.readout.site, item.readout.device_id, item.readout.interrogated_at))
    outcomes: list[Outcome] = []
    async with connected(endpoint, client_id=client_id) as client:
        births = [build_topic(i.readout.site, i.readout.device_id, Channel.BIRTH) for i in ordered]
        held = await retained_births(client, births)
        for item, birth_topic in zip(ordered, births, strict=True):
            readout = item.readout
            current = held.get(birth_topic)
            session = session_of(readout, current)
            if current is not None and current.device_time > readout.interrogated_at:
                outcomes.append(_outcome(item, OutcomeStatus.SUPERSEDED, 0, _superseded(current), session))
                continue
            messages = publications(readout, session)
            for message in messages:
                await client.publish(
                    message.topic, message.payload, qos=message.qos, retain=message.retain, timeout=CONNECT_TIMEOUT_S
                )
            kept = (await retained_births(client, [birth_topic])).get(birth_topic)
            if kept is None or kept.session != session:
                raise GatewayError(
                    f"{item.source}: the broker did not keep the birth of {readout.device_id} (holds session "
                    f"{kept.session if kept else None}, published {session}): may the gateway account publish for "
                    f"site {readout.site}? (pumptwin broker gateway-site {readout.site})"
                )
            held[birth_topic] = kept
            again = " again" if current is not None and current.session == session else ""
            detail = f"{len(messages)} messages{again} (session {session})"
            outcomes.append(_outcome(item, OutcomeStatus.PUBLISHED, len(messages), detail, session))
            log.info("published %s: %s interrogated %s", item.source, readout.device_id, readout.interrogated_at)
    return outcomes


def _superseded(held: Birth) -> str:
    return f"not published: the broker holds a newer interrogation of this pump ({held.device_time.isoformat()})"


def _outcome(item: Loaded, status: OutcomeStatus, messages: int, detail: str, session: int) -> Outcome:
    readout = item.readout
    return Outcome(
        source=item.source,
        site=readout.site,
        device_id=readout.device_id,
        interrogated_at=readout.interrogated_at,
        session=session,
        status=status,
        messages=messages,
        detail=detail,
    )
