"""The live stream over real HTTP (uvicorn) on a real Mosquitto: it needs a session, and it ends
when its session does (the re-check interval is shortened here so the test does not wait 30 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.servers import Mosquitto
from twin.api import app as app_module
from twin.app.serve import running_twin
from twin.mqtt_endpoint import MqttEndpoint
from twin.roles import Role
from twin.settings import Settings

pytestmark = pytest.mark.integration


async def test_the_stream_needs_a_session_and_ends_after_logout(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "STREAM_SESSION_RECHECK_S", 0.2)
    settings = Settings()
    settings.data_dir = tmp_path
    settings.http.port = 0
    async with running_twin(
        settings, MqttEndpoint.parse(mosquitto.url), client_id="stream-test-twin", with_influx=False
    ) as twin:
        assert twin.users is not None
        add_accounts(twin.users)
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
