"""The escalator: the imperative shell around :mod:`twin.alarms.escalation`.

At every clock tick of the twin (``TwinService.tick_listeners``) it asks the pure ladder machine
which unanswered alarms have reached a tier, and for each :class:`~twin.alarms.escalation.Escalation`:
journals it (table ``alarm_escalation``) *before* anyone hears of it, advances its ladders, counts
it (``pumptwin_alarm_escalations_total``), logs it, streams it to the console (``escalation``
event: the recipients' consoles show "escalated to you") and hands it to every sink (the paging
webhook, :mod:`twin.service.paging_webhook`). Recipients resolve to the active accounts of the
user store at that moment.

A restarted twin rebuilds its ladders from the journal, so a tier already reached is never sent
again, and tiers that fell due while it was down are made on its first tick.

Time: the tick's ``now``, the twin's clock; the alarms' ``unacknowledged_since`` is on the same
clock (the lead's per-device clocks will feed a simulated pump's clock here; nothing in this module
reads a clock). Failure modes: a journal write that fails raises out of :meth:`tick` (the service
logs it and ticks again: nothing was announced, and the same escalations are due at the next tick);
a sink that raises is logged and does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from twin.alarms.escalation import Escalation, EscalationPolicy, Roster, climb, due, live, next_due
from twin.service.twin_service import TwinService
from twin.store.users import UserStore

log = logging.getLogger(__name__)

Sink = Callable[[Escalation], None]


def escalation_json(e: Escalation) -> dict[str, Any]:
    """An escalation as the API, the stream and the webhook show it."""
    return {
        "escalation_id": e.escalation_id,
        "key": e.key,
        "device_id": e.device_id,
        "site": e.site,
        "code": e.code,
        "priority": e.priority.value,
        "level": e.level,
        "tier": e.tier,
        "recipients": list(e.recipients),
        "notified": list(e.notified),
        "unacknowledged_since": e.unacknowledged_since.isoformat(),
        "due_at": e.due_at.isoformat(),
        "at": e.at.isoformat(),
        "waited_s": round((e.due_at - e.unacknowledged_since).total_seconds(), 3),
        "alarm_version": e.alarm_version,
        "alarm_state": e.alarm_state.value,
        "message": e.message,
    }


def policy_json(policy: EscalationPolicy) -> dict[str, list[dict[str, Any]]]:
    return {
        priority.value: [
            {"level": t.level, "name": t.name, "after_s": t.after.total_seconds(), "notify": list(t.notify)}
            for t in tiers
        ]
        for priority, tiers in policy.ladders.items()
    }


class Escalator:
    """Escalations of ``service``'s alarms under ``policy`` (see the module docstring)."""

    def __init__(
        self,
        service: TwinService,
        policy: EscalationPolicy,
        *,
        users: UserStore | None = None,
        sinks: Iterable[Sink] = (),
    ) -> None:
        self.service = service
        self.policy = policy
        self.users = users
        self.sinks: list[Sink] = list(sinks)
        recorded = service.journal.escalations()
        self.ladders = climb({}, recorded)
        self._current: dict[str, list[Escalation]] = {}  # key -> the records of its latest ladder
        self._remember(recorded)
        self.made = Counter(
            "pumptwin_alarm_escalations",
            "Unanswered alarms that reached a tier of their escalation ladder.",
            ["priority", "level"],
            registry=service.metrics.registry,
        )
        service.tick_listeners.append(self._on_tick)

    def roster(self) -> Roster:
        if self.users is None:
            return Roster()
        return Roster({u.username: u.role for u in self.users.all() if not u.disabled})

    def _on_tick(self, now: datetime) -> None:
        self.tick(now)

    def tick(self, now: datetime) -> list[Escalation]:
        """Make, journal and announce the escalations due at ``now``; return them."""
        alarms = self.service.board.alarms
        soonest = next_due(alarms.values(), self.ladders, self.policy)
        if soonest is None or soonest > now:
            return []
        made = due(alarms.values(), self.ladders, self.policy, now, self.roster())
        self.service.journal.record_escalations(made)
        self.ladders = climb(self.ladders, made)
        self._remember(made)
        for e in made:
            self.made.labels(e.priority.value, str(e.level)).inc()
            log.warning(
                "escalated %s (%s, unanswered %.0f s) to level %d, %s: %s",
                e.key,
                e.priority.value,
                (e.due_at - e.unacknowledged_since).total_seconds(),
                e.level,
                e.tier,
                ", ".join(e.notified) or "no console account",
            )
            self.service.bus.publish("escalation", escalation_json(e))
            for sink in list(self.sinks):
                try:
                    sink(e)
                except Exception:
                    log.exception("an escalation sink failed for %s", e.escalation_id)
        return made

    def _remember(self, escalations: Iterable[Escalation]) -> None:
        for e in escalations:
            kept = self._current.get(e.key)
            if kept is None or e.unacknowledged_since > kept[0].unacknowledged_since:
                self._current[e.key] = [e]
            elif e.unacknowledged_since == kept[0].unacknowledged_since:
                kept.append(e)

    def live(self) -> list[Escalation]:
        """The highest tier of every alarm still climbing its ladder, most urgent first."""
        return live(self.service.board.alarms, [e for records in self._current.values() for e in records])

    def live_for(self, username: str) -> list[Escalation]:
        """Per alarm still climbing its ladder, the highest tier that told ``username`` (someone
        told at tier 1 still has it when tier 2 tells someone else), most urgent first."""
        mine = [e for records in self._current.values() for e in records if username in e.notified]
        return live(self.service.board.alarms, mine)


__all__ = ["Escalator", "Sink", "escalation_json", "policy_json"]
