"""A folder the gateway watches: read-out files dropped into it are published, then moved aside.

* ``INBOX/`` — drop read-outs here (``.json``, ``.yaml``, ``.yml``; dotfiles and other suffixes are ignored).
  Write a file under another name and rename it into the folder, or let it rest: a file is taken only once
  its size and modification time have not changed for :data:`SETTLE_S`, so a copy in progress is never read.
* ``INBOX/published/`` — a file whose read-out was published (or was already superseded by a newer
  interrogation of the same pump, with a ``.reason.txt`` beside it saying so).
* ``INBOX/rejected/`` — a file that is not a valid read-out, with ``NAME.reason.txt`` beside it: every
  mistake with its line and field. Nothing of it was published.

Files found together are published as one batch (each pump's oldest first). While the broker cannot be
reached the files stay where they are and are tried again at the next poll; nothing is lost or moved. A
name already taken in ``published/`` or ``rejected/`` gets a number (``NAME.1.json``): nothing is overwritten.

The folder is polled (every :data:`POLL_S` by default) rather than watched with inotify: read-outs arrive a
few times a day, and polling also works on the network shares clinics drop files on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from twin.gateway.publisher import GatewayError, Loaded, OutcomeStatus, publish_readouts
from twin.gateway.readout_file import SUFFIXES, ReadoutFileError, load_readout
from twin.mqtt_endpoint import MqttEndpoint

log = logging.getLogger(__name__)

POLL_S: Final = 2.0
"""Seconds between two looks at the folder."""

SETTLE_S: Final = 1.0
"""A file must be unchanged this long before it is read (a copy still running is left alone)."""

PUBLISHED_DIR: Final = "published"
REJECTED_DIR: Final = "rejected"
REASON_SUFFIX: Final = ".reason.txt"


@dataclass
class InboxCounts:
    published: int = 0
    superseded: int = 0
    rejected: int = 0
    broker_failures: int = 0


@dataclass
class Inbox:
    """The watched folder. :meth:`poll` does one round; :meth:`run` polls until ``stop`` is set."""

    directory: Path
    endpoint: MqttEndpoint
    poll_s: float = POLL_S
    settle_s: float = SETTLE_S
    report: Callable[[str], None] = log.info
    counts: InboxCounts = field(default_factory=InboxCounts)
    _seen: dict[Path, tuple[int, int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for sub in (PUBLISHED_DIR, REJECTED_DIR):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)

    def ready(self, now: float) -> list[Path]:
        """Files that have rested :attr:`settle_s` unchanged (``now``: a monotonic clock reading)."""
        out = []
        present = set()
        for path in sorted(self.directory.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix not in SUFFIXES:
                continue
            present.add(path)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            seen = self._seen.get(path)
            if seen is None or seen[:2] != signature:
                self._seen[path] = (*signature, now)
            elif now - seen[2] >= self.settle_s:
                out.append(path)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return out

    async def poll(self, now: float) -> None:
        """Check every ready file; reject the bad ones; publish the good ones as one batch."""
        batch: list[Loaded] = []
        for path in self.ready(now):
            try:
                batch.append(Loaded(str(path), load_readout(path)))
            except ReadoutFileError as exc:
                self._move(path, REJECTED_DIR, "refused: nothing was published\n" + str(exc) + "\n")
                self.counts.rejected += 1
                self.report(f"rejected {path.name}: {exc.problems[0]}")
        if not batch:
            return
        try:
            outcomes = await publish_readouts(self.endpoint, batch)
        except GatewayError as exc:
            self.counts.broker_failures += 1
            self.report(f"not published, will try again: {exc}")
            return
        for outcome in outcomes:
            path = Path(outcome.source)
            if outcome.status is OutcomeStatus.PUBLISHED:
                self.counts.published += 1
                self._move(path, PUBLISHED_DIR, None)
                self.report(f"published {path.name}: {outcome.device_id}, {outcome.detail}")
            else:
                self.counts.superseded += 1
                self._move(path, PUBLISHED_DIR, outcome.detail + "\n")
                self.report(f"skipped {path.name}: {outcome.detail}")

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            await self.poll(loop.time())
            try:
                async with asyncio.timeout(self.poll_s):
                    await stop.wait()
            except TimeoutError:
                pass

    def _move(self, path: Path, where: str, reason: str | None) -> Path:
        target_dir = self.directory / where
        target = target_dir / path.name
        n = 0
        while target.exists() or (target_dir / (target.name + REASON_SUFFIX)).exists():
            n += 1
            target = target_dir / f"{path.stem}.{n}{path.suffix}"
        path.replace(target)
        self._seen.pop(path, None)
        if reason is not None:
            (target_dir / (target.name + REASON_SUFFIX)).write_text(reason, encoding="utf-8")
        return target
