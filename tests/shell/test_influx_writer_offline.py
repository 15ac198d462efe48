"""The writer with no InfluxDB configured: points go to the spool only, and it says so."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from tests.harness.waiting import until
from twin.contract import examples
from twin.influx.spool import Spool
from twin.influx.writer import InfluxWriter
from twin.settings import InfluxSettings
from twin.timeseries.points import DeviceTags, InfluxPoint, alarm_event_point, telemetry_point

TAGS = DeviceTags.from_birth(examples.EXAMPLE_SITE, examples.birth())
MiB = 1024 * 1024


def _telemetry(count: int, start: int = 0) -> list[InfluxPoint]:
    base = examples.telemetry()
    return [
        telemetry_point(
            TAGS, base.model_copy(update={"seq": i, "device_time": base.device_time + timedelta(seconds=i)})
        )
        for i in range(start, start + count)
    ]


def _spooled_lines(directory: Path) -> list[bytes]:
    with Spool(directory, 512 * MiB) as spool:
        batch = spool.read(10**9, 10**12)
        return [] if batch is None else batch.lines()


async def test_without_a_url_points_are_spooled_and_the_writer_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = InfluxSettings(url=None, spool_dir=tmp_path)
    points = _telemetry(10)
    with caplog.at_level(logging.WARNING, logger="twin.influx.writer"):
        async with InfluxWriter(settings) as writer:
            assert "PUMPTWIN_INFLUX__URL not set" in writer.describe()
            assert "512 MiB" in writer.describe()
            assert str(tmp_path) in writer.describe()
            writer.submit(points)
            await writer.flush()
            assert writer.stats.spooled == 10
            assert await writer.drain(0.1) is False  # nothing will ever confirm them here
    # the writer's owner says where points go, once (serve, the demo and a backfill print it)
    assert not any("not set" in record.getMessage() for record in caplog.records)
    assert _spooled_lines(tmp_path) == [p.line_protocol().encode() for p in points]


async def test_the_flush_interval_spools_without_being_asked(tmp_path: Path) -> None:
    settings = InfluxSettings(url=None, spool_dir=tmp_path, flush_interval_s=0.05, batch_size=1000)
    async with InfluxWriter(settings) as writer:
        writer.submit(_telemetry(3))
        await until(lambda: writer.stats.spooled == 3, what="spooling after the flush interval")
        assert writer.stats.buffered == 0


async def test_a_full_spool_sheds_telemetry_but_keeps_every_alarm(tmp_path: Path) -> None:
    settings = InfluxSettings(url=None, spool_dir=tmp_path, spool_max_bytes=1 * MiB, batch_size=500)
    alarms = [
        alarm_event_point(TAGS, examples.alarm().model_copy(update={"seq": 100_000 + i, "alarm_id": f"a{i}"}))
        for i in range(50)
    ]
    async with InfluxWriter(settings) as writer:
        writer.submit(_telemetry(6000))  # about 2.7 MB: more than the spool may hold
        await writer.flush()
        writer.submit(alarms)
        writer.submit(_telemetry(10, start=6000))
        await writer.flush()
        stats = writer.stats
    assert stats.accepted == 6060
    assert stats.shed > 0
    assert stats.spooled + stats.shed == stats.accepted
    lines = _spooled_lines(tmp_path)
    assert [p.line_protocol().encode() for p in alarms] == [line for line in lines if line.startswith(b"alarm")]
    assert stats.spool_bytes >= 1 * MiB


async def test_submit_after_close_is_a_programming_error(tmp_path: Path) -> None:
    async with InfluxWriter(InfluxSettings(url=None, spool_dir=tmp_path)) as writer:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(_telemetry(1))


async def test_points_submitted_before_close_are_spooled_at_close(tmp_path: Path) -> None:
    settings = InfluxSettings(url=None, spool_dir=tmp_path, flush_interval_s=3600)
    async with InfluxWriter(settings) as writer:
        writer.submit(_telemetry(5))
    assert len(_spooled_lines(tmp_path)) == 5


async def test_a_burst_far_beyond_the_batch_size_is_spooled_not_shed(tmp_path: Path) -> None:
    """The in-memory bound is for a stalled disk, not for a burst the spool is still writing."""
    settings = InfluxSettings(url=None, spool_dir=tmp_path, batch_size=100, flush_interval_s=0.01)
    async with InfluxWriter(settings) as writer:
        writer.submit(_telemetry(20_000))
        await writer.flush()
        assert writer.stats.shed == 0
        assert writer.stats.spooled == 20_000


async def test_a_disk_error_keeps_the_points_buffered_until_the_spool_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk seam fails (ENOSPC) for a while: flush says so, nothing is lost or reordered."""
    real_admit = Spool.admit
    disk_full = True

    def admit(spool: Spool, entries: list[tuple[bytes, bool]]) -> object:
        if disk_full:
            raise OSError(28, "No space left on device")
        return real_admit(spool, entries)

    monkeypatch.setattr(Spool, "admit", admit)
    points = _telemetry(30)
    async with InfluxWriter(InfluxSettings(url=None, spool_dir=tmp_path, flush_interval_s=0.01)) as writer:
        writer.submit(points[:10])
        with pytest.raises(OSError, match="No space"):
            await writer.flush()
        writer.submit(points[10:])
        assert writer.stats.buffered == 30
        assert writer.stats.spool_errors >= 1
        assert "No space" in (writer.stats.last_error or "")
        disk_full = False
        await writer.flush()
        assert writer.stats.spooled == 30
    assert _spooled_lines(tmp_path) == [p.line_protocol().encode() for p in points]
