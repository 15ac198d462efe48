"""A twin service in the test's own process and loop, fed contract messages as the MQTT link
would feed it (encoded payloads, arrival stamps), with its journal in SQLite."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from twin.contract.codec import encode
from twin.contract.messages import WireModel
from twin.contract.topics import Channel, build_topic
from twin.mirror.fleet import FleetConfig
from twin.service.twin_service import QueueOutbox, Received, TwinService
from twin.store.local import LocalJournalStore


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
