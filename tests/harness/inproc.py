"""A twin service in the test's own process and loop, fed contract messages as the MQTT link
would feed it (encoded payloads, arrival stamps), with its journal in SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from twin.contract.codec import encode
from twin.contract.messages import WireModel
from twin.contract.topics import Channel, build_topic
from twin.mirror.fleet import FleetConfig
from twin.service.twin_service import QueueOutbox, Received, TwinService
from twin.store.local import LocalJournalStore


@dataclass
class IngestCount:
    """What :func:`count_ingest` saw: messages the service took, and ``done`` once ``expected`` were."""

    expected: int
    handled: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


def count_ingest(service: TwinService, expected: int) -> IngestCount:
    """Count the messages ``service.ingest`` takes from now on (each after its batch is durable),
    for a test or benchmark that waits until a link has handed ``expected`` messages over."""
    count = IngestCount(expected)
    ingest = service.ingest

    async def counted(batch: list[Received]) -> None:
        await ingest(batch)
        count.handled += len(batch)
        if count.handled >= count.expected:
            count.done.set()

    service.ingest = counted  # type: ignore[method-assign]
    return count


async def new_service(
    path: Path | None, *, clock: Callable[[], datetime], config: FleetConfig | None = None
) -> TwinService:
    service = TwinService(LocalJournalStore(path), clock=clock, config=config, outbox=QueueOutbox())
    await service.restore()
    return service


async def feed(
    service: TwinService,
    site: str,
    device: str,
    messages: Iterable[tuple[Channel, WireModel]],
    at: datetime | None = None,
) -> None:
    """Deliver ``messages`` of ``device`` at ``site`` as one batch, stamped ``at`` (default: the service's clock)."""
    stamp = at or service.clock()
    batch = [
        Received(
            build_topic(site, device, channel), encode(message), stamp, 1 if channel is not Channel.TELEMETRY else 0
        )
        for channel, message in messages
    ]
    await service.ingest(batch)
