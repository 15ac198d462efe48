"""The escalator: the imperative shell around :mod:`twin.alarms.escalation`.

Once a second (its own task, :meth:`Escalator.run`, one named task of the process) it asks the
pure ladder machine which unanswered alarms of the twin's fleet have reached a tier, and for each
:class:`~twin.alarms.escalation.Escalation`: journals it (``Batch.escalations``, table
``alarm_escalation``) *before* anyone hears of it, advances its ladders, counts it
(``pumptwin_alarm_escalations_total``), logs it, streams it to the console (an ``escalation``
notice: the recipients' consoles show "escalated to you") and hands it to every sink (the paging
webhook, :mod:`twin.service.paging_webhook`). Recipients resolve to the active accounts of the
user store at that moment.

A restarted twin rebuilds its ladders from the journal (:meth:`Escalator.restore`), so a tier
already reached is never sent again, and tiers that fell due while it was down are made on its
first tick.

Time: the tick's ``now``, the twin's clock (``TwinService.clock``); the alarms'
``unacknowledged_since`` is on the same clock: the wall clock, for a training session's simulated
pumps too, because escalation measures how long people take to answer (see
:mod:`twin.alarms.escalation`). Failure modes: a journal write that fails
(``StoreUnavailable``) is logged and the tick is tried again a second later: nothing was announced,
and the same escalations are still due; a sink that raises is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

from prometheus_client import Counter

from twin.alarms.escalation import Escalation, EscalationPolicy, Roster, Rung, climb, due, live, next_due
from twin.service.events import Notice
from twin.service.twin_service import TwinService
from twin.store.protocol import Batch, StoreUnavailable
from twin.store.users import UserStore

log = logging.getLogger(__name__)

Sink = Callable[[Escalation], None]

TICK_S: Final = 1.0
"""How often the ladders are looked at: an escalation is made at most this long after its
deadline (the twin's own clock loop ticks at the same pace)."""


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
        self.ladders: dict[str, Rung] = {}
        self._current: dict[str, list[Escalation]] = {}  # key -> the records of its latest ladder
        self.made = Counter(
            "pumptwin_alarm_escalations",
            "Unanswered alarms that reached a tier of their escalation ladder.",
            ["priority", "level"],
            registry=service.metrics.registry,
        )

    async def restore(self) -> None:
        """The ladders already climbed, from the journal."""
        recorded = await self.service.store.escalations()
        self.ladders = climb({}, recorded)
        self._remember(recorded)

    async def run(self) -> None:
        """The escalator's task: a tick every :data:`TICK_S` on the twin's clock."""
        while True:
            try:
                await self.tick(self.service.clock())
            except StoreUnavailable as exc:
                log.error("escalations wait: the journal cannot be written (%s)", exc)
            await asyncio.sleep(TICK_S)

    def roster(self) -> Roster:
        if self.users is None:
            return Roster()
        return Roster({u.username: u.role for u in self.users.all() if not u.disabled})

    async def tick(self, now: datetime) -> list[Escalation]:
        """Make, journal and announce the escalations due at ``now``; return them. Raises
        ``StoreUnavailable`` (nothing announced) when the journal cannot take them."""
        alarms = self.service.fleet.board.alarms
        soonest = next_due(alarms.values(), self.ladders, self.policy)
        if soonest is None or soonest > now:
            return []
        made = due(alarms.values(), self.ladders, self.policy, now, self.roster())
        await self.service.store.commit(Batch(escalations=made))
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
            self.service.hub.publish(Notice("escalation", escalation_json(e)))
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
        return live(self.service.fleet.board.alarms, [e for records in self._current.values() for e in records])

    def live_for(self, username: str) -> list[Escalation]:
        """Per alarm still climbing its ladder, the highest tier that told ``username`` (someone
        told at tier 1 still has it when tier 2 tells someone else), most urgent first."""
        mine = [e for records in self._current.values() for e in records if username in e.notified]
        return live(self.service.fleet.board.alarms, mine)


__all__ = ["TICK_S", "Escalator", "Sink", "escalation_json", "policy_json"]
