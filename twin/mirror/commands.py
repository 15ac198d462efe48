"""Desired state: commands the twin sends, and what became of each.

A command is **pending** from the moment it is accepted until the device answers it
(**applied** or **rejected**) or it **times out**. The rules that make a command neither lost nor
applied twice:

* it is published with QoS 1 to the device's ``cmd`` topic, where the broker keeps it for the
  device's persistent session while the device is away;
* when the device comes back (a new session), every command still pending for it is sent again
  with the *same* ``command_id``; the device answers a repeat with its stored result
  (``replay: true``) and does not apply it again;
* the timeout runs only while the device is online: a command for an offline device waits.

Real devices (``simulated: false`` in their birth) are read-only mirrors: every command to them
is refused here, before anything is published. Faults go only to simulated devices anyway.

Pure: no I/O, no clock; the service publishes and persists what these functions decide.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from twin.contract.messages import (
    Action,
    Command,
    CommandResult,
    CommandStatus,
)
from twin.mirror.device_twin import DeviceTwin, Presence

DEFAULT_TIMEOUT: Final = timedelta(minutes=2)
"""An online device answers within milliseconds; two minutes covers a reconnecting one."""


class CommandState(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"


class CommandRefused(ValueError):
    """The twin will not send this command. ``reason`` is a stable code for the API."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TrackedCommand:
    command: Command
    site: str
    state: CommandState
    created_at: datetime  # wall time
    sends: int = 0
    last_sent_at: datetime | None = None
    online_since: datetime | None = None  # the timeout counts from here (device online)
    answered_at: datetime | None = None
    reason: str | None = None
    replay: bool = False
    details: dict[str, float | int | str | bool | None] | None = None

    @property
    def command_id(self) -> str:
        return self.command.command_id

    @property
    def device_id(self) -> str:
        return self.command.device_id

    @property
    def action_type(self) -> str:
        return self.command.action.type

    @property
    def latency_s(self) -> float | None:
        if self.answered_at is None:
            return None
        return (self.answered_at - self.created_at).total_seconds()


def check_allowed(twin: DeviceTwin | None, action: Action) -> None:
    """Raise :class:`CommandRefused` unless ``action`` may be sent to ``twin``'s device."""
    if twin is None or twin.birth is None:
        raise CommandRefused("unknown_device", "no birth has been received from this device: its identity is unknown")
    if not twin.birth.simulated:
        raise CommandRefused(
            "real_device_read_only",
            f"{twin.device_id} is a real pump (simulated: false): the twin mirrors it read-only and sends it nothing",
        )


def track(twin: DeviceTwin | None, command: Command, now: datetime) -> TrackedCommand:
    """Accept ``command`` for sending (or raise :class:`CommandRefused`)."""
    check_allowed(twin, command.action)
    assert twin is not None
    online = twin.presence is Presence.ONLINE
    return TrackedCommand(
        command=command,
        site=twin.site,
        state=CommandState.PENDING,
        created_at=now,
        online_since=now if online else None,
    )


def sent(tracked: TrackedCommand, now: datetime) -> TrackedCommand:
    return replace(tracked, sends=tracked.sends + 1, last_sent_at=now)


def answered(tracked: TrackedCommand, result: CommandResult, now: datetime) -> TrackedCommand:
    """The device's answer. A late answer to a timed-out command still records what happened."""
    if tracked.state in (CommandState.APPLIED, CommandState.REJECTED):
        return tracked  # a replayed answer changes nothing
    state = CommandState.APPLIED if result.status is CommandStatus.APPLIED else CommandState.REJECTED
    return replace(
        tracked,
        state=state,
        answered_at=now,
        reason=result.reason,
        replay=result.replay,
        details=dict(result.details),
    )


def device_online(tracked: TrackedCommand, now: datetime) -> TrackedCommand:
    """The device is (back) online: start the timeout if it had not started."""
    if tracked.state is not CommandState.PENDING or tracked.online_since is not None:
        return tracked
    return replace(tracked, online_since=now)


def device_offline(tracked: TrackedCommand) -> TrackedCommand:
    """The device went away: the timeout stops; the command waits for it."""
    if tracked.state is not CommandState.PENDING:
        return tracked
    return replace(tracked, online_since=None)


def expire(tracked: TrackedCommand, now: datetime, timeout: timedelta = DEFAULT_TIMEOUT) -> TrackedCommand:
    """Time out a pending command whose device has been online for ``timeout`` without answering."""
    if tracked.state is not CommandState.PENDING or tracked.online_since is None:
        return tracked
    if now - tracked.online_since < timeout:
        return tracked
    return replace(tracked, state=CommandState.TIMED_OUT, reason=f"no answer within {timeout.total_seconds():g} s")


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One logged command status. ``detail``: the JSON object logged with it."""

    command_id: str
    device_id: str
    site: str
    status: str
    actor: str
    at: datetime
    detail: dict[str, Any]
