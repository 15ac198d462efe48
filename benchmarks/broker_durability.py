"""Benchmark: what saving on changes costs the broker. The shipped ``broker/mosquitto.conf``
(``autosave_on_changes true``, ``autosave_interval 1``: the database is saved in every loop pass that
changed it) against the same file with the old ``autosave_interval 60`` (seconds), same run, same
machine, on a real Mosquitto.

The database a save rewrites holds the fleet's retained messages: ``--devices`` retained states
(~1.6 KB each, as the contract's example) are published first. Then ``--messages`` QoS 1 alarm events
go to the twin's persistent session, measured two ways:

* **queued**: the twin is away, every message is queued for it (each one a change: the worst case);
  the figure is how fast the broker acknowledges them to the publisher;
* **online**: the twin is connected and acknowledges as it reads (messages in flight are not
  changes, but the window's overflow is); the figure is how fast the twin receives them.

Prints one JSON line: the rates with both settings and their ratios (new / old).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.drills.conftest import BROKER_DIR
from tests.drills.rig import FLEET_ACCOUNT, SITE, TWIN_ACCOUNT
from tests.harness.servers import Mosquitto
from twin.broker_accounts import BrokerAccounts
from twin.contract import examples
from twin.contract.codec import encode
from twin.contract.topics import Channel, build_topic

OLD = "autosave_interval 60\n"
NEW_LINES = ("autosave_on_changes true", "autosave_interval 1")


def _config(workdir: Path, *, new: bool) -> Path:
    text = (BROKER_DIR / "mosquitto.conf").read_text()
    for line in NEW_LINES:
        assert f"\n{line}\n" in text, f"broker/mosquitto.conf no longer says {line!r}"
    if not new:
        text = text.replace(f"\n{NEW_LINES[0]}\n", "\n").replace(f"\n{NEW_LINES[1]}\n", f"\n{OLD}")
    path = workdir / "variant.conf"
    path.write_text(text)
    return path


def _client(port: int, client_id: str, user: str, password: str, *, clean: bool, on_message: Any = None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    if on_message is not None:  # before the connection: a queued message may come at once
        client.on_message = on_message
    client.username_pw_set(user, password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _publish_all(client: paho.Client, messages: list[tuple[str, bytes]], retain: bool) -> float:
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(60)
    return time.perf_counter() - start


def _run(new: bool, devices: int, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        work = Path(tmp)
        accounts = BrokerAccounts(password_file=work / "auth" / "passwd", acl_file=work / "auth" / "acl")
        accounts.add_simulation_sites([SITE])
        passwords = {a: accounts.issue_service(a).password or "" for a in (TWIN_ACCOUNT, FLEET_ACCOUNT)}
        broker = Mosquitto(
            workdir=work,
            config_file=_config(work, new=new),
            path_map={
                "/mosquitto/auth/": work / "auth",
                "/mosquitto/data/": work / "data",
                "/mosquitto/config/": BROKER_DIR,
            },
        )
        broker.start()
        try:
            fleet = _client(broker.port, "bench-fleet", FLEET_ACCOUNT, passwords[FLEET_ACCOUNT], clean=True)
            state = examples.state()
            retained = [
                (
                    build_topic(SITE, f"pump-{i:05d}", Channel.STATE),
                    encode(state.model_copy(update={"device_id": f"pump-{i:05d}"})),
                )
                for i in range(devices)
            ]
            _publish_all(fleet, retained, retain=True)
            alarm = examples.alarm()
            alarms = [
                (
                    build_topic(SITE, f"pump-{i % devices:05d}", Channel.ALARM),
                    encode(alarm.model_copy(update={"device_id": f"pump-{i % devices:05d}", "seq": i})),
                )
                for i in range(count)
            ]
            received = threading.Semaphore(0)
            twin = _client(broker.port, "bench-twin", TWIN_ACCOUNT, passwords[TWIN_ACCOUNT], clean=False)
            twin.subscribe(f"pumptwin/v1/{SITE}/+/alarm", qos=1)
            time.sleep(0.5)
            twin.disconnect()  # the session stays: everything from now on is queued for it
            twin.loop_stop()
            time.sleep(0.3)
            queued_s = _publish_all(fleet, alarms, retain=False)
            twin = _client(
                broker.port,
                "bench-twin",
                TWIN_ACCOUNT,
                passwords[TWIN_ACCOUNT],
                clean=False,
                on_message=lambda *_: received.release(),
            )
            for _ in range(count):  # drain what was queued
                if not received.acquire(timeout=60):
                    raise RuntimeError("the queued messages did not all arrive")
            start = time.perf_counter()
            _publish_all(fleet, alarms, retain=False)
            for _ in range(count):
                if not received.acquire(timeout=60):
                    raise RuntimeError("the online messages did not all arrive")
            online_s = time.perf_counter() - start
            for client in (twin, fleet):
                client.disconnect()
                client.loop_stop()
            db = work / "data" / "mosquitto.db"
            size = db.stat().st_size if db.exists() else 0
        finally:
            broker.stop()
    return {"queued_msg_s": count / queued_s, "online_msg_s": count / online_s, "db_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=2000, help="retained states in the broker's database")
    parser.add_argument("--messages", type=int, default=3000, help="QoS 1 alarm events per measurement")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each setting; the median is kept")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for _ in range(args.runs):
        for name in ("old", "new"):
            results[name].append(_run(name == "new", args.devices, args.messages))

    def median(name: str, key: str) -> float:
        values = sorted(r[key] for r in results[name])
        return values[len(values) // 2]

    out: dict[str, Any] = {"benchmark": "broker_durability", "devices": args.devices, "messages": args.messages}
    for key in ("queued_msg_s", "online_msg_s"):
        out[f"{key}_old"] = round(median("old", key))
        out[f"{key}_new"] = round(median("new", key))
        out[f"{key}_ratio"] = round(median("new", key) / median("old", key), 3)
    out["db_bytes"] = int(median("new", "db_bytes"))
    out["runs"] = {k: [{m: round(v) for m, v in r.items()} for r in rs] for k, rs in results.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
