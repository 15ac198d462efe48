"""The drills' ledger: every message a drill publishes, by device, channel, session and sequence,
set against what the twin made durable of it.

*Sent* is what the broker took responsibility for: a QoS 1 message whose PUBACK the publisher got
(the flag paho sets on the PUBACK). A message published while the broker was away waits in
the publisher and is sent (and counted) once it is back, as a pump's offline queue would be.

What the twin kept is read from its own durable records, never from its memory:

* **alarms** (QoS 1): the journal's device-event marks (``device_alarm_event``: one row per device,
  alarm id and event applied) and the ``alarm`` points in InfluxDB (one per event, with its seq);
  *duplicated* counts lifecycle transitions beyond one per published event (a raise applied twice
  re-raises its alarm point in the journal) and InfluxDB points stored twice;
* **states** (QoS 1): the ``state`` points in InfluxDB (with their seq), and the twin's snapshot:
  the last state each device reported must be the one the twin mirrors;
* **telemetry** (QoS 0 by contract) is counted, not held to zero loss: a sample on the wire when a
  connection dies is gone, and the next one replaces it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.servers import Influxd


@dataclass(frozen=True, slots=True)
class Sent:
    """One published message: its identity and, for alarms, the event it carries."""

    device: str
    channel: str
    session: int
    seq: int
    alarm_id: str | None = None
    event: str | None = None
    code: str | None = None


@dataclass
class Tally:
    """One channel of one drill: the figures the reliability table shows."""

    sent: int = 0
    kept: int = 0
    lost: int = 0
    duplicated: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


@dataclass
class Reckoning:
    """A drill's outcome; :meth:`assert_nothing_lost` is what every drill asserts."""

    drill: str
    alarms_journal: Tally
    alarms_influx: Tally
    states_influx: Tally
    states_mirror: Tally
    telemetry_sent: int
    telemetry_kept: int
    unsent: int
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("notes",)}
        for key in ("alarms_journal", "alarms_influx", "states_influx", "states_mirror"):
            out[key].pop("examples")
        return {**out, **self.notes}

    def summary(self) -> str:
        a, ai, s, sm = self.alarms_journal, self.alarms_influx, self.states_influx, self.states_mirror
        return (
            f"[{self.drill}] alarms sent {a.sent}: journal kept {a.kept} lost {a.lost} duplicated {a.duplicated}; "
            f"InfluxDB kept {ai.kept} lost {ai.lost} duplicated {ai.duplicated} | states sent {s.sent}: "
            f"InfluxDB kept {s.kept} lost {s.lost} duplicated {s.duplicated}; mirrored {sm.kept}/{sm.sent} | "
            f"telemetry sent {self.telemetry_sent}, stored {self.telemetry_kept} | not taken by the broker {self.unsent}"
            + (f" | {self.notes}" if self.notes else "")
        )

    def record(self) -> None:
        """Print the summary, and append the row to ``$PUMPTWIN_DRILL_LEDGER`` (JSON lines) if set:
        that is where the figures of docs/reliability.md come from."""
        print(self.summary())
        target = os.environ.get("PUMPTWIN_DRILL_LEDGER")
        if target:
            with Path(target).open("a") as out:
                out.write(json.dumps(self.row()) + "\n")

    def assert_nothing_lost(self) -> None:
        problems = []
        if self.unsent:
            problems.append(f"{self.unsent} QoS 1 messages never taken by the broker")
        for name in ("alarms_journal", "alarms_influx", "states_influx", "states_mirror"):
            t: Tally = getattr(self, name)
            if t.lost or t.duplicated or t.kept != t.sent:
                problems.append(f"{name}: {t.lost} lost, {t.duplicated} duplicated of {t.sent}; e.g. {t.examples}")
        if self.alarms_journal.sent == 0 or self.states_influx.sent == 0:
            problems.append("the drill sent no alarms or no states: it proves nothing")
        assert not problems, self.summary() + "\n" + "\n".join(problems)


class Ledger:
    """What a drill published (thread-safe enough: one publisher thread appends, the test reads after)."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.published: list[tuple[Sent, Any]] = []  # (message, paho MQTTMessageInfo or None for QoS 0)
        self.telemetry = 0

    def add(self, sent: Sent, info: Any) -> None:
        if sent.channel == "telemetry":
            self.telemetry += 1
        else:
            self.published.append((sent, info))

    def taken(self) -> list[Sent]:
        return [s for s, info in self.published if info is not None and _acknowledged(info)]

    def waiting(self) -> int:
        return sum(1 for _, info in self.published if info is None or not _acknowledged(info))

    # ----------------------------------------------------------------------------------- reckoning

    def reckon(self, drill: str, journal: Path, influxd: Influxd, database: str, **notes: Any) -> Reckoning:
        taken = self.taken()
        alarms = [s for s in taken if s.channel == "alarm"]
        states = [s for s in taken if s.channel == "state"]
        marks, transitions, snapshots = _journal(journal, self.site)
        influx_alarms = _influx(influxd, database, "alarm", "\"event\" = 'raised' OR \"event\" = 'cleared'")
        influx_states = _influx(influxd, database, "state")
        influx_telemetry = _influx(influxd, database, "telemetry")
        return Reckoning(
            drill=drill,
            alarms_journal=_alarms_in_journal(self.site, alarms, marks, transitions),
            alarms_influx=_by_seq(alarms, influx_alarms),
            states_influx=_by_seq(states, influx_states),
            states_mirror=_mirrored(states, snapshots),
            telemetry_sent=self.telemetry,
            telemetry_kept=sum(len(v) for v in influx_telemetry.values()),
            unsent=len(self.published) - len(taken),
            notes=notes,
        )


def _journal(path: Path, site: str) -> tuple[set[tuple[str, str, str]], list[tuple[str, str]], dict[str, Any]]:
    """(device, alarm id, event) marks; (point key, lifecycle event) transitions; snapshots by device."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        marks = {
            (d, a, e)
            for d, a, e in db.execute(
                "SELECT device_id, alarm_id, event FROM device_alarm_event WHERE site = ?", (site,)
            )
        }
        transitions = list(db.execute("SELECT key, event FROM alarm_journal WHERE site = ? ORDER BY id", (site,)))
        snapshots = {d: json.loads(p) for d, p in db.execute("SELECT device_id, payload FROM twin_snapshot")}
    finally:
        db.close()
    return marks, transitions, snapshots


def _influx(influxd: Influxd, database: str, measurement: str, where: str = "") -> dict[str, list[tuple[int, int]]]:
    """(session, seq) of every point of ``measurement``, by device."""
    q = f'SELECT "session", "seq" FROM "{measurement}"' + (f" WHERE {where}" if where else "") + ' GROUP BY "device"'
    result = influxd.query(q, db=database)
    found: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for series in result["results"][0].get("series", []):  # type: ignore[index, union-attr]
        device = series["tags"]["device"]
        found[device] += [(int(session), int(seq)) for _, session, seq in series["values"]]
    return found


def _by_seq(sent: list[Sent], stored: dict[str, list[tuple[int, int]]]) -> Tally:
    tally = Tally(sent=len(sent))
    counts = Counter((device, key) for device, keys in stored.items() for key in keys)
    for s in sent:
        n = counts.get((s.device, (s.session, s.seq)), 0)
        if n == 0:
            tally.lost += 1
            tally.note(f"{s.device} {s.channel} seq {s.seq} not stored")
        else:
            tally.kept += 1
            if n > 1:
                tally.duplicated += n - 1
                tally.note(f"{s.device} {s.channel} seq {s.seq} stored {n} times")
    return tally


def _alarms_in_journal(
    site: str, sent: list[Sent], marks: set[tuple[str, str, str]], transitions: list[tuple[str, str]]
) -> Tally:
    """Kept: the event's mark is in the journal. Duplicated: per alarm point, raise (or re-raise)
    and clear transitions beyond the raises and clears published for it (each published event
    makes exactly one transition: the drill never acknowledges or shelves)."""
    tally = Tally(sent=len(sent))
    published: Counter[tuple[str, str]] = Counter()
    for s in sent:
        if (s.device, s.alarm_id, s.event) in marks:
            tally.kept += 1
        else:
            tally.lost += 1
            tally.note(f"{s.device} {s.event} {s.alarm_id} (seq {s.seq}) not in the journal")
        published[(f"{site}/{s.device}/{s.code}", "clear" if s.event == "cleared" else "raise")] += 1
    journaled: Counter[tuple[str, str]] = Counter()
    for key, event in transitions:
        if event in ("raise", "reraise"):
            journaled[(key, "raise")] += 1
        elif event == "clear":
            journaled[(key, "clear")] += 1
    for point, n in journaled.items():
        extra = n - published.get(point, 0)
        if extra > 0 and point[0].rsplit("/", 1)[1] in {s.code for s in sent}:
            tally.duplicated += extra
            tally.note(f"{point[0]}: {n} {point[1]} transitions for {published.get(point, 0)} published")
    return tally


def _mirrored(states: list[Sent], snapshots: dict[str, Any]) -> Tally:
    """Each device's last published state is the state its snapshot holds (as of a clean stop)."""
    last: dict[str, Sent] = {}
    for s in states:
        if s.device not in last or (s.session, s.seq) > (last[s.device].session, last[s.device].seq):
            last[s.device] = s
    tally = Tally(sent=len(last))
    for device, s in last.items():
        reported = (snapshots.get(device) or {}).get("reported") or {}
        if (reported.get("session"), reported.get("seq")) == (s.session, s.seq):
            tally.kept += 1
        else:
            tally.lost += 1
            tally.note(f"{device}: mirrors state seq {reported.get('seq')}, last sent {s.seq}")
    return tally


def _acknowledged(info: Any) -> bool:
    """The broker sent PUBACK for this message. paho's ``is_published()`` raises for a message first
    published while disconnected even once it was sent and acknowledged after the reconnect (its
    ``rc`` stays ``MQTT_ERR_NO_CONN``), so the flag it reads is read directly."""
    return bool(info._published)
