"""Every contract message through a real Mosquitto, read back by an independent subscriber."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap

import aiomqtt
import pytest

from tests.harness.mqtt import collecting, hostname_port
from tests.harness.servers import Mosquitto
from twin.contract import examples
from twin.contract.codec import CHANNELS, decode_command, decode_device_message, encode
from twin.contract.messages import DeviceStatus, StatusReason, StatusState
from twin.contract.topics import Channel, build_topic, parse_topic, subscription

pytestmark = pytest.mark.integration

SITE = examples.EXAMPLE_SITE
DEVICE = examples.EXAMPLE_DEVICE
PUBLISHED = {
    Channel.BIRTH: examples.birth(),
    Channel.STATE: examples.state(),
    Channel.TELEMETRY: examples.telemetry(),
    Channel.ALARM: examples.alarm(),
    Channel.STATUS: examples.status_online(),
    Channel.CMD: examples.command(),
    Channel.CMD_RESULT: examples.command_result(),
}


async def _publish_all(url: str) -> None:
    host, port = hostname_port(url)
    async with aiomqtt.Client(host, port) as client:
        for channel, message in PUBLISHED.items():
            spec = CHANNELS[channel]
            await client.publish(build_topic(SITE, DEVICE, channel), encode(message), qos=spec.qos, retain=spec.retain)


async def test_every_message_passes_through_the_broker_and_validates(mosquitto: Mosquitto) -> None:
    async with collecting(mosquitto.url, subscription()) as live:
        await _publish_all(mosquitto.url)
        await live.wait_for(lambda ms: len(ms) >= len(PUBLISHED))
    assert len(live.messages) == len(PUBLISHED)
    for received in live.messages:
        address = parse_topic(received.topic)
        if address.channel is Channel.CMD:
            decoded = decode_command(address, received.payload)
        else:
            decoded = decode_device_message(address, received.payload)
        assert decoded == PUBLISHED[address.channel]
        assert received.retain is False  # live delivery is never flagged retained


async def test_birth_state_and_status_are_retained_for_late_subscribers(mosquitto: Mosquitto) -> None:
    await _publish_all(mosquitto.url)
    async with collecting(mosquitto.url, subscription()) as late:
        await late.wait_for(lambda ms: len(ms) >= 3)
        await asyncio.sleep(0.3)  # anything else would have arrived by now
    got = {parse_topic(m.topic).channel for m in late.messages}
    assert got == {Channel.BIRTH, Channel.STATE, Channel.STATUS}
    assert all(m.retain for m in late.messages)


async def test_retained_state_survives_a_broker_restart(mosquitto: Mosquitto) -> None:
    await _publish_all(mosquitto.url)
    await asyncio.sleep(1.5)  # autosave_interval 1 s
    mosquitto.restart()
    async with collecting(mosquitto.url, subscription(Channel.STATE)) as late:
        (received,) = await late.wait_for(lambda ms: len(ms) >= 1)
    assert decode_device_message(parse_topic(received.topic), received.payload) == examples.state()


DEVICE_WITH_WILL = textwrap.dedent(
    """
    import asyncio, sys
    import aiomqtt
    host, port, topic, will = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
    async def main():
        async with aiomqtt.Client(host, port, keepalive=5,
                                  will=aiomqtt.Will(topic, will, qos=1, retain=True)) as client:
            print("connected", flush=True)
            await asyncio.sleep(3600)
    asyncio.run(main())
    """
)


async def test_last_will_marks_a_crashed_device_offline(mosquitto: Mosquitto) -> None:
    host, port = hostname_port(mosquitto.url)
    will = examples.status_will()
    topic = build_topic(SITE, DEVICE, Channel.STATUS)
    device = subprocess.Popen(  # noqa: ASYNC220 - the device must be a separate process we can SIGKILL
        [sys.executable, "-c", DEVICE_WITH_WILL, host, str(port), topic, encode(will).decode()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert device.stdout is not None
        assert device.stdout.readline().strip() == "connected"
        async with collecting(mosquitto.url, subscription(Channel.STATUS)) as watcher:
            await asyncio.sleep(0.2)
            assert watcher.messages == []  # no will while the device lives
            device.send_signal(signal.SIGKILL)
            (received,) = await watcher.wait_for(lambda ms: len(ms) >= 1)
    finally:
        device.kill()
        device.wait()
        if device.stdout is not None:
            device.stdout.close()
    status = decode_device_message(parse_topic(received.topic), received.payload)
    assert isinstance(status, DeviceStatus)
    assert (status.state, status.reason, status.session) == (StatusState.OFFLINE, StatusReason.WILL, will.session)
    # and the will is retained: a late subscriber learns the device is offline
    async with collecting(mosquitto.url, subscription(Channel.STATUS)) as late:
        (retained,) = await late.wait_for(lambda ms: len(ms) >= 1)
    assert retained.retain
    assert retained.payload == received.payload


async def test_a_hostile_device_id_never_reaches_the_broker(mosquitto: Mosquitto) -> None:
    from twin.contract.topics import TopicError

    with pytest.raises(TopicError, match="not allowed in a topic level"):
        build_topic(SITE, "pump/#", Channel.STATE)
    # and a hostile topic published by someone else is refused by the parser on the way in
    host, port = hostname_port(mosquitto.url)
    async with collecting(mosquitto.url, "pumptwin/v1/#") as watcher:
        async with aiomqtt.Client(host, port) as client:
            await client.publish(f"pumptwin/v1/{SITE}/pump$evil/state", b"{}", qos=1)
        (received,) = await watcher.wait_for(lambda ms: len(ms) >= 1)
    with pytest.raises(TopicError) as caught:
        parse_topic(received.topic)
    assert caught.value.reason == "invalid_id"
