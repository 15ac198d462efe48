"""``pumptwin serve`` never keeps answering while nothing is ingested: a link that dies of an
error it cannot recover from (not a broker disconnect) ends the process with status 1 and a
clear log line, and the broker keeps the messages for the next start."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness.servers import Mosquitto

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import sys
    from twin.service import twin_service

    async def broken(self, batch):  # the ingest task dies of something that is not an MqttError
        raise RuntimeError("disk controller on fire")

    twin_service.TwinService.ingest = broken
    from twin.cli import app
    app(sys.argv[1:], prog_name="pumptwin")
    """
)


def test_a_link_that_dies_of_a_non_mqtt_error_ends_serve_with_status_1(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import asyncio

    import aiomqtt

    from tests.harness.mqtt import hostname_port
    from twin.contract import examples
    from twin.contract.codec import encode
    from twin.contract.topics import Channel, build_topic

    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "serve", "--mqtt", mosquitto.url, "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        async def publish() -> None:
            host, port = hostname_port(mosquitto.url)
            async with aiomqtt.Client(host, port) as client:
                for _ in range(100):  # until the twin is subscribed and takes one
                    await client.publish(
                        build_topic(examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE, Channel.BIRTH),
                        encode(examples.birth()),
                        qos=1,
                    )
                    if process.poll() is not None:
                        return
                    await asyncio.sleep(0.2)

        asyncio.run(publish())
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, (out, err)
    assert "task twin-mqtt failed" in err
    assert "disk controller on fire" in err
    assert "the twin stopped because a task failed" in err
