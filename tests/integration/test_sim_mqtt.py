"""The simulator end to end on a real Mosquitto: 50 pumps, an independent subscriber, commands,
and a broker restart in the middle of the run that loses no alarm event."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime

import aiomqtt
import pytest

from tests.harness.mqtt import Collector, hostname_port, persistent_collecting
from tests.harness.servers import Mosquitto
from twin.contract.codec import decode_clock, decode_device_message, encode
from twin.contract.messages import (
    AlarmEvent,
    Birth,
    Command,
    CommandResult,
    CommandStatus,
    DeviceStatus,
    Drug,
    InfusionMode,
    Program,
    RefillAction,
    ReprogramAction,
    State,
    StatusState,
    Telemetry,
)
from twin.contract.topics import Channel, build_topic, parse_topic, subscription
from twin.mqtt_endpoint import MqttEndpoint
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.driver import SimDriver
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation
from twin.sim.watch import watch

pytestmark = pytest.mark.integration

EPOCH = datetime(2026, 2, 1, tzinfo=UTC)
SPEED = 3600.0  # an hour of pump time per second


def _fleet() -> FleetSimulation:
    specs = generate_fleet(50, seed=11, start=EPOCH)
    # pump i reaches its low-reservoir threshold about i/2 simulated hours in: a steady stream of alarms
    specs = [
        s.model_copy(
            update={"reservoir_ml": s.low_reservoir_threshold_ml + s.mean_rate_ml_per_day * (0.2 + i / 2) / 24}
        )
        for i, s in enumerate(specs)
    ]
    return FleetSimulation(
        specs, epoch=EPOCH, seed=11, sink=lambda *_: None, telemetry_interval_s=SPEED * 2, clinic_refills=False
    )


def _decoded(collector: Collector) -> list[object]:
    out = []
    for m in collector.messages:
        address = parse_topic(m.topic)
        if address.channel is Channel.CLOCK:
            out.append(decode_clock(address, m.payload))
        elif address.channel is not Channel.CMD:
            out.append(decode_device_message(address, m.payload))
    return out


async def _send(url: str, site: str, command: Command) -> None:
    host, port = hostname_port(url)
    async with aiomqtt.Client(host, port) as client:
        await client.publish(build_topic(site, command.device_id, Channel.CMD), encode(command), qos=1)


async def test_fifty_pumps_publish_valid_messages_and_obey_commands(mosquitto: Mosquitto) -> None:
    sim = _fleet()
    driver = SimDriver(sim, MqttEndpoint.parse(mosquitto.url), speed=SPEED)
    async with persistent_collecting(mosquitto.url, subscription(), identifier="e2e-observer") as seen:
        runner = asyncio.create_task(driver.run())
        try:
            await seen.wait_for(lambda ms: len(seen.on("/birth")) >= 50, timeout=30)
            await seen.wait_for(lambda ms: len(seen.on("/alarm")) >= 5 and len(seen.on("/telemetry")) >= 50, timeout=60)
            target = "pump-0001"
            site = sim.sites[target]
            refill = Command(
                command_id="e2e-refill",
                device_id=target,
                issued_at=EPOCH,
                actor="test",
                action=RefillAction(volume_ml=19.5, drug=Drug.MORPHINE, concentration_mg_per_ml=10.0),
            )
            program = Program(mode=InfusionMode.CONTINUOUS, rate_ml_per_day=0.42)
            reprogram = Command(
                command_id="e2e-reprogram",
                device_id=target,
                issued_at=EPOCH,
                actor="test",
                action=ReprogramAction(program=program),
            )
            await _send(mosquitto.url, site, refill)
            await _send(mosquitto.url, site, reprogram)

            def answered(ms: object) -> bool:
                ids = {r.command_id for r in _decoded(seen) if isinstance(r, CommandResult)}
                return {"e2e-refill", "e2e-reprogram"} <= ids

            await seen.wait_for(answered, timeout=30)
        finally:
            driver.stop()
            await runner
        await seen.wait_for(
            lambda ms: (
                len(
                    {
                        m.device_id
                        for m in _decoded(seen)
                        if isinstance(m, DeviceStatus) and m.state is StatusState.OFFLINE
                    }
                )
                >= 50
            ),
            timeout=20,
        )
    messages = _decoded(seen)
    kinds = Counter(type(m).__name__ for m in messages)
    assert kinds["Birth"] == 50
    assert kinds["State"] >= 50
    assert kinds["Telemetry"] >= 50
    assert kinds["AlarmEvent"] >= 5
    assert all(m.simulated for m in messages if isinstance(m, Birth))
    results = {m.command_id: m for m in messages if isinstance(m, CommandResult)}
    assert results["e2e-refill"].status is CommandStatus.APPLIED
    assert results["e2e-reprogram"].status is CommandStatus.APPLIED
    assert "measured_residual_ml" in results["e2e-refill"].details
    states = [m for m in messages if isinstance(m, State) and m.device_id == "pump-0001"]
    after_refill = [s for s in states if s.last_refill is not None and s.last_refill.volume_added_ml == 19.5]
    assert after_refill, "the refill shows in the next state"
    assert after_refill[0].drug is Drug.MORPHINE
    assert states[-1].program == program, "the reprogram shows in the last state"
    # the clean shutdown leaves every pump offline (retained)
    offline = [m for m in messages if isinstance(m, DeviceStatus) and m.state is StatusState.OFFLINE]
    assert len({m.device_id for m in offline}) == 50
    tele = [m for m in messages if isinstance(m, Telemetry)]
    assert all(m.sim_truth is not None for m in tele)


async def test_broker_restart_mid_run_loses_no_alarm_event(mosquitto: Mosquitto) -> None:
    sim = _fleet()
    driver = SimDriver(sim, MqttEndpoint.parse(mosquitto.url), speed=SPEED)
    produced: list[AlarmEvent] = []
    forward = sim.sink

    def spy(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        if isinstance(outgoing.message, AlarmEvent):
            produced.append(outgoing.message)
        forward(device, outgoing, t)

    async with persistent_collecting(mosquitto.url, subscription(Channel.ALARM), identifier="restart-observer") as seen:
        sim.sink = spy
        runner = asyncio.create_task(driver.run())
        try:
            await seen.wait_for(lambda ms: len(ms) >= 3, timeout=60)
            before = len(produced)
            mosquitto.stop()  # clean stop: it saves retained messages and persistent sessions
            await asyncio.sleep(3)  # three simulated hours of pumps (and alarms) with no broker
            mosquitto.start()
            await seen.wait_for(lambda ms: len(produced) > before + 3 and len(ms) >= len(produced), timeout=90)
        finally:
            driver.stop()
            with contextlib.suppress(Exception):
                await runner
        await asyncio.sleep(0.5)
    assert driver.stats.connection_losses >= 50
    received = {
        (m.device_id, m.alarm_id, m.event)
        for m in (
            decode_device_message(parse_topic(r.topic), r.payload)
            for r in seen.messages
            if parse_topic(r.topic).channel is not Channel.CLOCK
        )
        if isinstance(m, AlarmEvent)
    }
    expected = {(a.device_id, a.alarm_id, a.event) for a in produced}
    assert expected <= received, f"lost alarm events: {sorted(expected - received)[:5]}"
    assert len(expected) > 3


async def test_the_watch_view_prints_events_and_passes_over_site_clocks(mosquitto: Mosquitto) -> None:
    """``pumptwin demo``'s live view: births and alarms printed, a site's clock counted and not
    reported as a rejected message (it once printed a "rejected .../clock" line per clock tick)."""
    lines: list[str] = []
    counts: Counter[str] = Counter()
    sim = _fleet()
    driver = SimDriver(sim, MqttEndpoint.parse(mosquitto.url), speed=SPEED)
    viewer = asyncio.create_task(watch(MqttEndpoint.parse(mosquitto.url), lines.append, counts=counts))
    await asyncio.sleep(0.5)
    runner = asyncio.create_task(driver.run())
    try:
        for _ in range(300):
            if counts["clock"] >= 3 and sum("ALARM" in line for line in lines) >= 1:
                break
            await asyncio.sleep(0.1)
    finally:
        driver.stop()
        await runner
        viewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await viewer
    assert counts["clock"] >= 3, counts
    assert counts["birth"] == 50, counts
    assert any(" birth " in line for line in lines)
    assert any("ALARM" in line for line in lines)
    assert counts["rejected"] == 0, [line for line in lines if line.startswith("rejected")][:3]
