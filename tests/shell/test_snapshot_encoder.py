"""The ingest's snapshot encoder against the reference codec: for every device of a recorded fleet
stream (births, states, alarms, telemetry, real and simulated pumps, refill checks), after every
message, the encoder's payload is the mapping ``twin_to_snapshot`` makes and its text reads back
as that mapping; a model changed in between is encoded afresh, never taken from the cache; and
the SQLite journal stores the encoder's text and reads back the same payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.twin_ingest import recorded_stream
from twin.mirror import fleet as steps
from twin.mirror.fleet import Fleet, FleetConfig
from twin.store.journal import Journal
from twin.store.snapshots import EncodedPayload, SnapshotEncoder, snapshot_to_twin, twin_to_snapshot


def _stream() -> list[tuple[str, bytes, int]]:
    return recorded_stream(12, 3_000)


def test_the_encoders_payload_and_text_are_the_reference_snapshot_after_every_message() -> None:
    encoder = SnapshotEncoder()
    fleet = Fleet(config=FleetConfig())
    at = datetime(2026, 1, 1, tzinfo=UTC)
    encoded = 0
    births_and_states = set()
    for i, (topic, payload, _) in enumerate(_stream()):
        fleet, _effects = steps.apply(fleet, topic, payload, at + timedelta(seconds=i))
        for key, twin in fleet.devices.items():
            if key[1] not in topic:
                continue
            got = encoder.encode(twin, fleet.visits.get(key))
            want = twin_to_snapshot(twin, fleet.visits.get(key))
            assert isinstance(got, EncodedPayload)
            assert dict(got) == want  # read as a mapping: the text parsed
            assert json.loads(got.text) == want
            encoded += 1
            births_and_states.add((id(twin.birth), id(twin.reported)))
    assert encoded > 2_000
    assert len(births_and_states) > 30  # births and states changed along the way: the cache was renewed


def test_a_changed_model_is_encoded_afresh(tmp_path: Path) -> None:
    encoder = SnapshotEncoder()
    fleet = Fleet(config=FleetConfig())
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (topic, payload, _) in enumerate(_stream()[:400]):
        fleet, _ = steps.apply(fleet, topic, payload, at + timedelta(seconds=i))
    key, twin = next((k, t) for k, t in fleet.devices.items() if t.reported is not None)
    assert twin.reported is not None
    first = encoder.encode(twin)
    changed = twin._replace(reported=twin.reported.model_copy(update={"seq": twin.reported.seq + 1}))
    second = encoder.encode(changed)
    assert second["reported"]["seq"] == first["reported"]["seq"] + 1
    assert json.loads(second.text)["reported"]["seq"] == first["reported"]["seq"] + 1
    assert json.loads(encoder.encode(twin).text) == twin_to_snapshot(twin)  # and back

    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.save_snapshot(twin.device_id, twin.site, twin.version, second)
        stored = journal.load_snapshots()[key]
    assert stored == twin_to_snapshot(changed)
    assert snapshot_to_twin(stored) == snapshot_to_twin(twin_to_snapshot(changed))
