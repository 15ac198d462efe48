"""One device id at two sites (issue 17: two training sessions of one scenario run the same pump ids
on ``tr-<run1>.<site>`` and ``tr-<run2>.<site>``): the API lists both, the device page's reads and a
command given the site reach that site's pump, and the same calls without a site answer 409 naming
the sites, never one pump picked at random."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.harness.accounts import add_accounts, sign_in
from tests.harness.inproc import feed, new_service
from twin.api.app import create_app
from twin.contract import examples
from twin.contract.topics import Channel
from twin.roles import Role
from twin.service.twin_service import QueueOutbox, TwinService
from twin.settings import AuthSettings
from twin.store.users import UserStore

DEVICE = examples.EXAMPLE_DEVICE
RESERVOIR = {"tr-run1.ward": 4.25, "tr-run2.ward": 17.5}
"""Each site's pump reports its own reservoir, so a read of the wrong one shows."""
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[tuple[TwinService, httpx.AsyncClient]]:
    users = UserStore(tmp_path / "users.sqlite")
    service = await new_service(tmp_path / "journal.sqlite", clock=lambda: NOW)
    for site, reservoir in RESERVOIR.items():
        state = examples.state().model_copy(update={"reservoir_ml": reservoir})
        await feed(service, site, DEVICE, [(Channel.BIRTH, examples.birth()), (Channel.STATE, state)])
        await feed(service, site, DEVICE, [(Channel.TELEMETRY, examples.telemetry())])
    add_accounts(users, at=NOW)
    app = create_app(service, users=users, auth=AuthSettings())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin.test")
    await sign_in(client, Role.INSTRUCTOR)
    try:
        yield service, client
    finally:
        await client.aclose()
        users.close()
        await service.store.close()


async def test_both_pumps_are_listed_and_each_device_read_reaches_its_own_site(
    twin: tuple[TwinService, httpx.AsyncClient],
) -> None:
    _, client = twin
    listed = (await client.get("/api/devices")).json()
    assert sorted((d["site"], d["device_id"]) for d in listed) == sorted((s, DEVICE) for s in RESERVOIR)
    for site, reservoir in RESERVOIR.items():
        detail = await client.get(f"/api/devices/{DEVICE}", params={"site": site})
        assert detail.status_code == 200, detail.text
        body = detail.json()
        assert (body["summary"]["site"], body["reported"]["reservoir_ml"]) == (site, reservoir)
        history = await client.get(f"/api/devices/{DEVICE}/history", params={"site": site, "limit": 360})
        assert history.status_code == 200, history.text
        assert len(history.json()) >= 1


async def test_a_command_given_the_site_goes_to_that_sites_pump_only(
    twin: tuple[TwinService, httpx.AsyncClient],
) -> None:
    service, client = twin
    outbox = service.outbox
    assert isinstance(outbox, QueueOutbox)
    outbox.queue.clear()
    action = {"type": "reprogram", "program": {"mode": "continuous", "rate_ml_per_day": 0.5}}
    sent = await client.post(
        f"/api/devices/{DEVICE}/commands", params={"site": "tr-run2.ward"}, json={"action": action}
    )
    assert sent.status_code == 202, sent.text
    assert (sent.json()["site"], sent.json()["device_id"]) == ("tr-run2.ward", DEVICE)
    topics = [m.topic for m in outbox.queue]
    assert topics
    assert all("/tr-run2.ward/" in t and "/tr-run1.ward/" not in t for t in topics), topics
    # the other site's device page does not list it
    other = (await client.get(f"/api/devices/{DEVICE}", params={"site": "tr-run1.ward"})).json()
    assert other["commands"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/devices/{DEVICE}", None),
        ("GET", f"/api/devices/{DEVICE}/history", None),
        (
            "POST",
            f"/api/devices/{DEVICE}/commands",
            {"action": {"type": "reprogram", "program": {"mode": "continuous", "rate_ml_per_day": 0.5}}},
        ),
    ],
)
async def test_without_a_site_an_id_known_at_two_sites_is_refused_with_409(
    twin: tuple[TwinService, httpx.AsyncClient], method: str, path: str, body: dict[str, object] | None
) -> None:
    service, client = twin
    outbox = service.outbox
    assert isinstance(outbox, QueueOutbox)
    outbox.queue.clear()
    answer = await client.request(method, path, json=body)
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["reason"] == "ambiguous_device"
    assert all(site in problem["detail"] for site in RESERVOIR), problem
    assert not outbox.queue  # nothing was sent to either pump
