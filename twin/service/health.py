"""What ``/healthz`` and ``/metrics`` say about the twin: every part reports here, and the answer
is ``ok`` only when every part is.

Parts (each ``ok``, ``degraded`` or ``down``, with a detail and since when):

* ``ingest`` — the MQTT link and its consumer: connected and taking messages;
* ``journal`` — the last journal write succeeded (``degraded`` while the disk or database refuses
  writes: the twin then stops acknowledging messages and keeps its in-memory board unchanged);
* ``timeseries`` — InfluxDB reachable, or points waiting safely in the spool (``degraded``);
* ``clock`` — the once-a-second clock loop runs on time (``degraded`` when it lags);
* one entry per task of the process (:mod:`twin.app`): a task that ended is ``down``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


_WORST = {Status.OK: 0, Status.DEGRADED: 1, Status.DOWN: 2}


@dataclass(frozen=True, slots=True)
class Part:
    status: Status
    detail: str
    since: datetime


class Health:
    """The parts' latest reports (see the module docstring). ``clock`` gives the time of a change."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self.parts: dict[str, Part] = {}

    def report(self, part: str, status: Status, detail: str = "") -> bool:
        """Record ``part``'s status; True if it changed (worth a log line)."""
        current = self.parts.get(part)
        if current is not None and current.status is status and current.detail == detail:
            return False
        since = current.since if current is not None and current.status is status else self._clock()
        self.parts[part] = Part(status, detail, since)
        return current is None or current.status is not status

    def ok(self, part: str, detail: str = "") -> bool:
        return self.report(part, Status.OK, detail)

    @property
    def status(self) -> Status:
        worst = Status.OK
        for part in self.parts.values():
            if _WORST[part.status] > _WORST[worst]:
                worst = part.status
        return worst

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "parts": {
                name: {"status": p.status.value, "detail": p.detail, "since": p.since.isoformat()}
                for name, p in sorted(self.parts.items())
            },
        }
