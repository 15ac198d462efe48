"""The live stream over real HTTP (uvicorn) on a real Mosquitto: it needs a session, and it ends
when its session does (the re-check interval is shortened here so the test does not wait 30 s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.servers import Mosquitto
from twin.api import app as app_module
from twin.api import views
from twin.api.auth import STREAM_ENCODE_CHUNK
from twin.app.serve import RunningTwin, running_twin
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.service.events import Notice
from twin.settings import Settings

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _twin(mosquitto: Mosquitto, tmp_path: Path, client_id: str) -> AsyncIterator[RunningTwin]:
    """A running twin (no InfluxDB) on ``mosquitto``, with the test accounts."""
    settings = Settings()
    settings.data_dir = tmp_path
    settings.http.port = 0
    async with running_twin(
        settings, MqttEndpoint.parse(mosquitto.url), client_id=client_id, with_influx=False
    ) as twin:
        assert twin.users is not None
        add_accounts(twin.users)
        yield twin


async def test_the_stream_needs_a_session_and_ends_after_logout(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "STREAM_SESSION_RECHECK_S", 0.2)
    async with _twin(mosquitto, tmp_path, "stream-test-twin") as twin:
        async with httpx.AsyncClient(base_url=twin.url, timeout=10) as anonymous:
            assert (await anonymous.get("/api/stream")).status_code == 401
        async with httpx.AsyncClient(base_url=twin.url, timeout=None) as viewer:
            await sign_in(viewer, Role.VIEWER)
            seen: list[str] = []
            async with viewer.stream("GET", "/api/stream") as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                async with asyncio.timeout(10):
                    async for line in lines:
                        seen.append(line)
                        if line.startswith("event: hello"):
                            break
                async with httpx.AsyncClient(base_url=twin.url, timeout=10) as other:
                    other.cookies = viewer.cookies
                    assert (await other.post("/api/logout", json={})).status_code == 204
                async with asyncio.timeout(20):  # generous: the server ends the stream at its next re-check
                    async for line in lines:
                        seen.append(line)
            assert "event: hello" in seen
            assert (await viewer.get("/api/stream")).status_code == 401


async def test_an_alarm_goes_out_between_chunks_of_device_summaries(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A read's coalesced updates are encoded and written a chunk at a time, with a turn of the
    event loop between chunks: an alarm published meanwhile is written before the next chunk,
    not after a whole read's summaries (2-4 ms of encoding at 1,000 msg/s; BENCHMARKS.md)."""
    async with _twin(mosquitto, tmp_path, "stream-chunk-twin") as twin:
        service, loop = twin.service, asyncio.get_running_loop()
        hub, base = service.hub, views.stream_encoder(lambda: service.fleet, service.clock)
        encoded = [0]

        def encode(event: object) -> object:
            if isinstance(event, Notice) and event.kind == "bulk":
                encoded[0] += 1
                if encoded[0] == STREAM_ENCODE_CHUNK + 5:  # while the second chunk is encoded
                    loop.call_soon(hub.publish, Notice("urgent", {"n": 1}))
            return base(event)

        hub.set_encoder(encode)  # type: ignore[arg-type]
        bulk = 8 * STREAM_ENCODE_CHUNK
        kinds: list[str] = []
        async with httpx.AsyncClient(base_url=twin.url, timeout=None) as viewer:
            await sign_in(viewer, Role.VIEWER)
            async with viewer.stream("GET", "/api/stream") as stream:
                lines = stream.aiter_lines()
                async with asyncio.timeout(10):
                    async for line in lines:
                        if line.startswith("event: hello"):
                            break
                    for i in range(bulk):
                        hub.publish(Notice("bulk", {"i": i}, coalesce=str(i)))
                    async for line in lines:
                        if line.startswith("event: "):
                            kinds.append(line.removeprefix("event: "))
                            if len(kinds) == bulk + 1:
                                break
    assert kinds.count("bulk") == bulk
    assert kinds.index("urgent") == 2 * STREAM_ENCODE_CHUNK, kinds
