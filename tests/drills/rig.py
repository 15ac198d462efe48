"""The drill rig: the shipped broker configuration on a real Mosquitto, a real influxd, ``pumptwin
serve`` in its own process, and a publisher sending a generated fleet's contract messages at a
steady rate, each one entered in the :class:`~tests.drills.ledger.Ledger`.

The fleet is generated, not simulated: every device's messages have a known channel, session and
sequence number, alarms alternate raise and clear (one code at a time, rotating), and every state
lists the alarm active at its sequence number, so the twin's reconciliation agrees with the events
and each published alarm event makes exactly one lifecycle transition. The publisher is one paho
client (``simulator`` account, persistent session, QoS per the contract) in its own thread: a
QoS 1 message published while the broker is away waits in it and goes out when the broker is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.drills.ledger import Ledger, Reckoning, Sent
from tests.drills.twin_process import TwinProcess
from tests.harness.servers import Influxd, Mosquitto
from twin.contract import examples
from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode
from twin.contract.codec import CHANNELS, encode
from twin.contract.messages import AlarmEvent, AlarmEventType, WireModel
from twin.contract.topics import Channel, build_topic

SITE = "sim-drill"
DATABASE = "drill"
TWIN_ACCOUNT = "twin"
FLEET_ACCOUNT = "simulator"

CODES = (AlarmCode.RESERVOIR_LOW, AlarmCode.MOTOR_STALL, AlarmCode.REFILL_REMINDER, AlarmCode.MEMORY_ERROR)
"""The codes the generated alarms rotate through (a device has at most one active at a time)."""


@dataclass
class DrillDevice:
    """One generated pump: its sequence counter and the alarm it has active."""

    device_id: str
    session: int = 1
    seq: int = 0
    rounds: int = 0
    alarms: int = 0
    active: AlarmEvent | None = None

    def birth(self) -> WireModel:
        self.seq = 0
        return examples.birth().model_copy(
            update={"device_id": self.device_id, "device_time": _now(), "session": self.session, "seq": 0}
        )

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def telemetry(self) -> WireModel:
        return examples.telemetry().model_copy(
            update={"device_id": self.device_id, "device_time": _now(), "session": self.session, "seq": self.next_seq()}
        )

    def state(self) -> WireModel:
        return examples.state().model_copy(
            update={
                "device_id": self.device_id,
                "device_time": _now(),
                "session": self.session,
                "seq": self.next_seq(),
                "active_alarms": [self.active.code] if self.active is not None else [],
            }
        )

    def alarm(self) -> AlarmEvent:
        """The next alarm event: the active alarm's clear, or the raise of the next code."""
        now = _now()
        if self.active is not None:
            event = self.active.model_copy(
                update={"event": AlarmEventType.CLEARED, "device_time": now, "seq": self.next_seq()}
            )
            self.active = None
            return event
        code = CODES[self.alarms % len(CODES)]
        spec = ALARM_CATALOGUE[code]
        self.alarms += 1
        event = AlarmEvent(
            device_id=self.device_id,
            device_time=now,
            session=self.session,
            seq=self.next_seq(),
            alarm_id=f"{self.device_id}-{code.value}-{self.alarms}",
            code=code,
            event=AlarmEventType.RAISED,
            device_class=spec.device_class,
            priority=spec.priority,
            raised_at=now,
            message=f"drill alarm {self.alarms}",
        )
        self.active = event
        return event

    def round(self, state_every: int, alarm_every: int) -> list[tuple[Channel, WireModel]]:
        """One round of this device: a telemetry sample, and now and then an alarm event and a state."""
        self.rounds += 1
        out: list[tuple[Channel, WireModel]] = [(Channel.TELEMETRY, self.telemetry())]
        if self.rounds % alarm_every == 0:
            out.append((Channel.ALARM, self.alarm()))
        if self.rounds % state_every == 0:
            out.append((Channel.STATE, self.state()))
        return out


def _now() -> datetime:
    return datetime.now(UTC)


class FleetPublisher:
    """The generated fleet's one MQTT connection, and the thread that publishes at a steady rate."""

    def __init__(
        self,
        broker: Mosquitto,
        password: str,
        ledger: Ledger,
        devices: int,
        *,
        state_every: int = 10,
        alarm_every: int = 7,
    ) -> None:
        self.ledger = ledger
        self.devices = [DrillDevice(f"drill-{i:03d}") for i in range(devices)]
        self.state_every = state_every
        self.alarm_every = alarm_every
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="drill-fleet", clean_session=False)
        self.client.username_pw_set(FLEET_ACCOUNT, password)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 1.0)
        self.client.connect_async("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.rate = 0.0
        self.sent_rounds = 0
        self.started_at = 0.0
        self.elapsed = 0.0

    def wait_connected(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError("the drill fleet could not connect to the broker")
            time.sleep(0.02)

    def publish(self, channel: Channel, message: WireModel) -> None:
        spec = CHANNELS[channel]
        topic = build_topic(SITE, message.device_id, channel)  # type: ignore[attr-defined]
        with self._lock:
            info = self.client.publish(topic, encode(message), qos=spec.qos, retain=spec.retain)
        fields: dict[str, Any] = {}
        if isinstance(message, AlarmEvent):
            fields = {"alarm_id": message.alarm_id, "event": message.event.value, "code": message.code.value}
        self.ledger.add(
            Sent(message.device_id, channel.value, message.session, message.seq, **fields),  # type: ignore[attr-defined]
            info if spec.qos > 0 else None,
        )

    def births(self) -> None:
        for device in self.devices:
            self.publish(Channel.BIRTH, device.birth())
            self.publish(Channel.STATE, device.state())

    def rounds(self, n: int) -> int:
        """``n`` rounds of every device, as fast as they go; returns the messages published."""
        count = 0
        for _ in range(n):
            for device in self.devices:
                for channel, message in device.round(self.state_every, self.alarm_every):
                    self.publish(channel, message)
                    count += 1
        return count

    def qos1_rounds(self, n: int) -> int:
        """``n`` QoS 1 messages (alarm events and states, alternating across the devices), no telemetry."""
        count = 0
        while count < n:
            for device in self.devices:
                if count >= n:
                    break
                message = device.alarm() if count % 2 == 0 else device.state()
                self.publish(Channel.ALARM if count % 2 == 0 else Channel.STATE, message)
                count += 1
        return count

    def start(self, rate: float) -> None:
        """Publish at ``rate`` messages a second (telemetry, states and alarms) until :meth:`stop`."""
        self.rate = rate
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="drill-fleet", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        per_round = len(self.devices) * (1 + 1 / self.alarm_every + 1 / self.state_every)
        start = time.monotonic()
        self.started_at = start
        published = 0.0
        while not self._stop.is_set():
            due = (time.monotonic() - start) * self.rate
            while published < due and not self._stop.is_set():
                published += self.rounds(1)
                self.sent_rounds += 1
            time.sleep(max(0.0, min(0.02, (published + per_round - due) / self.rate)))
        self.elapsed = time.monotonic() - start

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def achieved_rate(self) -> float:
        """Messages a second actually published by the last :meth:`start` run."""
        total = self.ledger.telemetry + len(self.ledger.published)
        return total / self.elapsed if self.elapsed else 0.0

    def wait_taken(self, timeout_s: float = 60.0) -> None:
        """Until the broker acknowledged every QoS 1 message published so far."""
        deadline = time.monotonic() + timeout_s
        while self.ledger.waiting():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.ledger.waiting()} QoS 1 messages not taken by the broker")
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Rig:
    """One drill's processes and ledger (made by the ``rig`` fixture, torn down after the test)."""

    name: str
    broker: Mosquitto
    influxd: Influxd
    twin: TwinProcess
    fleet: FleetPublisher
    ledger: Ledger
    workdir: Path
    notes: dict[str, Any] = field(default_factory=dict)

    def until(self, predicate: Callable[[], bool], what: str, timeout_s: float = 60.0, every_s: float = 0.1) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\ntwin log:\n{self.twin.log_tail()}")
            time.sleep(every_s)

    def twin_ok(self) -> bool:
        try:
            return self.twin.running and self.twin.health().get("status") == "ok"
        except OSError:
            return False

    def twin_caught_up(self) -> bool:
        """The twin acknowledged every QoS 1 message the broker took (its counter counts this
        process's acknowledgements only, so this is asked of a twin that ran through the end)."""
        try:
            return self.twin.metric("pumptwin_ingest_backlog") == 0 and self.twin.metric("pumptwin_unacknowledged") == 0
        except OSError:
            return False

    def settle(self, timeout_s: float = 90.0) -> None:
        """Wait for the end of a drill: every QoS 1 message taken by the broker, the twin healthy,
        its backlog empty, and its spool drained into InfluxDB (nothing left to send)."""
        self.fleet.wait_taken(timeout_s)
        self.until(self.twin_ok, "the twin to be healthy", timeout_s)
        deadline = time.monotonic() + timeout_s / 3
        while not self._influx_caught_up() and time.monotonic() < deadline:
            time.sleep(0.5)  # if it never catches up, the reckoning says what is missing
        stored, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 1.5 and time.monotonic() < deadline + 30:
            now = self._count("telemetry")  # the spool's last telemetry batches, sent after the states
            if now != stored:
                stored, stable_since = now, time.monotonic()
            time.sleep(0.3)

    def _count(self, measurement: str) -> int:
        result = self.influxd.query(f'SELECT count("seq") FROM "{measurement}"', db=DATABASE)
        series = result["results"][0].get("series", [])  # type: ignore[index, union-attr]
        return int(series[0]["values"][0][1]) if series else 0

    def _influx_caught_up(self) -> bool:
        taken = self.ledger.taken()
        want = sum(1 for s in taken if s.channel == "state")
        return self._count("state") >= want and self.twin.metric("pumptwin_ingest_backlog") == 0

    def reckon(self, **notes: Any) -> Reckoning:
        """Stop the twin cleanly (its snapshots are flushed) and count."""
        self.fleet.stop()
        self.twin.stop()
        reckoning = self.ledger.reckon(self.name, self.twin.journal, self.influxd, DATABASE, **{**self.notes, **notes})
        reckoning.record()
        return reckoning
