"""A live view of what pumps publish: subscribes to the contract and prints a line per event.

Used by ``pumptwin demo`` and ``pumptwin watch`` so that a user sees the fleet working. It is a
plain contract consumer, like any third-party subscriber would be.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import aiomqtt

from twin.contract.codec import ContractError, decode_device_message
from twin.contract.messages import AlarmEvent, Birth, CommandResult, DeviceStatus
from twin.contract.topics import SITE_CHANNELS, Channel, TopicError, parse_topic, subscription
from twin.mqtt_endpoint import MqttEndpoint


async def watch(
    endpoint: MqttEndpoint,
    emit: Callable[[str], None],
    *,
    counts: Counter[str] | None = None,
    show_telemetry: bool = False,
) -> None:
    """Print births, status changes, alarms and command results as they arrive (until cancelled)."""
    counts = counts if counts is not None else Counter()
    async with aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        tls_context=endpoint.tls_context(),
    ) as client:
        await client.subscribe(subscription(), qos=1)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                address = parse_topic(str(message.topic))
                if address.channel is Channel.CMD or address.channel in SITE_CHANNELS:
                    # Commands go to pumps, and a site's clock is the simulation's, not an event.
                    counts[address.channel.value] += 1
                    continue
                decoded = decode_device_message(address, payload)
            except (TopicError, ContractError) as exc:
                counts["rejected"] += 1
                emit(f"rejected {message.topic}: {exc}")
                continue
            counts[address.channel.value] += 1
            stamp = decoded.device_time.strftime("%Y-%m-%d %H:%M")
            who = f"{address.site}/{address.device_id}"
            match decoded:
                case Birth():
                    emit(f"{stamp}  {who:<32} birth    {decoded.model}, {decoded.reservoir_capacity_ml:g} mL")
                case DeviceStatus():
                    emit(f"{stamp}  {who:<32} {decoded.state.value:<8} ({decoded.reason.value})")
                case AlarmEvent():
                    emit(
                        f"{stamp}  {who:<32} ALARM    {decoded.priority.value:<6} {decoded.event.value:<7} {decoded.message}"
                    )
                case CommandResult():
                    emit(
                        f"{stamp}  {who:<32} result   {decoded.command_id} {decoded.status.value} {decoded.reason or ''}"
                    )
                case _ if show_telemetry and address.channel is Channel.TELEMETRY:
                    emit(f"{stamp}  {who:<32} telemetry")
                case _:
                    pass
