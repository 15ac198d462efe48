"""The durable spool on a real disk: order, acknowledgement, restarts, torn writes, the bound."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from twin.influx.spool import CURSOR_FILE, MAGIC, SEGMENT_SUFFIX, Spool, SpoolBatch

MiB = 1024 * 1024


SpoolOpener = Callable[..., Spool]


@pytest.fixture
def open_spool() -> Iterator[SpoolOpener]:
    """Opens spools for a test and closes them all at its end."""
    opened: list[Spool] = []

    def open_(directory: Path, max_bytes: int, **options: int) -> Spool:
        spool = Spool(directory, max_bytes, **options)
        opened.append(spool)
        return spool

    yield open_
    for spool in opened:
        spool.close()


def _lines(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix} v={i}i {i}".encode() for i in range(count)]


def _drain(spool: Spool, max_lines: int = 1000) -> list[bytes]:
    out: list[bytes] = []
    while (batch := spool.read(max_lines, MiB)) is not None:
        out.extend(batch.lines())
        spool.ack(batch)
    return out


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


def test_reading_does_not_consume_until_acknowledged(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, 64 * MiB)
    assert spool.read(10, MiB) is None
    spool.append(_lines("a", 3))
    first = spool.read(10, MiB)
    assert first is not None
    assert first.lines() == _lines("a", 3)
    again = spool.read(10, MiB)
    assert again is not None
    assert again.lines() == first.lines()  # not acknowledged: read again (InfluxDB did not confirm yet)
    spool.ack(first)
    assert spool.read(10, MiB) is None
    assert spool.stats().backlog_bytes == 0


def test_the_next_batch_is_read_ahead_without_consuming_the_one_before(tmp_path: Path, open_spool: SpoolOpener) -> None:
    """The sender reads batch n+1 while batch n is on its way: reading after n's end neither
    acknowledges n nor skips anything, across a segment boundary too; reading before the
    acknowledged position is refused."""
    spool = open_spool(tmp_path, 64 * MiB, segment_bytes=4096)
    for name in "abcdefgh":
        spool.append(_lines(name, 20))  # ~300 bytes a record: several segments
    first = spool.read(20, MiB)
    assert first is not None
    seen = first.lines()
    batch = first
    while (ahead := spool.read(20, MiB, after=batch.end)) is not None:
        assert spool.acknowledged < ahead.end
        seen += ahead.lines()
        spool.ack(batch)  # the one before, delivered, is acknowledged only now
        batch = ahead
    assert seen == [line for name in "abcdefgh" for line in _lines(name, 20)]
    again = spool.read(20, MiB)
    assert again is not None
    assert again.lines() == batch.lines()  # the last one read ahead is still not acknowledged
    spool.ack(batch)
    assert spool.read(20, MiB) is None
    with pytest.raises(ValueError, match="acknowledged"):
        spool.read(20, MiB, after=first.end)


def test_batches_fill_up_to_the_limits_across_records_and_hold_one_line_at_least(
    tmp_path: Path, open_spool: SpoolOpener
) -> None:
    """A limit inside a record splits it: the batch ends after the lines that fit, the next one
    starts at the line after, and a sender asking for 9 lines gets 9 whatever the records' sizes."""
    spool = open_spool(tmp_path, 64 * MiB)
    for name in "abc":
        spool.append(_lines(name, 4))
    batch = spool.read(9, MiB)
    assert batch is not None
    assert batch.lines() == _lines("a", 4) + _lines("b", 4) + _lines("c", 1)
    assert batch.body == b"\n".join(batch.lines())
    spool.ack(batch)
    assert spool.acknowledged.line == 1
    batch = spool.read(2, MiB)
    assert batch is not None
    assert batch.lines() == _lines("c", 4)[1:3]
    spool.ack(batch)
    line = _lines("c", 4)[3]
    batch = spool.read(5, len(line) - 1)
    assert batch is not None
    assert batch.lines() == [line]  # one line, however big
    spool.ack(batch)
    assert spool.acknowledged == spool.end
    assert spool.read(5, MiB) is None
    assert spool.stats().backlog_bytes == 0


def test_the_byte_limit_cuts_between_lines(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, 64 * MiB)
    lines = _lines("a", 6)
    spool.append(lines)
    budget = len(b"\n".join(lines[:3]))
    batch = spool.read(100, budget)
    assert batch is not None
    assert batch.lines() == lines[:3]
    ahead = spool.read(100, budget - 1, after=batch.end)
    assert ahead is not None
    assert ahead.lines() == lines[3:5]  # three would be one byte too many
    rest = spool.read(100, MiB, after=ahead.end)
    assert rest is not None
    assert rest.lines() == lines[5:]
    assert rest.end == spool.end


def test_a_restart_resumes_inside_a_record_where_the_cursor_says(tmp_path: Path, open_spool: SpoolOpener) -> None:
    old = open_spool(tmp_path, 64 * MiB)
    old.append(_lines("a", 5))
    old.append(_lines("b", 5))
    batch = old.read(3, MiB)
    assert batch is not None
    old.ack(batch)
    old.close()
    assert json.loads((tmp_path / CURSOR_FILE).read_text())["line"] == 3
    new = open_spool(tmp_path, 64 * MiB)
    assert _drain(new, max_lines=4) == _lines("a", 5)[3:] + _lines("b", 5)


def test_a_cursor_without_a_line_from_an_older_spool_starts_at_its_record(
    tmp_path: Path, open_spool: SpoolOpener
) -> None:
    old = open_spool(tmp_path, 64 * MiB)
    old.append(_lines("a", 2))
    old.append(_lines("b", 2))
    batch = old.read(2, MiB)
    assert batch is not None
    old.ack(batch)
    old.close()
    saved = json.loads((tmp_path / CURSOR_FILE).read_text())
    (tmp_path / CURSOR_FILE).write_text(json.dumps({"segment": saved["segment"], "offset": saved["offset"]}))
    assert _drain(open_spool(tmp_path, 64 * MiB)) == _lines("b", 2)


def test_records_kept_in_memory_read_as_the_file_does(tmp_path: Path, open_spool: SpoolOpener) -> None:
    """``keep_recent_bytes``: the same batches, bodies and ends as reading the file, the bound
    honoured (what passes it is read from disk), and nothing kept once acknowledged."""
    kept = open_spool(tmp_path / "kept", 64 * MiB, segment_bytes=4096, keep_recent_bytes=2000)
    plain = open_spool(tmp_path / "plain", 64 * MiB, segment_bytes=4096)
    for name in "abcdefghij":
        for spool in (kept, plain):
            spool.append(_lines(name, 20))
    assert 0 < kept._recent_bytes <= 2000
    assert plain._recent_bytes == 0
    after_kept = after_plain = None
    for max_lines in (7, 33, 20, 1, 60, 100, 100):
        a = kept.read(max_lines, MiB, after=after_kept)
        b = plain.read(max_lines, MiB, after=after_plain)
        assert (a is None) == (b is None)
        if a is None or b is None:
            break
        assert (a.body, list(a.line_lengths), a.end) == (b.body, list(b.line_lengths), b.end)
        kept.ack(a)
        plain.ack(b)
        after_kept, after_plain = a.end, b.end
    assert kept.read(100, MiB) is None
    assert kept._recent_bytes == 0
    assert not kept._recent


def test_lines_with_newlines_inside_string_fields_stay_whole(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, 64 * MiB)
    lines = [b'alarm comment="line one\nline two" 1', 'm s="é😀\\"" 2'.encode()]
    spool.append(lines)
    assert _drain(spool) == lines


def test_a_new_spool_on_the_same_directory_replays_what_was_left_in_order(
    tmp_path: Path, open_spool: SpoolOpener
) -> None:
    old = open_spool(tmp_path, 64 * MiB, segment_bytes=1024)
    for i in range(20):
        old.append(_lines(f"r{i}", 5))
    batch = old.read(10, MiB)
    assert batch is not None
    old.ack(batch)  # r0 and r1 confirmed
    old.close()

    new = open_spool(tmp_path, 64 * MiB, segment_bytes=1024)
    new.append(_lines("after-restart", 2))
    replayed = _drain(new, max_lines=7)
    expected = [line for i in range(2, 20) for line in _lines(f"r{i}", 5)] + _lines("after-restart", 2)
    assert replayed == expected


def test_segments_are_deleted_only_once_acknowledged(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, 64 * MiB, segment_bytes=50)
    for i in range(6):
        spool.append(_lines(f"s{i}", 3))  # every record fills a segment
    assert len(_segments(tmp_path)) == 6
    batch = spool.read(6, MiB)
    assert batch is not None
    assert len(_segments(tmp_path)) == 6  # read, not confirmed: still on disk
    spool.ack(batch)
    assert len(_segments(tmp_path)) == 4
    _drain(spool)
    assert len(_segments(tmp_path)) == 1  # the active segment stays until a new one starts
    spool.append(_lines("next", 1))
    assert _drain(spool) == _lines("next", 1)
    assert len(_segments(tmp_path)) == 1


def test_a_torn_write_is_skipped_and_never_replayed(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, 64 * MiB)
    spool.append(_lines("whole", 2))
    spool.close()
    (segment,) = _segments(tmp_path)
    whole = segment.read_bytes()
    with segment.open("ab") as file:  # a crash halfway through the next record
        file.write(whole[: len(whole) // 2 + 3])

    reopened = open_spool(tmp_path, 64 * MiB)
    reopened.append(_lines("later", 1))
    assert _drain(reopened) == _lines("whole", 2) + _lines("later", 1)
    assert reopened.stats().skipped_bytes == len(whole) // 2 + 3


def test_a_damaged_record_is_skipped_and_the_next_good_one_found(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, 64 * MiB)
    for name in ("one", "two", "three"):
        spool.append(_lines(name, 2))
    spool.close()
    (segment,) = _segments(tmp_path)
    data = bytearray(segment.read_bytes())
    second = data.index(MAGIC, 1)
    data[second + 20] ^= 0x01  # one flipped bit in the second record's payload
    segment.write_bytes(bytes(data))

    reopened = open_spool(tmp_path, 64 * MiB)
    assert _drain(reopened) == _lines("one", 2) + _lines("three", 2)
    assert reopened.stats().skipped_bytes == data.index(MAGIC, second + 1) - second


def test_when_full_sheddable_lines_are_refused_and_counted_others_kept(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, max_bytes=4096, segment_bytes=1024)
    big = [(b"telemetry v=" + str(i).encode() + b"i " + b"0" * 100, True) for i in range(40)]
    admission = spool.admit(big)
    assert (admission.spooled, admission.shed) == (40, 0)  # not full before: all in
    assert spool.full
    mixed = [(b"telemetry v=1i 1", True), (b'alarm event="raised" 2', False), (b"state v=1i 3", False)]
    admission = spool.admit(mixed)
    assert (admission.spooled, admission.shed) == (2, 1)
    assert spool.stats().shed == 1
    lines = _drain(spool)
    assert lines[-2:] == [b'alarm event="raised" 2', b"state v=1i 3"]
    assert not spool.full  # confirmed segments were reclaimed
    assert spool.admit([(b"telemetry v=2i 4", True)]).spooled == 1


def test_a_damaged_cursor_means_replaying_everything_left(tmp_path: Path, open_spool: SpoolOpener) -> None:
    spool = open_spool(tmp_path, 64 * MiB)
    spool.append(_lines("a", 2))
    spool.close()
    (tmp_path / CURSOR_FILE).write_text("{not json")
    assert _drain(open_spool(tmp_path, 64 * MiB)) == _lines("a", 2)


def test_everything_acknowledged_then_restarted_twice_starts_clean(tmp_path: Path, open_spool: SpoolOpener) -> None:
    first = open_spool(tmp_path, 64 * MiB)
    first.append(_lines("a", 2))
    _drain(first)
    first.close()
    open_spool(tmp_path, 64 * MiB).close()  # finds a fully confirmed segment: deletes it
    third = open_spool(tmp_path, 64 * MiB)
    cursor = json.loads((tmp_path / CURSOR_FILE).read_text())
    assert cursor["segment"] >= 1
    third.append(_lines("b", 1))
    assert _drain(third) == _lines("b", 1)


class SpoolModel(RuleBasedStateMachine):
    """Whatever the mix of appends, partial deliveries and restarts, every line comes out once, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.keep = 0
        self.spool = Spool(self.directory, 64 * MiB, segment_bytes=300)
        self.ahead: SpoolBatch | None = None
        self.waiting: deque[bytes] = deque()
        self.delivered: list[bytes] = []
        self.expected: list[bytes] = []
        self.counter = 0

    @rule(count=st.integers(min_value=1, max_value=6))
    def append(self, count: int) -> None:
        lines = [f"m v={self.counter + i}i".encode() for i in range(count)]
        self.counter += count
        self.spool.append(lines)
        self.expected.extend(lines)

    @rule(max_lines=st.integers(min_value=1, max_value=10), max_bytes=st.sampled_from([1, 20, 45, MiB]))
    def deliver(self, max_lines: int, max_bytes: int) -> None:
        """Read (after the batch read ahead, if any), deliver what was read ahead, then keep this
        one as read ahead: the sender's order, with limits that fall inside records."""
        after = self.ahead.end if self.ahead is not None else None
        batch = self.spool.read(max_lines, max_bytes, after=after)
        if self.ahead is not None:
            self.delivered.extend(self.ahead.lines())
            self.spool.ack(self.ahead)
            self.ahead = None
        if batch is not None:
            assert 1 <= batch.line_count <= max_lines or batch.line_count == 0
            assert len(batch.body) <= max_bytes or batch.line_count == 1
            self.ahead = batch

    @rule()
    def read_without_confirming(self) -> None:
        self.spool.read(5, MiB)

    @rule(keep=st.sampled_from([0, 100, MiB]))
    def restart(self, keep: int) -> None:
        """A new process (what was read ahead and not delivered is read again), keeping recent
        records in memory or not."""
        self.spool.close()
        self.ahead = None
        self.spool = Spool(self.directory, 64 * MiB, segment_bytes=300, keep_recent_bytes=keep)

    @invariant()
    def delivered_is_a_prefix_of_what_was_appended(self) -> None:
        assert self.delivered == self.expected[: len(self.delivered)]

    def teardown(self) -> None:
        if self.ahead is not None:
            self.delivered.extend(self.ahead.lines())
            self.spool.ack(self.ahead)
        self.delivered.extend(_drain(self.spool))
        assert self.delivered == self.expected
        self.spool.close()
        shutil.rmtree(self.directory)


TestSpoolModel = SpoolModel.TestCase
TestSpoolModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@pytest.mark.parametrize("max_bytes", [1 * MiB, 512 * MiB, 4096 * MiB])
def test_segment_size_follows_the_bound(tmp_path: Path, open_spool: SpoolOpener, max_bytes: int) -> None:
    segment_bytes = open_spool(tmp_path / str(max_bytes), max_bytes).segment_bytes
    assert 1 * MiB <= segment_bytes <= 64 * MiB
    assert segment_bytes <= max(1 * MiB, max_bytes // 16)


def test_a_failed_append_never_leaves_garbage_in_front_of_later_records(
    tmp_path: Path, open_spool: SpoolOpener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fails mid-append (fsync: EIO) after the bytes went out: the caller sees the error and
    appends again; what follows is read whole, and a later process replays at most a duplicate."""
    real_fsync = os.fsync
    armed = True

    def flaky_fsync(fd: int) -> None:
        nonlocal armed
        if armed and os.readlink(f"/proc/self/fd/{fd}").endswith(SEGMENT_SUFFIX):
            armed = False
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", flaky_fsync)
    spool = open_spool(tmp_path, 64 * MiB)
    with pytest.raises(OSError, match="Input/output"):
        spool.append(_lines("a", 2))
    spool.append(_lines("a", 2))  # the caller's retry
    spool.append(_lines("b", 2))
    assert spool.read(100, MiB) is not None
    assert _drain(spool) == _lines("a", 2) + _lines("b", 2)
