"""Every alarm point the twin tracks, device-raised and twin-raised, through the lifecycle.

An alarm point is one condition on one device (key ``<device>/<code>``,
:func:`twin.alarms.lifecycle.alarm_key`); it lives through many occurrences. The board turns
what happens into lifecycle calls and returns the transitions, which the service journals,
streams and writes to InfluxDB:

* a device's ``alarm`` event raises (or re-raises) or clears its point; the service has already
  made sure the event was not applied before (same device, alarm id and event), so redelivered
  MQTT messages and restarts never duplicate an occurrence;
* the twin's own alert conditions (:mod:`twin.mirror.alerts`) raise their points and clear them
  when the condition no longer holds; a condition that holds for a new reason (a new refill's
  discrepancy) ends the old occurrence and starts a new one;
* after a device opens a session, the active alarm codes in its first state are reconciled with
  the board: an occurrence the twin missed is raised, one that ended unseen is cleared;
* staff act on alarms by key (acknowledge, silence, shelve, ...), and time makes shelves and
  silences expire.

Pure: time is an argument (the twin's wall clock, so that time to acknowledge is staff time even
when a simulated pump's clock runs faster).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from twin.alarms import lifecycle
from twin.alarms.lifecycle import Alarm, AlarmError, AlarmState, Transition, alarm_key
from twin.contract.alarms import ALARM_CATALOGUE, AlarmCode
from twin.contract.messages import AlarmEvent, AlarmEventType
from twin.mirror.alerts import AlertCondition, TwinAlertCode

TWIN_CODES = frozenset(code.value for code in TwinAlertCode)


class AlarmBoard:
    """All alarm points by key, with the instance behind each active twin alert."""

    def __init__(self, alarms: Mapping[str, Alarm] | Iterable[Alarm] = ()) -> None:
        values = alarms.values() if isinstance(alarms, Mapping) else alarms
        self.alarms: dict[str, Alarm] = {}
        self._by_device: dict[str, dict[str, Alarm]] = {}
        self._instances: dict[str, str] = {}
        for alarm in values:
            self._put(alarm)

    def _put(self, alarm: Alarm) -> None:
        self.alarms[alarm.key] = alarm
        self._by_device.setdefault(alarm.device_id, {})[alarm.key] = alarm

    # ------------------------------------------------------------------------------ views

    def open(self) -> list[Alarm]:
        """Alarms not in the normal state (what staff see)."""
        return [a for a in self.alarms.values() if a.state is not AlarmState.NORMAL]

    def of_device(self, device_id: str, *, include_normal: bool = False) -> list[Alarm]:
        points = self._by_device.get(device_id, {})
        return [a for a in points.values() if include_normal or a.state is not AlarmState.NORMAL]

    def _step(self, step: tuple[Alarm, list[Transition]]) -> list[Transition]:
        alarm, transitions = step
        self._put(alarm)
        return transitions

    # ------------------------------------------------------------------------- device alarms

    def on_device_event(self, site: str, event: AlarmEvent, at: datetime) -> list[Transition]:
        key = alarm_key(event.device_id, event.code.value)
        current = self.alarms.get(key)
        if event.event is AlarmEventType.RAISED:
            if current is None:
                return self._step(
                    lifecycle.raise_alarm(
                        key, event.device_id, site, event.code.value, "device", event.priority, event.message, at
                    )
                )
            return self._step(lifecycle.condition_returned(current, at, message=event.message))
        if current is None:
            # the raise was never seen (it happened before this twin existed): record both ends
            out = self._step(
                lifecycle.raise_alarm(
                    key,
                    event.device_id,
                    site,
                    event.code.value,
                    "device",
                    event.priority,
                    f"{event.message} (its raise was not seen)",
                    at,
                )
            )
            return out + self._step(lifecycle.condition_cleared(self.alarms[key], at))
        return self._step(lifecycle.condition_cleared(current, at))

    def reconcile(self, site: str, device_id: str, active_codes: Iterable[AlarmCode], at: datetime) -> list[Transition]:
        """Align the device's alarm points with the codes a fresh state reports as active."""
        codes = {AlarmCode(c).value for c in active_codes}
        out: list[Transition] = []
        for code in sorted(codes):
            key = alarm_key(device_id, code)
            current = self.alarms.get(key)
            spec = ALARM_CATALOGUE[AlarmCode(code)]
            message = f"{spec.title} (reported active in the device's state)"
            if current is None:
                out += self._step(
                    lifecycle.raise_alarm(key, device_id, site, code, "device", spec.priority, message, at)
                )
            elif not current.condition_active:
                out += self._step(lifecycle.condition_returned(current, at, message=message))
        for alarm in self.of_device(device_id, include_normal=True):
            if alarm.source == "device" and alarm.condition_active and alarm.code not in codes:
                out += self._step(lifecycle.condition_cleared(alarm, at))
        return out

    # --------------------------------------------------------------------------- twin alerts

    def on_conditions(
        self, site: str, device_id: str, conditions: list[AlertCondition], at: datetime
    ) -> list[Transition]:
        """Raise the twin alerts that now hold and clear those that no longer do, for one device."""
        out: list[Transition] = []
        wanted: dict[str, AlertCondition] = {}
        for condition in conditions:
            wanted[alarm_key(device_id, condition.code.value)] = condition
        for key, condition in wanted.items():
            current = self.alarms.get(key)
            if current is None:
                out += self._step(
                    lifecycle.raise_alarm(
                        key,
                        device_id,
                        site,
                        condition.code.value,
                        "twin",
                        condition.priority,
                        condition.message,
                        at,
                        actor=lifecycle.TWIN_ACTOR,
                    )
                )
            elif not current.condition_active:
                out += self._step(
                    lifecycle.condition_returned(
                        current, at, lifecycle.TWIN_ACTOR, message=condition.message, priority=condition.priority
                    )
                )
            elif self._instances.get(key, condition.instance) != condition.instance:
                # the same kind of alert for a new reason: end the old occurrence, start a new one
                out += self._step(lifecycle.condition_cleared(current, at, lifecycle.TWIN_ACTOR))
                out += self._step(
                    lifecycle.condition_returned(
                        self.alarms[key],
                        at,
                        lifecycle.TWIN_ACTOR,
                        message=condition.message,
                        priority=condition.priority,
                    )
                )
            self._instances[key] = condition.instance
        for alarm in self.of_device(device_id, include_normal=True):
            if alarm.source == "twin" and alarm.condition_active and alarm.key not in wanted:
                out += self._step(lifecycle.condition_cleared(alarm, at, lifecycle.TWIN_ACTOR))
                self._instances.pop(alarm.key, None)
        return out

    # ---------------------------------------------------------------------------- staff actions

    def act(
        self,
        key: str,
        verb: str,
        actor: str,
        at: datetime,
        *,
        duration: timedelta | None = None,
        comment: str | None = None,
    ) -> tuple[Alarm, list[Transition]]:
        """Apply a staff action; raises :class:`AlarmError` (reason ``unknown_alarm`` and others)."""
        alarm = self.alarms.get(key)
        if alarm is None:
            raise AlarmError("unknown_alarm", f"no alarm {key!r}")
        match verb:
            case "acknowledge":
                step = lifecycle.acknowledge(alarm, actor, at, comment)
            case "silence":
                step = lifecycle.silence(alarm, actor, at, duration or lifecycle.DEFAULT_SILENCE_DURATION, comment)
            case "shelve":
                step = lifecycle.shelve(alarm, actor, at, duration or timedelta(hours=1), comment or "")
            case "unshelve":
                step = lifecycle.unshelve(alarm, actor, at, comment)
            case "remove_from_service":
                step = lifecycle.remove_from_service(alarm, actor, at, comment or "")
            case "return_to_service":
                step = lifecycle.return_to_service(alarm, actor, at, comment)
            case _:
                raise AlarmError("unknown_action", f"unknown alarm action {verb!r}")
        transitions = self._step(step)
        return step[0], transitions

    def expire(self, at: datetime) -> list[Transition]:
        out: list[Transition] = []
        for alarm in list(self.alarms.values()):
            due = lifecycle.next_expiry(alarm)
            if due is not None and due <= at:
                out += self._step(lifecycle.expire(alarm, at))
        return out
