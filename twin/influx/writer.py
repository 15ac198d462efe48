"""The InfluxDB writer: points in, nothing lost, through the v1-compatible HTTP API only.

Public API (everything else here is internal)::

    from twin.influx.writer import InfluxWriter

    async with InfluxWriter(settings.influx) as writer:   # spool directory: settings.influx.spool_dir
        writer.submit(points)         # never blocks; never raises because InfluxDB is down
        await writer.flush()          # all submitted points are on disk (fsync-ed): they survive a crash
        await writer.drain(30.0)      # ... and confirmed by InfluxDB; False on timeout (or without a URL)
        writer.stats                  # WriterStats: counters for /metrics
        writer.describe()             # one line saying where points go

Call ``submit``/``flush``/``drain`` from the event loop the writer was entered in.

How a point travels: ``submit`` encodes it to line protocol (``twin.timeseries.points``) into an
in-memory buffer. Every ``flush_interval_s``, or as soon as ``batch_size`` points wait, the buffer
is appended to the durable spool (``twin.influx.spool``: write-ahead, fsync-ed). One sender reads
the spool in order and POSTs ``/write?db=…&rp=…&precision=ns`` (gzip-compressed when
``settings.gzip``), then acknowledges what InfluxDB answered:

* **2xx**: written; the spool reclaims it.
* **timeouts, connection errors, 5xx, 429**: retried, with exponential backoff and jitter
  (``retry_initial_s`` doubling up to ``retry_max_s``; half fixed, half random, from an injectable
  ``random.Random``), waiting at least ``Retry-After`` when InfluxDB sends one (capped at
  :data:`RETRY_AFTER_CAP_S`). Retries never stop: the points are safe in the spool meanwhile, and
  everything behind them waits, in order.
* **401, 403, 404**: configuration, not data (wrong credentials, no database, no DBRP mapping on
  2.x): retried as above, counted (``auth_failures`` for 401/403, ``database_missing`` for 404),
  and said in plain words in ``stats.problem`` (what is wrong, that the points are kept, the fix;
  ``/healthz`` shows it) until a write succeeds. A 404 from 1.x ("database not found") makes the
  writer send ``CREATE DATABASE`` again. Dead-lettering here would throw away good points.
* **any other 4xx** (400 parse error, partial write, field type conflict; 413 too large; 2.x's 422
  partial write): refused lines go to the dead-letter file ``<spool_dir>/dead-letter.jsonl`` (one
  JSON object per refused line: ``at``, ``status``, ``reason`` as InfluxDB gave it, ``database``,
  ``retention_policy``, ``line``), are counted in ``dead_lettered`` and are never retried; the
  rest is sent again. When the answer names the refused lines (InfluxDB 3's ``400`` lists them,
  :func:`twin.influx.dialect.refused_lines`) exactly those are dead-lettered, each with its own
  reason; otherwise the batch is split in halves, recursively, until the lines InfluxDB still
  refuses are alone. Resending is safe: the lines InfluxDB already stored are rewritten with the
  same key, which overwrites.

Which InfluxDB answers: before its first write the writer asks ``GET /ping`` (1.x, 2.x and 3.x
all serve it, with their version; :mod:`twin.influx.dialect` says what each version's answers
mean). ``stats.server`` says what it found. Database creation: on 1.x (and, once, on a server
that gives no version) the writer sends ``CREATE DATABASE`` through ``/query`` before the first
write and after a 1.x "database not found" (a no-op if it exists). A 401/403 answer is ignored
(a 1.x user without admin rights: an admin makes the database). Never on 2.x, which has no
InfluxQL database management (a bucket with a DBRP mapping is made by an operator, or by 2.x
itself for a bucket named after the database), nor on 3.x, which creates the database on the
first write; an answer that says the statement is not supported ends the attempts too.

Authentication: a token is sent as ``Authorization: Token …`` (2.x, and 3.x on its v1
endpoints; also 1.8+ with ``user:password`` as the token); otherwise a username and password go
as HTTP Basic auth, which 1.x and the 2.x/3.x v1 API accept (2.x: a v1 authorization, or any user
name with a token as the password; 3.x: the password is a token). Credentials are never logged.

Without a URL the writer only spools (it logs so, and :meth:`InfluxWriter.describe` says so); a
later writer with a URL on the same spool directory sends everything.

Shutdown (``__aexit__``): the buffer is spooled, the sender gets ``drain_on_close_s`` to finish,
and whatever is left waits in the spool for the next start.

Memory bound: while the buffer holds :data:`BUFFER_LIMIT_BYTES` (the spool cannot keep up: a
stalled or failing disk), sheddable points (telemetry, ``sim_truth``, twin health) are shed and counted; alarm,
state, command and training points are always kept.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import httpx

from twin.influx.dialect import (
    UNKNOWN_SERVER,
    NotFound,
    Server,
    configuration_problem,
    identify,
    influx_reason,
    not_found,
    refused_lines,
    statement_error,
)
from twin.influx.spool import Admission, Spool, SpoolBatch, SpoolPosition, SpoolStats
from twin.settings import InfluxSettings
from twin.timeseries.points import InfluxPoint

log = logging.getLogger(__name__)

PRECISION: Final = "ns"
"""Timestamps are nanoseconds (see ``twin.timeseries.points``)."""

MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
"""Most uncompressed bytes in one write request; InfluxDB 1.x refuses bodies over 25 MB by default."""

RETRY_AFTER_CAP_S: Final = 300.0
"""A ``Retry-After`` longer than this is not believed: five minutes is long enough for any overload."""

BUFFER_LIMIT_BYTES: Final = 256 * 1024 * 1024
"""In-memory buffer bound (encoded bytes) before sheddable points are shed. The batcher empties the
buffer into the spool every ``flush_interval_s``, so it only fills when the disk stalls: a burst of
100,000 telemetry points is about 40 MB, far below; a stalled disk reaches it and stops growing."""

SPOOL_RETRY_S: Final = 1.0
"""After a disk error, the batcher tries the spool again at most this often (a full disk stays full a while)."""

SPOOL_KEEP_RECENT_BYTES: Final = 4 * MAX_REQUEST_BYTES
"""Bytes of the latest spooled records the spool also keeps in memory until InfluxDB confirms
them (a writer with a URL): the sender takes them from there rather than reading and checking the
file it has just written (``twin.influx.spool``, ``keep_recent_bytes``). Four full requests;
behind a longer backlog (InfluxDB slow or away) the rest is read from disk, as after a restart."""

GZIP_LEVEL: Final = 1
"""Fastest gzip: line protocol compresses about 10x even at level 1; higher levels cost CPU for little."""

DEAD_LETTER_FILE: Final = "dead-letter.jsonl"


class Disposition(Enum):
    """What to do with a batch after InfluxDB answered with a status."""

    WRITTEN = "written"
    RETRY = "retry"
    REFUSED = "refused"


def disposition(status: int) -> Disposition:
    """2xx written; 429, 5xx, 401/403/404 (configuration) and anything unexpected retried; other 4xx refused."""
    if 200 <= status < 300:
        return Disposition.WRITTEN
    if 400 <= status < 500 and status not in (401, 403, 404, 429):
        return Disposition.REFUSED
    return Disposition.RETRY


def retry_after_s(header: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP date); ``None`` if absent or unreadable."""
    if not header:
        return None
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff_s(
    attempt: int, *, initial_s: float, max_s: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Delay before retry number ``attempt + 1`` (``attempt`` counts from 0).

    Exponential with "equal jitter": the step is ``min(max_s, initial_s * 2**attempt)``; the delay
    is half of it plus a uniform random part of the other half, so replicas retrying together
    spread out but none hammers. At least ``retry_after`` (capped at :data:`RETRY_AFTER_CAP_S`).
    """
    step = min(max_s, initial_s * 2.0 ** min(attempt, 60))
    delay = step / 2 + rng.uniform(0.0, step / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters (points unless named otherwise), cumulative since the writer started.

    ``accepted`` = ``shed`` + ``spooled`` + ``buffered`` (+ ``lost`` on a disk failure at close),
    whenever no append to the spool is under way.
    ``written`` and ``dead_lettered`` count what the sender settled, including points replayed from
    a spool an earlier process left, so they may exceed ``spooled`` after a restart.
    ``auth_failures`` and ``database_missing`` count answers (401/403, 404), not points.
    ``problem``: why InfluxDB does not take the points although it answers (credentials, a missing
    database or DBRP mapping), in plain words with the fix; ``None`` once a write succeeds.
    ``server``: what ``/ping`` said (``InfluxDB 2.7.10 (2.x, OSS)``), ``None`` before it answered.
    """

    accepted: int
    buffered: int
    spooled: int
    written: int
    retried: int
    dead_lettered: int
    shed: int
    lost: int
    requests: int
    failed_requests: int
    auth_failures: int
    database_missing: int
    spool_errors: int
    spool_bytes: int
    spool_backlog_bytes: int
    spool_skipped_bytes: int
    influx_reachable: bool | None
    last_error: str | None
    problem: str | None = None
    server: str | None = None


def _constant(lines: list[bytes]) -> Callable[[], list[bytes]]:
    return lambda: lines


_NO_SPOOL: Final = SpoolStats(size_bytes=0, backlog_bytes=0, segments=0, shed=0, skipped_bytes=0)


class InfluxWriter:
    """Batches points into InfluxDB through a durable spool. See the module docstring for the contract.

    ``spool_dir`` defaults to ``settings.spool_dir``. ``rng`` drives the retry jitter (pass a seeded
    ``random.Random`` in tests). ``transport`` replaces httpx's network transport (tests wrap the
    real one to watch or disturb requests).
    """

    def __init__(
        self,
        settings: InfluxSettings,
        spool_dir: Path | None = None,
        *,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.spool_dir = Path(spool_dir if spool_dir is not None else settings.spool_dir)
        self._rng = rng if rng is not None else random.Random()
        self._transport = transport
        self._spool: Spool | None = None
        self._spool_stats = _NO_SPOOL
        self._client: httpx.AsyncClient | None = None
        self._task_group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._buffer: list[tuple[bytes, bool]] = []
        self._buffer_bytes = 0
        self._batch_ready = asyncio.Event()
        self._data_waiting = asyncio.Event()
        self._progress = asyncio.Event()
        self._spool_lock = asyncio.Lock()
        self._end = SpoolPosition(0, 0)
        self._acknowledged = SpoolPosition(0, 0)
        self._server: Server | None = None
        self._may_create_database = True
        self._database_ready = False
        self._closed = False
        self._accepted = 0
        self._spooled = 0
        self._written = 0
        self._retried = 0
        self._dead_lettered = 0
        self._shed_in_memory = 0
        self._lost = 0
        self._requests = 0
        self._failed_requests = 0
        self._auth_failures = 0
        self._database_missing = 0
        self._spool_errors = 0
        self._reachable: bool | None = None
        self._failing = False
        self._spool_failing = False
        self._unsynced = False
        self._last_error: str | None = None
        self._problem: str | None = None

    # ---------------------------------------------------------------------------------- public

    def submit(self, points: Iterable[InfluxPoint]) -> None:
        """Take points for writing. Never blocks and never raises because InfluxDB is down or slow.

        Raises ``RuntimeError`` after the writer has closed (a programming error, not an outage).
        """
        if self._closed:
            raise RuntimeError("InfluxWriter.submit after the writer closed")
        buffer = self._buffer
        for point in points:
            self._accepted += 1
            sheddable = point.sheddable
            if sheddable and self._buffer_bytes >= BUFFER_LIMIT_BYTES:
                self._shed_in_memory += 1
                continue
            line = point.line_protocol().encode()
            self._buffer_bytes += len(line)
            buffer.append((line, sheddable))
        if len(buffer) >= self.settings.batch_size:
            self._batch_ready.set()

    def persist(self, entries: Sequence[tuple[bytes, bool]]) -> None:
        """Append ``(line, sheddable)`` entries to the spool *now*, on the caller's thread, without
        ``fsync``: when this returns they survive a crash of the process (the spool syncs them
        within ``flush_interval_s``). This is the twin's ingest path: a message is acknowledged to
        the broker only after its points are here. Raises ``OSError`` when the spool cannot be
        written (nothing of the call is spooled then) and ``RuntimeError`` after close or before
        the writer was entered."""
        if self._closed or self._spool is None:
            raise RuntimeError("InfluxWriter.persist outside the writer's life")
        if not entries:
            return
        self._accepted += len(entries)
        try:
            admission = self._spool.admit(entries, sync=False)
        except OSError as error:
            self._accepted -= len(entries)
            self._spool_errors += 1
            self._last_error = f"spool: {error}"
            if not self._spool_failing:
                log.error("cannot write the spool in %s: %s", self.spool_dir, error)
            self._spool_failing = True
            raise
        if self._spool_failing:
            log.info("the spool in %s takes writes again", self.spool_dir)
            self._spool_failing = False
        self._spooled += admission.spooled
        self._spool_stats = self._spool.stats()
        self._end = self._spool.end
        self._unsynced = True
        if admission.spooled:
            self._data_waiting.set()

    async def flush(self) -> None:
        """Spool every point submitted so far (fsync-ed): from here on they survive a crash.

        Does not wait for InfluxDB. Raises ``OSError`` if the spool cannot be written (the points
        stay buffered and are tried again).
        """
        await self._spool_buffer()

    async def drain(self, timeout_s: float) -> bool:
        """Flush, then wait until InfluxDB confirmed (or dead-lettered) everything spooled so far.

        ``True`` when done; ``False`` after ``timeout_s`` (InfluxDB unreachable: the points stay
        spooled), and at once without a URL.
        """
        await self.flush()
        if self.settings.url is None:
            return False
        return await self._wait_acknowledged(self._end, timeout_s)

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters; cheap (no I/O), for ``/metrics``."""
        spool = self._spool_stats
        return WriterStats(
            accepted=self._accepted,
            buffered=len(self._buffer),
            spooled=self._spooled,
            written=self._written,
            retried=self._retried,
            dead_lettered=self._dead_lettered,
            shed=self._shed_in_memory + spool.shed,
            lost=self._lost,
            requests=self._requests,
            failed_requests=self._failed_requests,
            auth_failures=self._auth_failures,
            database_missing=self._database_missing,
            spool_errors=self._spool_errors,
            spool_bytes=spool.size_bytes,
            spool_backlog_bytes=spool.backlog_bytes,
            spool_skipped_bytes=spool.skipped_bytes,
            influx_reachable=self._reachable,
            last_error=self._last_error,
            problem=self._problem,
            server=self._server.describe() if self._server is not None else None,
        )

    def describe(self) -> str:
        """Where points go, in one line for people (no secrets). The writer's owner prints it once
        (``pumptwin serve`` under its address line, the demo in its banner, a backfill at its
        start); the writer itself does not, so that a user reads it once."""
        s = self.settings
        limit = _size_text(s.spool_max_bytes)
        if s.url is None:
            return (
                f"no InfluxDB (PUMPTWIN_INFLUX__URL not set): points are kept in the spool {self.spool_dir} "
                f"(up to {limit}) until a twin with a URL sends them"
            )
        url = httpx.URL(s.url).copy_with(username=None, password=None)
        target = f"database {s.database!r}" + (
            f", retention policy {s.retention_policy!r}" if s.retention_policy else ""
        )
        if s.token is not None:
            auth = "token"
        elif s.username is not None:
            auth = f"user {s.username!r}"
        else:
            auth = "no auth"
        return f"InfluxDB {url} ({target}, {auth}), spooled on disk first in {self.spool_dir} (up to {limit})"

    # ------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        s = self.settings
        keep = SPOOL_KEEP_RECENT_BYTES if s.url is not None else 0
        self._spool = await asyncio.to_thread(Spool, self.spool_dir, s.spool_max_bytes, keep_recent_bytes=keep)
        self._spool_stats = self._spool.stats()
        self._end = self._spool.end
        self._acknowledged = self._spool.acknowledged
        if s.url is not None:
            self._client = httpx.AsyncClient(
                base_url=s.url,
                timeout=s.timeout_s,
                auth=self._basic_auth(),
                transport=self._transport,
            )
        if self._spool_stats.backlog_bytes:
            log.info(
                "the spool holds %s of points left by an earlier run: sending them first",
                _size_text(self._spool_stats.backlog_bytes),
            )
        self._task_group = asyncio.TaskGroup()
        await self._task_group.__aenter__()
        self._tasks.append(self._task_group.create_task(self._batch_loop(), name="influx-batcher"))
        if self._client is not None:
            self._tasks.append(self._task_group.create_task(self._send_loop(), name="influx-sender"))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        try:
            try:
                await self._spool_buffer()
            except OSError as error:
                self._lost += len(self._buffer)
                log.error("%d points could not be spooled at close and are lost: %s", len(self._buffer), error)
                self._buffer, self._buffer_bytes = [], 0
            if self._client is not None and self._acknowledged < self._end:
                drained = await self._wait_acknowledged(self._end, self.settings.drain_on_close_s)
                if not drained:
                    log.warning(
                        "closing with %d bytes still spooled in %s", self._spool_stats.backlog_bytes, self.spool_dir
                    )
        finally:
            for task in self._tasks:
                task.cancel()
            try:
                if self._task_group is not None:
                    # the body's own exception is not the group's: passed in, the group would wrap it
                    # in an ExceptionGroup and raise before the client and the spool are closed
                    await self._task_group.__aexit__(None, None, None)
            finally:
                if self._client is not None:
                    await self._client.aclose()
                if self._spool is not None:
                    self._spool.close()

    # ---------------------------------------------------------------------------------- spooling

    async def _batch_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.settings.flush_interval_s):
                    await self._batch_ready.wait()
            except TimeoutError:
                pass
            self._batch_ready.clear()
            try:
                await self._spool_buffer()
                if self._unsynced and self._spool is not None:
                    self._unsynced = False
                    await asyncio.to_thread(self._spool.sync)
            except OSError:  # counted and logged; the points stay buffered: try again in a while
                await asyncio.sleep(max(self.settings.flush_interval_s, SPOOL_RETRY_S))

    async def _spool_buffer(self) -> None:
        """Append the buffer to the spool, in ``batch_size`` records. On ``OSError`` what is not
        spooled goes back to the front of the buffer and the error is raised."""
        async with self._spool_lock:
            if not self._buffer or self._spool is None:
                return
            pending, self._buffer = self._buffer, []
            size = self.settings.batch_size
            for start in range(0, len(pending), size):
                chunk = pending[start : start + size]
                try:
                    admission, stats, end = await asyncio.to_thread(self._admit, self._spool, chunk)
                except OSError as error:
                    self._buffer = pending[start:] + self._buffer
                    self._buffer_bytes = sum(len(line) for line, _ in self._buffer)
                    self._spool_errors += 1
                    self._last_error = f"spool: {error}"
                    level = logging.DEBUG if self._spool_failing else logging.ERROR
                    self._spool_failing = True
                    log.log(level, "cannot write the spool in %s: %s", self.spool_dir, error)
                    raise
                if self._spool_failing:
                    log.info("the spool in %s takes writes again", self.spool_dir)
                    self._spool_failing = False
                self._spooled += admission.spooled
                self._buffer_bytes -= sum(len(line) for line, _ in chunk)
                self._spool_stats = stats
                self._end = end
                if admission.spooled:
                    self._data_waiting.set()

    @staticmethod
    def _admit(spool: Spool, chunk: list[tuple[bytes, bool]]) -> tuple[Admission, SpoolStats, SpoolPosition]:
        admission = spool.admit(chunk)
        return admission, spool.stats(), spool.end

    async def _wait_acknowledged(self, target: SpoolPosition, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                while self._acknowledged < target:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    # ----------------------------------------------------------------------------------- sending

    async def _send_loop(self) -> None:
        assert self._spool is not None
        spool = self._spool
        try:  # at start, so dashboards find the database before the first point; retried before each write
            await self._prepare()
        except httpx.HTTPError as error:
            log.debug("InfluxDB not reachable at start (%s): will try again before the first write", error)
        # The delivered batch is acknowledged, and the one after the next read and compressed, in
        # one trip to a worker thread while the next is on its way: between two requests the loop
        # only starts the next one (a busy loop, the twin's ingest encoding, makes every extra
        # step between requests cost a turn of it).
        settled: SpoolBatch | None = None
        upcoming: tuple[SpoolBatch | None, bytes | None] | None = None
        while True:
            self._data_waiting.clear()
            if upcoming is not None and upcoming[0] is not None:
                batch, payload = upcoming
            else:  # nothing read ahead: acknowledge the last, read the next, in one trip
                stats, acknowledged, batch, payload = await asyncio.to_thread(self._settle_and_read, spool, settled)
                self._publish_settled(settled, stats, acknowledged)
                settled = None
            upcoming = None
            if batch is None:
                await self._data_waiting.wait()
                continue
            if not batch.line_count:  # only damaged bytes: nothing to send, acknowledge it all the same
                stats, acknowledged = await asyncio.to_thread(self._settle, spool, settled, batch)
                self._publish_settled(batch, stats, acknowledged)
                settled = None
                continue
            background = asyncio.ensure_future(asyncio.to_thread(self._settle_and_read_after, spool, settled, batch))
            try:
                await self._deliver(batch.body, batch.line_count, batch.lines, payload)
            except BaseException:
                background.cancel()
                raise
            stats, acknowledged, after, after_payload = await background
            self._publish_settled(settled, stats, acknowledged)
            settled, upcoming = batch, (after, after_payload)

    def _publish_settled(self, settled: SpoolBatch | None, stats: SpoolStats, acknowledged: SpoolPosition) -> None:
        if settled is not None:
            self._spool_stats, self._acknowledged = stats, acknowledged
            self._progress.set()

    @staticmethod
    def _settle(spool: Spool, *settled: SpoolBatch | None) -> tuple[SpoolStats, SpoolPosition]:
        """Worker thread: acknowledge ``settled``, in order."""
        for batch in settled:
            if batch is not None:
                spool.ack(batch)
        return spool.stats(), spool.acknowledged

    def _settle_and_read_after(
        self, spool: Spool, settled: SpoolBatch | None, sending: SpoolBatch
    ) -> tuple[SpoolStats, SpoolPosition, SpoolBatch | None, bytes | None]:
        """Worker thread, while ``sending`` is on its way: acknowledge ``settled`` (delivered before
        it) and read the batch after ``sending`` (not acknowledged yet), compressed. Gzip and file
        reads release the GIL: they overlap with InfluxDB's time and the loop's work."""
        if settled is not None:
            spool.ack(settled)
        batch = spool.read(self.settings.batch_size, MAX_REQUEST_BYTES, after=sending.end)
        payload = self._compress(batch.body) if batch is not None and batch.line_count else None
        return spool.stats(), spool.acknowledged, batch, payload

    def _settle_and_read(
        self, spool: Spool, settled: SpoolBatch | None
    ) -> tuple[SpoolStats, SpoolPosition, SpoolBatch | None, bytes | None]:
        """Worker thread: acknowledge ``settled``, read the next batch and compress its body."""
        if settled is not None:
            spool.ack(settled)
        batch = spool.read(self.settings.batch_size, MAX_REQUEST_BYTES)
        payload = self._compress(batch.body) if batch is not None and batch.line_count else None
        return spool.stats(), spool.acknowledged, batch, payload

    def _compress(self, body: bytes) -> bytes:
        return gzip.compress(body, GZIP_LEVEL) if self.settings.gzip else body

    async def _deliver(
        self, body: bytes, count: int, lines: Callable[[], list[bytes]], payload: bytes | None = None
    ) -> None:
        """Settle ``count`` lines (``body``: joined by ``\\n``; ``lines()``: split; ``payload``: the
        body as sent, compressed if so configured): written, or the refused ones dead-lettered and
        the rest written. Retries until then."""
        if payload is None:
            payload = self._compress(body) if len(body) < 65536 else await asyncio.to_thread(self._compress, body)
        attempt = 0
        while True:
            wait_hint: float | None = None
            try:
                await self._prepare()
                response = await self._post(payload)
            except httpx.HTTPError as error:  # timeouts, refused connections, resets, garbled answers
                self._note_failure(f"{type(error).__name__}: {error}", reachable=False)
            else:
                status = response.status_code
                outcome = disposition(status)
                if outcome is Disposition.WRITTEN:
                    self._written += count
                    self._note_success()
                    return
                reason = influx_reason(response)
                if outcome is Disposition.REFUSED:
                    self._reachable = True
                    await self._settle_refused(response, count, lines)
                    return
                if status in (401, 403, 404):
                    self._note_configuration(response, reason)
                wait_hint = retry_after_s(response.headers.get("retry-after"), datetime.now(UTC))
                self._note_failure(f"HTTP {status}: {reason}", reachable=True)
            self._retried += count
            s = self.settings
            delay = backoff_s(
                attempt, initial_s=s.retry_initial_s, max_s=s.retry_max_s, rng=self._rng, retry_after=wait_hint
            )
            log.debug("retrying %d points in %.2f s (attempt %d)", count, delay, attempt + 1)
            attempt += 1
            await asyncio.sleep(delay)

    async def _settle_refused(self, response: httpx.Response, count: int, lines: Callable[[], list[bytes]]) -> None:
        """A batch InfluxDB refused (wholly or in part): dead-letter the lines it names (InfluxDB 3)
        and send the rest again; else split it in halves down to the single lines it refuses."""
        status, reason = response.status_code, influx_reason(response)
        split = lines()
        named = refused_lines(response, split)
        if named:
            await self._dead_letter([(split[line.index], line.reason) for line in named], status)
            refused = {line.index for line in named}
            rest = [line for index, line in enumerate(split) if index not in refused]
            if rest:  # the lines written already are written again: same key, same values, overwritten
                await self._deliver(b"\n".join(rest), len(rest), _constant(rest))
            return
        if count == 1:
            await self._dead_letter([(split[0], reason)], status)
            return
        for half in (split[: count // 2], split[count // 2 :]):
            await self._deliver(b"\n".join(half), len(half), _constant(half))

    def _note_configuration(self, response: httpx.Response, reason: str) -> None:
        """A 401, 403 or 404 to a write: count it, put the problem in plain words, and after 1.x's
        "database not found" send ``CREATE DATABASE`` again before the next attempt."""
        status = response.status_code
        missing = not_found(response) if status == 404 else NotFound.OTHER
        if status == 404:
            self._database_missing += 1
            if missing is NotFound.DATABASE:  # only 1.x says so: it can create one
                self._database_ready = False
                self._may_create_database = True
        else:
            self._auth_failures += 1
        s = self.settings
        problem = configuration_problem(
            status,
            reason,
            server=self._server or UNKNOWN_SERVER,
            missing=missing,
            database=s.database,
            retention_policy=s.retention_policy,
            credentials="token" if s.token is not None else "user" if s.username is not None else "none",
        )
        if problem != self._problem:
            log.error("InfluxDB at %s does not take the points: %s", self._client_url(), problem)
        self._problem = problem

    async def _post(self, payload: bytes) -> httpx.Response:
        """One write request; ``payload`` is already compressed when ``settings.gzip``."""
        assert self._client is not None
        s = self.settings
        params = {"db": s.database, "precision": PRECISION}
        if s.retention_policy:
            params["rp"] = s.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8", **self._token_header()}
        if s.gzip:
            headers["Content-Encoding"] = "gzip"
        self._requests += 1
        return await self._client.post("/write", params=params, content=payload, headers=headers)

    async def _prepare(self) -> None:
        """Before a write: learn which InfluxDB answers, and on one that makes databases through
        InfluxQL send ``CREATE DATABASE`` (once per start, and again after 1.x's "database not
        found"). Raises ``httpx.HTTPError`` if InfluxDB is unreachable.

        A ``/ping`` refused for the credentials (401/403: InfluxDB 3, where it needs a token) is
        asked again before the next write, and nothing is created meanwhile: the write that
        follows gets the same refusal and says so (``stats.problem``)."""
        if self._server is None:
            response = await self._probe()
            if response.status_code in (401, 403):
                return
            self._server = identify(response.status_code, response.headers)
        if not self._database_ready:
            if self._server.creates_databases and self._may_create_database:
                await self._create_database()
            self._database_ready = True

    async def _probe(self) -> httpx.Response:
        """``GET /ping`` (3.x answers ``HEAD`` with 404); logs what it says."""
        assert self._client is not None
        response = await self._client.get("/ping", headers=self._token_header())
        self._requests += 1
        if response.is_success:
            server = identify(response.status_code, response.headers)
            log.info("InfluxDB at %s is %s", self._client_url(), server.describe())
        else:
            log.info(
                "InfluxDB at %s answered /ping with HTTP %d (%s)",
                self._client_url(),
                response.status_code,
                influx_reason(response),
            )
        return response

    async def _create_database(self) -> None:
        """``CREATE DATABASE`` through ``/query``: a no-op where it exists. Refused for lack of
        rights (401/403): ignored (an admin makes it). Not supported (2.x's ``not implemented``,
        any other error): not tried again until 1.x says "database not found"."""
        assert self._client is not None
        s = self.settings
        name = s.database.replace("\\", "\\\\").replace('"', '\\"')
        response = await self._client.post(
            "/query", params={"q": f'CREATE DATABASE "{name}"'}, headers=self._token_header()
        )
        self._requests += 1
        error = statement_error(response) if response.is_success else None
        if response.status_code in (401, 403):
            log.info(
                "not allowed to create database %r (HTTP %d: %s); assuming an admin makes it",
                s.database,
                response.status_code,
                influx_reason(response),
            )
        elif response.is_error or error is not None:
            self._may_create_database = False
            log.info(
                "this InfluxDB does not create databases through InfluxQL (CREATE DATABASE %r: %s); "
                "the database must exist (2.x: a bucket with a DBRP mapping; 3.x: made by the first write)",
                s.database,
                error or f"HTTP {response.status_code}: {influx_reason(response)}",
            )

    async def _dead_letter(self, refused: list[tuple[bytes, str]], status: int) -> None:
        """Append each refused ``(line, InfluxDB's reason)`` to the dead-letter file (fsync-ed)."""
        s = self.settings
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        records = "".join(
            json.dumps(
                {
                    "at": now,
                    "status": status,
                    "reason": reason,
                    "database": s.database,
                    "retention_policy": s.retention_policy,
                    "line": line.decode(errors="replace"),
                },
                ensure_ascii=False,
            )
            + "\n"
            for line, reason in refused
        )
        await asyncio.to_thread(self._append_dead_letter, self.spool_dir / DEAD_LETTER_FILE, records)
        self._dead_lettered += len(refused)
        log.error(
            "InfluxDB refused %d points (HTTP %d: %s); kept in %s",
            len(refused),
            status,
            refused[0][1],
            DEAD_LETTER_FILE,
        )

    @staticmethod
    def _append_dead_letter(path: Path, records: str) -> None:
        with path.open("a", encoding="utf-8") as file:
            file.write(records)
            file.flush()
            os.fsync(file.fileno())

    # ------------------------------------------------------------------------------------ helpers

    def _token_header(self) -> dict[str, str]:
        token = self.settings.token
        return {"Authorization": f"Token {token.get_secret_value()}"} if token is not None else {}

    def _basic_auth(self) -> httpx.BasicAuth | None:
        s = self.settings
        if s.token is not None or s.username is None:
            return None
        password = s.password.get_secret_value() if s.password is not None else ""
        return httpx.BasicAuth(s.username, password)

    def _note_failure(self, message: str, *, reachable: bool) -> None:
        """Count a failed request; log the first of a run of failures as a warning, the rest at debug."""
        self._failed_requests += 1
        self._last_error = message
        self._reachable = reachable
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        if reachable:
            log.log(level, "InfluxDB at %s did not take a write (%s): retrying", self.settings.url, message)
        else:
            log.log(
                level,
                "InfluxDB at %s unreachable (%s): points wait in the spool %s",
                self.settings.url,
                message,
                self.spool_dir,
            )

    def _note_success(self) -> None:
        if self._failing:
            log.info("InfluxDB at %s takes writes again: sending the spool", self._client_url())
        self._failing = False
        self._reachable = True
        self._problem = None

    def _client_url(self) -> str:
        """The URL without any user name or password in it (for logs)."""
        return str(httpx.URL(self.settings.url or "").copy_with(username=None, password=None))


def _size_text(size_bytes: int) -> str:
    """A size as people read it: ``536870912`` -> ``512 MiB``, ``2048`` -> ``2 KiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            value = size_bytes / scale
            return f"{value:.0f} {unit}" if value >= 10 or value.is_integer() else f"{value:.1f} {unit}"
    return f"{size_bytes} bytes"


__all__ = ["Disposition", "InfluxWriter", "WriterStats", "backoff_s", "disposition", "influx_reason", "retry_after_s"]
