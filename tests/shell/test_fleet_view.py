"""The fleet-wide view of a replica (:class:`twin.app.replica.FleetView`), in process: what other
replicas commit shows in it and on its stream, never older over newer; what a partition served
here journals shows too; a staff action goes to the partition's own service here, or is refused
with the owner named (the API forwards it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from twin.alarms import lifecycle as lc
from twin.api.forwarding import NotServedHere
from twin.app.replica import FleetView
from twin.cluster.partitions import partition_of
from twin.contract.alarms import AlarmCode, Priority
from twin.contract.topics import build_topic
from twin.mirror import fleet as steps
from twin.mirror.fleet import Fleet, FleetConfig
from twin.service.events import AlarmTransitioned, DeviceUpdated, Notice
from twin.service.twin_service import Received, TwinService
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.fleet import generate_fleet
from twin.sim.simulation import FleetSimulation
from twin.store.feed import Committed, Resync
from twin.store.local import LocalJournalStore
from twin.store.postgres import PostgresJournalStore
from twin.store.protocol import Snapshot
from twin.store.snapshots import twin_to_snapshot

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
P = 16


def _view() -> FleetView:
    return FleetView(cast(PostgresJournalStore, None), partitions=P, name="replica-a", config=FleetConfig())


def _published(pumps: int = 2) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []

    def sink(device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        from twin.contract.codec import encode

        out.append((build_topic(device.identity.site, device.device_id, outgoing.channel), encode(outgoing.message)))

    sim = FleetSimulation(
        generate_fleet(pumps, seed=2, start=T0), epoch=T0, seed=2, sink=sink, telemetry_interval_s=600
    )
    sim.open_sessions(1)
    sim.run(3600)
    return out


def _snapshot_of_fleet() -> list[Snapshot]:
    fleet = Fleet()
    for topic, payload in _published():
        fleet, _ = steps.apply(fleet, topic, payload, T0)
    return [Snapshot(t.site, t.device_id, t.version, twin_to_snapshot(t, None)) for t in fleet.devices.values()]


def _raised(site: str = "clinic-b", device: str = "pump-7") -> tuple[lc.Alarm, list[lc.Transition]]:
    return lc.raise_alarm(
        f"{site}/{device}/reservoir_low", device, site, AlarmCode.RESERVOIR_LOW, "device", Priority.MEDIUM, "Low", T0
    )


async def test_what_another_replica_commits_shows_and_streams_never_older_over_newer() -> None:
    view = _view()
    seen: list[object] = []
    view.hub.listen(seen.append)
    snapshots = _snapshot_of_fleet()
    alarm, transitions = _raised()
    await view.apply_feed(
        Committed("replica-b", transitions=transitions, alarms={alarm.key: alarm}, snapshots=snapshots)
    )
    assert set(view.fleet.devices) == {(s.site, s.device_id) for s in snapshots}
    assert view.fleet.board.alarms[alarm.key] == alarm
    assert [type(e) for e in seen] == [AlarmTransitioned] + [DeviceUpdated] * len(snapshots)
    acked, more = lc.acknowledge(alarm, "ana", T0)
    await view.apply_feed(Committed("replica-b", transitions=more, alarms={acked.key: acked}))
    await view.apply_feed(Committed("replica-b", alarms={alarm.key: alarm}))  # read back late: older
    assert view.fleet.board.alarms[alarm.key] == acked
    older = [Snapshot(s.site, s.device_id, s.version - 1, s.payload) for s in snapshots]
    before = dict(view.fleet.devices)
    await view.apply_feed(Committed("replica-b", snapshots=older))
    assert dict(view.fleet.devices) == before


async def test_a_resync_reloads_from_the_database_and_tells_the_stream() -> None:
    view = _view()
    reloaded: list[bool] = []

    async def restore(*, sites: Any = None) -> None:
        reloaded.append(True)

    view.restore = restore  # type: ignore[method-assign]
    seen: list[object] = []
    view.hub.listen(seen.append)
    await view.apply_feed(Resync("listening again"))
    assert reloaded == [True]
    assert seen == [Notice("resync", {"reason": "listening again"})]


async def test_actions_go_to_the_partition_served_here_or_name_the_owner(tmp_path: Any) -> None:
    view = _view()
    asked: list[int] = []

    async def owner(partition: int) -> tuple[str | None, str | None]:
        asked.append(partition)
        return "replica-b", "http://replica-b:8080"

    view.owner = owner
    published = _published()
    site = published[0][0].split("/")[2]
    local = TwinService(LocalJournalStore(tmp_path / "journal.sqlite"))
    try:
        await local.ingest([Received(t, p, T0, 1) for t, p in published])
        view.adopt(local, partition_of(site, P))
        assert set(view.fleet.devices) == set(local.fleet.devices)  # shown at once
        key = next(iter(local.fleet.devices))
        with pytest.raises(lc.AlarmError):  # the partition's own service answers: it knows no such alarm
            await view.alarm_action(f"{site}/{key[1]}/reservoir_low", "acknowledge", "ana")
        tracked = await view.send_command(key, cast(Any, _refill()), "ana")
        assert tracked.command_id in view.fleet.commands  # its change came through the service's events
        elsewhere = next(s for s in (f"ward-{i}" for i in range(200)) if partition_of(s, P) != partition_of(site, P))
        with pytest.raises(NotServedHere) as refused:
            await view.send_command((elsewhere, "pump-1"), cast(Any, _refill()), "ana")
        assert (refused.value.owner, refused.value.url) == ("replica-b", "http://replica-b:8080")
        assert asked == [partition_of(elsewhere, P)]
        view.release(partition_of(site, P))
        with pytest.raises(NotServedHere):
            await view.send_command(key, cast(Any, _refill()), "ana")
    finally:
        await local.store.close()
        await asyncio.sleep(0)


def _refill() -> object:
    from twin.contract.messages import PatientBolusAction

    return PatientBolusAction()
