"""The durable on-disk spool: every batch of line protocol waits here until InfluxDB confirms it.

The writer appends each batch *before* sending it (write-ahead), sends from here in order, and
acknowledges what InfluxDB confirmed (2xx) or refused for good (dead-lettered). So a batch
survives an InfluxDB outage and a restart or crash of the twin: a new spool on the same directory
replays what the old one left, oldest first.

Layout (``directory``):

* ``<16-digit index>.seg`` — append-only segment files, written by one process only. A spool
  never appends to a segment it did not create: a segment left by an earlier process is sealed
  and only read. A new segment is started when the active one reaches ``segment_bytes``.
* ``cursor.json`` — how far InfluxDB has confirmed: ``{"segment": i, "offset": n, "line": k}``: the
  first ``k`` lines of the record at byte ``n`` of segment ``i`` and everything before it (a batch
  read may end inside a record; a cursor without ``line``, from an older spool, means 0).

Record format (integers big-endian): ``magic (4 bytes, b"\\xffPT\\xfe") | payload length (u32) |
CRC-32 of length and payload (u32) | payload``; the payload is ``line count (u32) | each line's
length (u32 each) | the lines joined by \\n``. The body is sent as it is, without touching each
line; the lengths say where lines end when a refused batch must be split (a line may contain a
newline inside a quoted string field, so a body is never split on ``\\n``). A record cut short by a crash (torn write) or damaged on disk fails its length or
checksum: it is skipped, never replayed, and the reader resynchronises on the next magic whose
record checks out. The magic cannot occur inside line protocol (``\\xff`` and ``\\xfe`` are never
valid UTF-8). Skipped bytes are counted (:attr:`SpoolStats.skipped_bytes`).

Fsync policy: each record is written and ``fsync``-ed before :meth:`Spool.append` returns, and
the directory is ``fsync``-ed when a segment is created; so a returned append survives a power
cut. :meth:`Spool.admit` with ``sync=False`` (the twin's ingest path, which acknowledges a
message to the broker only once its points are here) writes the record to the file and returns
without ``fsync``: the record then survives a crash of the process (it is in the kernel's page
cache), like a commit of the SQLite journal in WAL mode with ``synchronous=NORMAL``, and
:meth:`Spool.sync` (the writer calls it every ``flush_interval_s``) makes it survive a power cut
too. An ``fsync`` per acknowledged batch would cost milliseconds on every alarm. The cursor is replaced atomically (``os.replace``) but not ``fsync``-ed, and segment deletions
are not ``fsync``-ed: after a power cut the spool may replay batches InfluxDB already holds, which
is harmless (a point rewritten with the same measurement, tags and timestamp overwrites itself).

Bound (``max_bytes``) and policy: when the segment files hold ``max_bytes`` or more, batches are
still admitted but their *sheddable* lines (telemetry, its ``sim_truth``, and twin health samples) are refused and
counted as shed; alarm, state, command and training lines are always admitted, so the bound is soft by
their (small) volume. Why refuse the newest samples rather than drop the oldest: one in-order
stream stays one stream (no reordering, no rewriting of segments), the points that matter for
safety and audit are never lost, and telemetry is the channel the contract already treats as
lossy (QoS 0: a lost sample is replaced by the next one; every state change is still recorded in
``state``). Disk errors (``OSError``, e.g. the disk is full) propagate to the caller.

Thread safety: every public method takes one lock, so the writer may call them from worker
threads (``asyncio.to_thread``) to keep ``fsync`` off the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import sys
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Self

log = logging.getLogger(__name__)

MAGIC: Final = b"\xffPT\xfe"
_HEADER: Final = struct.Struct(">4sII")
_COUNT: Final = struct.Struct(">I")
_LITTLE_ENDIAN: Final = sys.byteorder == "little"
if array("I").itemsize != 4:  # pragma: no cover -- true on every platform CPython supports today
    raise ImportError("the spool format needs 4-byte unsigned ints in array('I')")
MAX_RECORD_BYTES: Final = 256 * 1024 * 1024
"""A header announcing more than this is damage, not a record."""

SEGMENT_SUFFIX: Final = ".seg"
CURSOR_FILE: Final = "cursor.json"


@dataclass(frozen=True, order=True, slots=True)
class SpoolPosition:
    """A place in the spool: segment index, byte offset of a record in it, and how many of that
    record's lines come before the place (0: the record's start; a batch may end inside a record).
    Ordered as the stream is. A place after a record's last line is the next record's start."""

    segment: int
    offset: int
    line: int = 0


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Consecutive records read from the acknowledged position: their lines as one body (joined by
    ``\\n``, ready to send), each line's length, and where the records end."""

    body: bytes
    line_lengths: array[int]
    end: SpoolPosition
    skipped_bytes: int = 0

    @property
    def line_count(self) -> int:
        return len(self.line_lengths)

    def lines(self) -> list[bytes]:
        """The body split into its lines (by length: a line may hold a newline in a string field)."""
        lines: list[bytes] = []
        at = 0
        for length in self.line_lengths:
            lines.append(self.body[at : at + length])
            at += length + 1
        return lines


@dataclass(frozen=True, slots=True)
class Admission:
    """What :meth:`Spool.admit` did with a batch: lines spooled and lines shed (spool full)."""

    spooled: int
    shed: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """A snapshot. ``size_bytes``: segment files on disk; ``backlog_bytes``: the unacknowledged part;
    ``shed``: sheddable lines refused while full; ``skipped_bytes``: torn or damaged bytes skipped."""

    size_bytes: int
    backlog_bytes: int
    segments: int
    shed: int
    skipped_bytes: int


def _encode_record(lines: Sequence[bytes]) -> tuple[bytes, bytes, array[int]]:
    """A record as its head (header, line count and lengths), its body (the lines joined by
    ``\\n``, written after the head as it is: no copy of the bulk) and the lines' lengths."""
    lengths = array("I", map(len, lines))
    wire = array("I", lengths)
    if _LITTLE_ENDIAN:
        wire.byteswap()
    prefix = _COUNT.pack(len(lines)) + wire.tobytes()
    body = b"\n".join(lines)
    length = len(prefix) + len(body)
    if length > MAX_RECORD_BYTES:
        raise ValueError(f"a spool record of {length} bytes is larger than {MAX_RECORD_BYTES}")
    crc = zlib.crc32(body, zlib.crc32(prefix, zlib.crc32(_COUNT.pack(length))))
    return _HEADER.pack(MAGIC, length, crc) + prefix, body, lengths


def _decode_payload(payload: bytes) -> tuple[memoryview, array[int]] | None:
    """The body (a view: not copied) and line lengths of a payload whose checksum matched; ``None`` if inconsistent."""
    if len(payload) < _COUNT.size:
        return None
    (count,) = _COUNT.unpack_from(payload)
    body_at = _COUNT.size + 4 * count
    if body_at > len(payload):
        return None
    lengths = array("I", payload[_COUNT.size : body_at])
    if _LITTLE_ENDIAN:
        lengths.byteswap()
    body = memoryview(payload)[body_at:]
    if count == 0 or sum(lengths) + count - 1 != len(body):
        return None
    return body, lengths


def _fit(lengths: array[int], skip: int, room_lines: int, room_bytes: int, at_least_one: bool) -> tuple[int, int]:
    """How many of a record's lines after its first ``skip`` fit in ``room_lines`` lines and
    ``room_bytes`` bytes (joined by ``\\n``), and their bytes; one line at least if ``at_least_one``."""
    take = min(len(lengths) - skip, room_lines)
    if take <= 0:
        take = 1 if at_least_one else 0
        return take, lengths[skip] if take else 0
    taken = sum(lengths[skip : skip + take]) + take - 1
    if taken <= room_bytes:
        return take, taken
    taken = -1
    for count, length in enumerate(lengths[skip : skip + take]):
        if taken + 1 + length > room_bytes:
            if count == 0 and at_least_one:
                return 1, length
            return count, max(taken, 0)
        taken += 1 + length
    raise AssertionError("unreachable: the lines did not fit as a whole")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A durable FIFO of line-protocol batches in ``directory``, bounded by ``max_bytes`` (see module doc).

    ``segment_bytes`` (default: ``max_bytes / 16``, between 1 and 64 MiB) is when a new segment
    starts; disk used by confirmed data is reclaimed a whole segment at a time.

    ``keep_recent_bytes``: the records this spool appended are also kept in memory, until
    acknowledged, while they hold at most this many bytes (0, the default: none), and
    :meth:`read` takes them from there instead of reading and checking the file again: the same
    bytes as written, for a sender that keeps up (the writer with a URL). A record appended while
    the kept ones hold the bound is only on disk and read from there. It changes nothing on disk.
    """

    def __init__(
        self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None, keep_recent_bytes: int = 0
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or min(64 << 20, max(1 << 20, max_bytes // 16))
        self.keep_recent_bytes = keep_recent_bytes
        self._recent: OrderedDict[tuple[int, int], tuple[bytes, array[int], int]] = OrderedDict()
        """(segment, offset) of a record this spool appended -> its body, line lengths and size on disk."""
        self._recent_bytes = 0
        self._lock = threading.Lock()
        self._shed = 0
        self._skipped = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sizes: dict[int, int] = {}
        for path in self.directory.glob(f"*{SEGMENT_SUFFIX}"):
            if path.stem.isdigit():
                self._sizes[int(path.stem)] = path.stat().st_size
        cursor = self._load_cursor()
        # new segments always come after the cursor and after every existing segment
        self._next_index = max(max(self._sizes, default=0), cursor.segment) + 1
        self._active: BinaryIO | None = None
        self._active_index: int | None = None
        self._unsynced = False
        self._cursor = cursor
        self._cursor_failing = False
        self._drop_consumed()
        self._save_cursor()

    # ------------------------------------------------------------------------------ properties

    @property
    def acknowledged(self) -> SpoolPosition:
        """Everything before this position is confirmed (or dead-lettered)."""
        with self._lock:
            return self._cursor

    @property
    def end(self) -> SpoolPosition:
        """Position just after the last record appended."""
        with self._lock:
            return self._end()

    @property
    def full(self) -> bool:
        with self._lock:
            return sum(self._sizes.values()) >= self.max_bytes

    def stats(self) -> SpoolStats:
        with self._lock:
            backlog = sum(size for index, size in self._sizes.items() if index > self._cursor.segment)
            backlog += max(0, self._sizes.get(self._cursor.segment, 0) - self._cursor.offset)
            return SpoolStats(
                size_bytes=sum(self._sizes.values()),
                backlog_bytes=backlog,
                segments=len(self._sizes),
                shed=self._shed,
                skipped_bytes=self._skipped,
            )

    # ---------------------------------------------------------------------------------- writing

    def admit(self, entries: Sequence[tuple[bytes, bool]], *, sync: bool = True) -> Admission:
        """Append ``(line, sheddable)`` entries as one record, applying the bound: while the spool is
        full, sheddable lines are refused (counted in ``shed``). Durable when it returns (against a
        power cut with ``sync``, against a crash of the process without)."""
        with self._lock:
            if sum(self._sizes.values()) >= self.max_bytes:
                lines = [line for line, sheddable in entries if not sheddable]
                shed = len(entries) - len(lines)
                self._shed += shed
            else:
                lines = [line for line, _ in entries]
                shed = 0
            if lines:
                self._append(lines, sync=sync)
            return Admission(spooled=len(lines), shed=shed)

    def sync(self) -> None:
        """``fsync`` what :meth:`admit` wrote with ``sync=False`` (nothing to do when nothing is pending)."""
        with self._lock:
            if self._active is not None and self._unsynced:
                os.fsync(self._active.fileno())
                self._unsynced = False

    def append(self, lines: Sequence[bytes]) -> None:
        """Append ``lines`` as one record, whatever the bound. Durable (fsync-ed) when it returns."""
        with self._lock:
            self._append(lines)

    def _append(self, lines: Sequence[bytes], *, sync: bool = True) -> None:
        if not lines:
            return
        head, body, lengths = _encode_record(lines)
        if self._active is None or self._active_index is None or self._sizes[self._active_index] >= self.segment_bytes:
            self._active, self._active_index = self._rotate()
        try:
            self._active.write(head)
            self._active.write(body)
            self._active.flush()
            if sync:
                os.fsync(self._active.fileno())
            self._unsynced = not sync
        except OSError:
            # part of the record may be on disk: never write after it. The segment is sealed at
            # its last whole record (what this spool reads); a later process sees the rest as torn.
            self._seal()
            raise
        offset = self._sizes[self._active_index]
        size = len(head) + len(body)
        self._sizes[self._active_index] = offset + size
        if self._recent_bytes + len(body) <= self.keep_recent_bytes:
            self._recent[(self._active_index, offset)] = (body, lengths, size)
            self._recent_bytes += len(body)

    def _rotate(self) -> tuple[BinaryIO, int]:
        self._seal()
        index = self._next_index
        active = self._segment_path(index).open("xb")
        self._next_index = index + 1
        self._sizes[index] = 0
        try:
            _fsync_directory(self.directory)
        except OSError:
            active.close()
            raise
        return active, index

    def _seal(self) -> None:
        if self._active is not None:
            with contextlib.suppress(OSError):  # a failed write may fail its flush again
                if self._unsynced:
                    os.fsync(self._active.fileno())
                self._active.close()
            self._unsynced = False
            self._active = None
            self._active_index = None

    # ---------------------------------------------------------------------------------- reading

    def read(self, max_lines: int, max_bytes: int, *, after: SpoolPosition | None = None) -> SpoolBatch | None:
        """The next lines after the acknowledged position (or after ``after``, the end of a batch
        read but not acknowledged yet: the sender reads the next batch while the one before is on
        its way), as many as fit ``max_lines`` and ``max_bytes`` of body (at least one line, however
        big). A record is split between batches where a limit falls inside it, so that a sender
        asking for ``batch_size`` lines gets that many whenever that many wait, whatever the
        records' sizes. ``None`` when nothing is waiting.

        Reading does not move the acknowledged position: the same batch is read again until
        :meth:`ack`. A batch may hold no lines when only damaged bytes were found (ack it all the same).
        Raises ``ValueError`` for an ``after`` before the acknowledged position.
        """
        with self._lock:
            parts: list[bytes | memoryview] = []
            lengths: array[int] = array("I")
            size = 0  # of the body so far, separators included
            skipped = 0
            position = self._cursor
            if after is not None:
                if after < position:
                    raise ValueError(f"cannot read after {after}: everything before {position} is acknowledged")
                position = after
            for index in sorted(i for i in self._sizes if i >= position.segment):
                offset, skip = (position.offset, position.line) if index == position.segment else (0, 0)
                limit = self._sizes[index]
                if offset >= limit:
                    position = SpoolPosition(index, limit)
                    continue
                segment: BinaryIO | None = None
                try:
                    while offset < limit:
                        if len(lengths) >= max_lines or (parts and size >= max_bytes):
                            return SpoolBatch(b"\n".join(parts), lengths, SpoolPosition(index, offset, skip), skipped)
                        record: tuple[bytes | memoryview, array[int], int] | None = self._recent.get((index, offset))
                        if record is None:
                            if segment is None:
                                segment = self._segment_path(index).open("rb")
                            record = self._read_record(segment, offset, limit)
                            if record is None:
                                resume = self._resync(segment, offset + 1, limit)
                                skipped += resume - offset
                                offset, skip = resume, 0
                                continue
                        body, record_lengths, record_size = record
                        count = len(record_lengths)
                        if skip >= count:  # a cursor past this record's lines (not one this spool saved)
                            offset, skip = offset + record_size, 0
                            continue
                        room = max_bytes - size - (1 if parts else 0)
                        take, taken_bytes = _fit(record_lengths, skip, max_lines - len(lengths), room, not lengths)
                        if take == 0:
                            return SpoolBatch(b"\n".join(parts), lengths, SpoolPosition(index, offset, skip), skipped)
                        if skip == 0 and take == count:
                            parts.append(body)
                            lengths.extend(record_lengths)
                        else:
                            at = sum(record_lengths[:skip]) + skip
                            parts.append(memoryview(body)[at : at + taken_bytes])
                            lengths.extend(record_lengths[skip : skip + take])
                        size += taken_bytes + (1 if len(parts) > 1 else 0)
                        if skip + take < count:
                            return SpoolBatch(
                                b"\n".join(parts), lengths, SpoolPosition(index, offset, skip + take), skipped
                            )
                        offset, skip = offset + record_size, 0
                finally:
                    if segment is not None:
                        segment.close()
                position = SpoolPosition(index, offset)
            if not parts and not skipped:
                return None
            return SpoolBatch(b"\n".join(parts), lengths, position, skipped)

    @staticmethod
    def _read_record(segment: BinaryIO, offset: int, limit: int) -> tuple[memoryview, array[int], int] | None:
        """Body, line lengths and total size of the record at ``offset``; ``None`` if torn or damaged."""
        if offset + _HEADER.size > limit:
            return None
        segment.seek(offset)
        magic, length, crc = _HEADER.unpack(segment.read(_HEADER.size))
        if magic != MAGIC or length > MAX_RECORD_BYTES or offset + _HEADER.size + length > limit:
            return None
        payload = segment.read(length)
        if len(payload) != length or zlib.crc32(payload, zlib.crc32(_COUNT.pack(length))) != crc:
            return None
        decoded = _decode_payload(payload)
        if decoded is None:
            return None
        return decoded[0], decoded[1], _HEADER.size + length

    def _resync(self, segment: BinaryIO, start: int, limit: int) -> int:
        """Offset of the next record that checks out after damage at ``start - 1``; ``limit`` if none."""
        segment.seek(start)
        rest = segment.read(limit - start)
        at = rest.find(MAGIC)
        while at != -1:
            if self._read_record(segment, start + at, limit) is not None:
                return start + at
            at = rest.find(MAGIC, at + 1)
        return limit

    # ------------------------------------------------------------------------------ acknowledging

    def ack(self, batch: SpoolBatch) -> None:
        """Everything up to ``batch.end`` is confirmed: move the cursor and delete whole segments
        before it (never the active segment). Call only after InfluxDB confirmed the batch, or after
        its refused lines were dead-lettered."""
        with self._lock:
            if batch.end <= self._cursor:
                return
            self._cursor = batch.end
            self._skipped += batch.skipped_bytes
            self._drop_consumed()
            try:
                self._save_cursor()
            except OSError as error:
                # The disk is full or read-only. The cursor stays right in memory, so the sender goes
                # on; on disk it lags, which after a restart only replays batches InfluxDB already
                # holds (harmless). Raising here ended the writer, and with it the twin.
                if not self._cursor_failing:
                    log.warning(
                        "cannot save the spool cursor in %s (%s): saved again at the next batch", self.directory, error
                    )
                self._cursor_failing = True
            else:
                if self._cursor_failing:
                    log.info("the spool cursor in %s is saved again", self.directory)
                self._cursor_failing = False

    def _drop_consumed(self) -> None:
        for index in sorted(self._sizes):
            consumed = index < self._cursor.segment or (
                index == self._cursor.segment and self._cursor.offset >= self._sizes[index]
            )
            if not consumed or index == self._active_index:
                continue
            with contextlib.suppress(FileNotFoundError):
                self._segment_path(index).unlink()
            del self._sizes[index]
        if self._cursor.segment not in self._sizes:
            later = [i for i in self._sizes if i > self._cursor.segment]
            self._cursor = SpoolPosition(min(later, default=self._next_index), 0)
        recent, cursor = self._recent, (self._cursor.segment, self._cursor.offset)
        while recent and next(iter(recent)) < cursor:  # acknowledged: only the disk keeps it now
            _, (body, _, _) = recent.popitem(last=False)
            self._recent_bytes -= len(body)

    def _load_cursor(self) -> SpoolPosition:
        first = SpoolPosition(min(self._sizes, default=0), 0)
        try:
            raw = json.loads((self.directory / CURSOR_FILE).read_text())
            cursor = SpoolPosition(int(raw["segment"]), int(raw["offset"]), int(raw.get("line", 0)))
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            return first  # no cursor (or a damaged one): replay everything, which is harmless
        if cursor.segment not in self._sizes:
            return SpoolPosition(cursor.segment, 0)  # its segment is gone: everything before it was confirmed
        if not 0 <= cursor.offset <= self._sizes[cursor.segment]:
            return SpoolPosition(cursor.segment, 0)
        if cursor.line < 0 or cursor.offset == self._sizes[cursor.segment]:
            return SpoolPosition(cursor.segment, cursor.offset)  # no record there to be inside of
        return cursor

    def _save_cursor(self) -> None:
        tmp = self.directory / (CURSOR_FILE + ".tmp")
        cursor = self._cursor
        tmp.write_text(json.dumps({"segment": cursor.segment, "offset": cursor.offset, "line": cursor.line}))
        os.replace(tmp, self.directory / CURSOR_FILE)

    # ------------------------------------------------------------------------------------- misc

    def _end(self) -> SpoolPosition:
        if not self._sizes:
            return SpoolPosition(self._next_index, 0)
        last = max(self._sizes)
        return SpoolPosition(last, self._sizes[last])

    def _segment_path(self, index: int) -> Path:
        return self.directory / f"{index:016d}{SEGMENT_SUFFIX}"

    def close(self) -> None:
        """Seal the active segment. The spool object is not used afterwards; its files stay."""
        with self._lock:
            self._seal()
            self._recent.clear()
            self._recent_bytes = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
