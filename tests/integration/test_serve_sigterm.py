"""``pumptwin serve`` stops the clean way on SIGTERM (what ``docker stop``, systemd and Kubernetes
send): it exits with status 0 after its shutdown, and every device it mirrors is snapshotted with
the last state it applied. Before, Python's default ended the process on the spot: no drain, no
final snapshots (found by the InfluxDB drill, tests/drills/test_influx_down.py)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.servers import Mosquitto

pytestmark = pytest.mark.integration


def test_sigterm_stops_serve_cleanly_with_every_device_snapshotted(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from twin.contract import examples
    from twin.contract.codec import encode
    from twin.contract.topics import Channel, build_topic

    pumptwin = Path(sys.executable).with_name("pumptwin")
    data = tmp_path / "data"
    log = (tmp_path / "twin.log").open("wb")
    process = subprocess.Popen(
        [str(pumptwin), "serve", "--mqtt", mosquitto.url, "--port", "0", "--data-dir", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while b"twin service:" not in (tmp_path / "twin.log").read_bytes():
            assert process.poll() is None, (tmp_path / "twin.log").read_text()
            assert time.monotonic() < deadline, "pumptwin serve did not come up"
            time.sleep(0.05)
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="sigterm-pump")
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        site, device = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
        client.publish(build_topic(site, device, Channel.BIRTH), encode(examples.birth()), qos=1).wait_for_publish(5)
        state = examples.state()
        client.publish(build_topic(site, device, Channel.STATE), encode(state), qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        process.send_signal(signal.SIGTERM)  # at once: the state may not be in a snapshot yet
        assert process.wait(timeout=30) == 0, (tmp_path / "twin.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    db = sqlite3.connect(data / "journal.sqlite")
    try:
        rows = [
            json.loads(p) for (p,) in db.execute("SELECT payload FROM twin_snapshot WHERE device_id = ?", (device,))
        ]
    finally:
        db.close()
    assert len(rows) == 1
    assert rows[0]["reported"]["seq"] == state.seq, rows
