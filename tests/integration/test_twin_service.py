"""The twin service on a real Mosquitto: simulator to twin end to end, the HTTP API and live
stream, a hostile-payload corpus, and a restart in the middle of a run."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import pytest

from tests.harness.accounts import add_accounts, client_as
from tests.harness.mqtt import hostname_port
from tests.harness.servers import Mosquitto
from tests.harness.waiting import until
from twin.app.serve import RunningTwin, running_twin
from twin.contract import examples
from twin.contract.codec import encode
from twin.contract.messages import MAX_PAYLOAD_BYTES, AlarmEvent, AlarmEventType
from twin.contract.topics import Channel, build_topic
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.settings import Settings
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.driver import SimDriver
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation

pytestmark = pytest.mark.integration

EPOCH = datetime(2026, 4, 1, tzinfo=UTC)
SPEED = 3600.0


def _settings(data_dir: Path) -> Settings:
    settings = Settings()
    settings.data_dir = data_dir
    settings.http.port = 0
    settings.influx.url = None
    return settings


@contextlib.asynccontextmanager
async def _twin(mosquitto: Mosquitto, data_dir: Path) -> AsyncIterator[RunningTwin]:
    async with running_twin(_settings(data_dir), MqttEndpoint.parse(mosquitto.url), client_id="test-twin") as twin:
        async with asyncio.timeout(10):
            await twin.mqtt_connected.wait()
        assert twin.users is not None
        if not twin.users.all():  # a restarted twin keeps its accounts
            add_accounts(twin.users)
        yield twin


def _fleet(n: int = 30) -> FleetSimulation:
    specs = generate_fleet(n, seed=21, start=EPOCH)
    specs = [
        s.model_copy(
            update={"reservoir_ml": s.low_reservoir_threshold_ml + s.mean_rate_ml_per_day * (0.2 + i / 2) / 24}
        )
        for i, s in enumerate(specs)
    ]
    return FleetSimulation(
        specs, epoch=EPOCH, seed=21, sink=lambda *_: None, telemetry_interval_s=SPEED * 2, clinic_refills=True
    )


async def _until(predicate: Callable[[], bool], limit_s: float = 30.0) -> None:
    await until(predicate, timeout_s=limit_s)


async def _healthy(api: httpx.AsyncClient, limit_s: float = 20.0) -> dict:
    """/healthz once it says ok (200). On a loaded 2-core machine the clock loop may lag past its
    1 s bound for a moment and /healthz rightly says degraded then; what the tests assert is that
    the twin is healthy, not that it never lagged. Fails with the last answer."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        answer = await api.get("/healthz")
        if answer.status_code == 200 or asyncio.get_running_loop().time() > deadline:
            assert answer.status_code == 200, answer.text
            return answer.json()
        await asyncio.sleep(0.2)


def _spy(sim: FleetSimulation, produced: list[AlarmEvent]) -> None:
    forward = sim.sink

    def spy(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        if isinstance(outgoing.message, AlarmEvent):
            produced.append(outgoing.message)
        forward(device, outgoing, t)

    sim.sink = spy


async def test_simulator_to_twin_end_to_end_with_api_and_stream(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sim = _fleet()
    driver = SimDriver(sim, MqttEndpoint.parse(mosquitto.url), speed=SPEED)
    produced: list[AlarmEvent] = []
    async with _twin(mosquitto, tmp_path) as twin:
        stream_events: list[tuple[str, dict]] = []

        async def listen() -> None:
            async with (
                client_as(twin.url, Role.VIEWER, timeout=None) as client,
                client.stream("GET", "/api/stream") as response,
            ):
                event = None
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event:
                        stream_events.append((event, json.loads(line.split(":", 1)[1])))

        listener = asyncio.create_task(listen())
        _spy(sim, produced)
        runner = asyncio.create_task(driver.run())
        try:
            await _until(
                lambda: (
                    len(twin.service.fleet.devices) == 30
                    and all(t.reported for t in twin.service.fleet.devices.values())
                )
            )
            await _until(lambda: any(e == "alarm" for e, _ in stream_events))
            async with client_as(twin.url, Role.INSTRUCTOR) as api:
                devices = (await api.get("/api/devices")).json()
                assert len(devices) == 30
                assert {d["presence"] for d in devices} == {"online"}
                detail = (await api.get("/api/devices/pump-0001")).json()
                assert detail["reported"]["device_id"] == "pump-0001"
                assert detail["predicted"]["empty_at"] is not None
                assert detail["identity"]["simulated"] is True
                body = {
                    "action": {
                        "type": "refill",
                        "volume_ml": 18.0,
                        "drug": detail["reported"]["drug"],
                        "concentration_mg_per_ml": detail["reported"]["concentration_mg_per_ml"],
                    },
                }
                sent = await api.post("/api/devices/pump-0001/commands", json=body)
                assert sent.status_code == 202, sent.text
                command_id = sent.json()["command_id"]

                await _until(lambda: twin.service.fleet.commands[command_id].state.value == "applied")
                assert (await api.get(f"/api/commands/{command_id}")).json()["state"] == "applied"
                refilled = (await api.get("/api/devices/pump-0001")).json()
                assert refilled["reported"]["last_refill"]["volume_added_ml"] == 18.0
                alarms = (await api.get("/api/alarms")).json()
                assert alarms
                key = alarms[0]["key"]
                acked = await api.post(f"/api/alarms/{key}/acknowledge", json={})
                assert acked.status_code == 200, acked.text
                assert acked.json()["acknowledged_by"] == "instructor"  # the signed-in user, not a body field
                again = await api.post(f"/api/alarms/{key}/acknowledge", json={})
                assert again.status_code == 409
                assert (await api.post("/api/alarms/nope/x/acknowledge", json={})).status_code == 404
                journal = (await api.get(f"/api/alarms/{key}/journal")).json()
                assert [j["actor"] for j in journal][-1] == "instructor"
                assert (await api.get(f"/api/commands/{command_id}")).json()["actor"] == "instructor"
                metrics = (await api.get("/metrics")).text
                assert "pumptwin_messages_in_total" in metrics
                for name in ("pumptwin_processing_lag_seconds", "pumptwin_ingest_backlog", "pumptwin_active_alarms"):
                    assert name in metrics
                assert 'pumptwin_devices{presence="online"} 30.0' in metrics
                health = await _healthy(api)
                assert health["status"] == "ok", health
                assert health["parts"]["ingest"]["status"] == "ok"
                assert health["parts"]["ingest"]["detail"].startswith("connected to mqtt://")
                assert {p for p in health["parts"] if p.startswith("task:")} == {
                    "task:twin-mqtt",
                    "task:twin-clock",
                    "task:journal-checkpoints",
                    "task:escalator",
                    "task:twin-http",
                }
                openapi = (await api.get("/openapi.json")).json()
                assert "/api/devices/{device_id}/commands" in openapi["paths"]
        finally:
            driver.stop()
            await runner
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    kinds = Counter(e for e, _ in stream_events)
    assert kinds["device"] > 0
    assert kinds["alarm"] > 0
    assert kinds["command"] >= 2  # pending, then applied


def _hostile_corpus(site: str, device: str) -> list[tuple[str, bytes, str]]:
    good = json.loads(encode(examples.state().model_copy(update={"device_id": device})))
    state_topic = build_topic(site, device, Channel.STATE)
    return [
        (state_topic, b"{not json", "not_json"),
        (state_topic, b"\xff\xfe\x00garbage", "not_json"),
        (state_topic, b"[1,2,3]", "not_object"),
        (state_topic, json.dumps({**good, "contract_version": "9.9"}).encode(), "unknown_contract_version"),
        (state_topic, json.dumps({**good, "kind": "telemetry"}).encode(), "kind_mismatch"),
        (state_topic, json.dumps({**good, "reservoir_ml": -5}).encode(), "schema"),
        (state_topic, json.dumps({**good, "reservoir_ml": "NaN"}).encode(), "schema"),
        (state_topic, json.dumps({**good, "evil": "<script>"}).encode(), "schema"),
        (state_topic, json.dumps({**good, "device_id": "someone-else"}).encode(), "device_id_mismatch"),
        (state_topic, json.dumps({**good, "pad": "x" * (MAX_PAYLOAD_BYTES + 10)}).encode(), "too_large"),
        (f"pumptwin/v1/{site}/{device}/firmware", b"{}", "unknown_channel"),
        (f"pumptwin/v1/{site}/bad$id/state", b"{}", "invalid_id"),
        (f"pumptwin/v1//{device}/state", b"{}", "empty_id"),
    ]


async def test_hostile_payloads_are_counted_and_the_service_stays_up(mosquitto: Mosquitto, tmp_path: Path) -> None:
    site, device = examples.EXAMPLE_SITE, examples.EXAMPLE_DEVICE
    corpus = _hostile_corpus(site, device)
    async with _twin(mosquitto, tmp_path) as twin:
        host, port = hostname_port(mosquitto.url)
        async with aiomqtt.Client(host, port) as client:
            await client.publish(build_topic(site, device, Channel.BIRTH), encode(examples.birth()), qos=1)
            await client.publish(build_topic(site, device, Channel.STATE), encode(examples.state()), qos=1)
            for topic, payload, _ in corpus:
                await client.publish(topic, payload, qos=1)
            # a replay of the state: a duplicate, dropped
            await client.publish(build_topic(site, device, Channel.STATE), encode(examples.state()), qos=1)
            # and life goes on: the next valid message is applied
            await client.publish(build_topic(site, device, Channel.TELEMETRY), encode(examples.telemetry()), qos=1)
        service = twin.service
        await _until(lambda: service.twin_of(device) is not None and service.twin_of(device).telemetry is not None)
        expected = Counter(reason for _, _, reason in corpus)
        for reason, count in expected.items():
            assert service.reject_counts.get(reason, 0) == count, (reason, service.reject_counts)
        assert service.twin_of(device).counters.duplicates == 1
        assert service.twin_of(device).reported == examples.state()  # nothing hostile got in
        async with httpx.AsyncClient(base_url=twin.url) as api:
            await _healthy(api)
            metrics = (await api.get("/metrics")).text
        assert 'pumptwin_rejects_total{reason="schema"} 3.0' in metrics
        assert 'pumptwin_dropped_total{reason="duplicate"} 1.0' in metrics


async def test_restart_mid_run_loses_and_duplicates_no_alarm(mosquitto: Mosquitto, tmp_path: Path) -> None:
    sim = _fleet()
    driver = SimDriver(sim, MqttEndpoint.parse(mosquitto.url), speed=SPEED)
    produced: list[AlarmEvent] = []
    _spy(sim, produced)
    runner = None
    try:
        async with _twin(mosquitto, tmp_path) as twin:
            runner = asyncio.create_task(driver.run())
            await _until(lambda: len(twin.service.fleet.board.alarms) >= 3)
        before_restart = len(produced)
        await _until(lambda: len(produced) >= before_restart + 5)  # alarms while the twin is down
        async with _twin(mosquitto, tmp_path) as twin:
            await _until(lambda: len(produced) >= before_restart + 15)
            driver.stop()
            await runner
            runner = None
            await asyncio.sleep(1.0)
            journal = twin.service.store.journal.transitions()
    finally:
        if runner is not None:
            driver.stop()
            await runner
    # one alarm point per device and code; every raise and clear the pumps produced is in the
    # journal exactly once (as many occurrences as raised, as many ends as cleared)
    journal_raises = Counter(
        f"{t.device_id}/{t.code}" for t in journal if t.event in ("raise", "reraise") and t.actor == "device"
    )
    journal_clears = Counter(f"{t.device_id}/{t.code}" for t in journal if t.event == "clear" and t.actor == "device")
    produced_raises = Counter(f"{a.device_id}/{a.code.value}" for a in produced if a.event is AlarmEventType.RAISED)
    produced_clears = Counter(f"{a.device_id}/{a.code.value}" for a in produced if a.event is AlarmEventType.CLEARED)
    assert sum(produced_raises.values()) > 10
    assert journal_raises == produced_raises
    assert journal_clears == produced_clears
