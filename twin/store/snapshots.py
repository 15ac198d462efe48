"""Device twins as snapshot payloads (JSON-ready) and back: how a restarted twin, or a replica
taking a partition over, resumes each device at its exact sequence numbers.

A payload is the twin's whole ordering state (session, the highest sequence number and the window
of numbers seen, the numbers of the reported state and sample), its identity (the pinned birth),
what was reported and the presence; for a real pump, also the refill checks of its consecutive
read-outs (``visits``, :mod:`twin.mirror.interrogation`: they need the read-out before, which a
restart would otherwise lose). An unreadable payload (a damaged row, a newer format) is
skipped with a warning: the device's retained birth and state rebuild it on the next subscribe;
unreadable refill checks are dropped with a warning and the twin is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Final

from twin.contract.messages import Birth, State, Telemetry
from twin.mirror.device_twin import DeviceTwin, Presence
from twin.mirror.interrogation import Visits, visits_from_json, visits_json

log = logging.getLogger(__name__)

FORMAT: Final = 2
"""Version of the payload layout (2: devices keyed by site, a window of seen sequence numbers; an
optional ``visits`` list, absent from payloads written before it, which read back without checks)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _ordering_state(twin: DeviceTwin, visits: Visits | None) -> dict[str, Any]:
    """The payload's fields after the models: presence, ordering state, clock, version, checks."""
    rest: dict[str, Any] = {
        "presence": twin.presence.value,
        "presence_reason": twin.presence_reason,
        "presence_since": _iso(twin.presence_since),
        "session": twin.session,
        "high_seq": twin.high_seq,
        "seen": format(twin.seen, "x"),
        "state_seq": twin.state_seq,
        "telemetry_seq": twin.telemetry_seq,
        "birth_seq": twin.birth_seq,
        "refused_session": twin.refused_session,
        "last_seen_at": _iso(twin.last_seen_at),
        "last_device_time": _iso(twin.last_device_time),
        "clock_rate": twin.clock_rate,
        "report_interval_s": twin.report_interval_s,
        "version": twin.version,
        "reported_at": _iso(twin.reported_at),
    }
    if visits is not None and visits.checks:
        rest["visits"] = visits_json(visits)
    return rest


def twin_to_snapshot(twin: DeviceTwin, visits: Visits | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "site": twin.site,
        "device_id": twin.device_id,
        "birth": twin.birth.model_dump(mode="json") if twin.birth else None,
        "reported": twin.reported.model_dump(mode="json") if twin.reported else None,
        "telemetry": twin.telemetry.model_dump(mode="json") if twin.telemetry else None,
        **_ordering_state(twin, visits),
    }


class EncodedPayload(Mapping[str, Any]):
    """A snapshot payload as JSON text (``text``): the SQLite journal stores the text as it is;
    read as a mapping (the PostgreSQL store, tests) it is the text parsed, once, on first use."""

    __slots__ = ("_data", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._data: dict[str, Any] | None = None

    def _mapping(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self.text)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


_SCALARS: Final = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _model_text(model: Any) -> str:
    """A contract model as JSON text, by pydantic's own encoder (the contract's models refuse NaN
    and infinities when they are made, so none reaches it)."""
    text: str = model.__pydantic_serializer__.to_json(model).decode()
    return text


class SnapshotEncoder:
    """:func:`twin_to_snapshot` for the ingest hot path: the same payload, as an
    :class:`EncodedPayload` put together from each model's JSON text, made once per model object
    (a pump's birth and reported state stay the same objects across the samples between them; a
    snapshot spent most of its time encoding them again: 40 µs a snapshot by the reference and
    ``json.dumps``, 17 µs this way, 200 pumps' twins, same run). ``tests/shell/test_snapshot_encoder.py`` proves it reads back
    as the reference's payload."""

    def __init__(self) -> None:
        # device -> (birth, its text), (reported state, its text), as last encoded
        self._last: dict[tuple[str, str], tuple[tuple[Any, str], tuple[Any, str]]] = {}

    @staticmethod
    def _cached(slot: tuple[Any, str] | None, model: Any) -> tuple[Any, str]:
        if model is None:
            return (None, "null")
        if slot is not None and slot[0] is model:
            return slot
        return (model, _model_text(model))

    def encode(self, twin: DeviceTwin, visits: Visits | None = None) -> EncodedPayload:
        key = (twin.site, twin.device_id)
        last = self._last.get(key)
        birth = self._cached(last[0] if last else None, twin.birth)
        reported = self._cached(last[1] if last else None, twin.reported)
        if last is None or last[0] is not birth or last[1] is not reported:
            self._last[key] = (birth, reported)
        rest = _ordering_state(twin, visits)
        head = _SCALARS.encode({"format": FORMAT, "site": twin.site, "device_id": twin.device_id})
        telemetry = _model_text(twin.telemetry) if twin.telemetry is not None else "null"
        return EncodedPayload(
            f'{head[:-1]},"birth":{birth[1]},"reported":{reported[1]},"telemetry":{telemetry},'
            f"{_SCALARS.encode(rest)[1:]}"
        )


def snapshot_to_twin(payload: dict[str, Any]) -> DeviceTwin | None:
    """The twin a payload describes, or None (logged) if it cannot be read."""
    try:
        if payload.get("format") != FORMAT:
            raise ValueError(f"snapshot format {payload.get('format')!r}, this twin reads {FORMAT}")
        return DeviceTwin(
            site=payload["site"],
            device_id=payload["device_id"],
            birth=Birth.model_validate(payload["birth"]) if payload.get("birth") else None,
            reported=State.model_validate(payload["reported"]) if payload.get("reported") else None,
            telemetry=Telemetry.model_validate(payload["telemetry"]) if payload.get("telemetry") else None,
            presence=Presence(payload.get("presence", "unknown")),
            presence_reason=payload.get("presence_reason"),
            presence_since=_dt(payload.get("presence_since")),
            session=payload.get("session"),
            high_seq=int(payload.get("high_seq", -1)),
            seen=int(payload.get("seen", "0"), 16),
            state_seq=int(payload.get("state_seq", -1)),
            telemetry_seq=int(payload.get("telemetry_seq", -1)),
            birth_seq=int(payload.get("birth_seq", -1)),
            refused_session=payload.get("refused_session"),
            last_seen_at=_dt(payload.get("last_seen_at")),
            last_device_time=_dt(payload.get("last_device_time")),
            clock_rate=float(payload.get("clock_rate", 1.0)),
            report_interval_s=payload.get("report_interval_s"),
            version=int(payload.get("version", 0)),
            reported_at=_dt(payload.get("reported_at")),
        )
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("ignoring an unreadable snapshot: %s", exc)
        return None


def snapshot_visits(payload: dict[str, Any]) -> Visits | None:
    """The refill checks a payload holds (None without any, or, logged, when they cannot be read)."""
    data = payload.get("visits")
    if data is None:
        return None
    try:
        return visits_from_json(data)
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("ignoring the unreadable refill checks of a snapshot: %s", exc)
        return None
