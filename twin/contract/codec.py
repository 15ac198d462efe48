"""Encoding and decoding of contract payloads, and the per-channel delivery rules (QoS, retain).

Decoding never raises anything but :class:`ContractError`, whose ``reason`` is a short stable
code: the twin counts rejects by it (``/metrics``) and logs them without flooding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from pydantic import TypeAdapter, ValidationError

from twin.contract.messages import (
    CONTRACT_VERSION,
    MAX_PAYLOAD_BYTES,
    AlarmEvent,
    AnyDeviceMessage,
    Birth,
    Command,
    CommandResult,
    DeviceMessage,
    DeviceStatus,
    SimClock,
    State,
    Telemetry,
    WireModel,
)
from twin.contract.topics import Channel, TopicAddress


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """How a channel is delivered, and who publishes on it."""

    channel: Channel
    model: type[WireModel]
    qos: int
    retain: bool
    publisher: str  # "device" or "twin"
    summary: str


CHANNELS: Final[dict[Channel, ChannelSpec]] = {
    spec.channel: spec
    for spec in (
        ChannelSpec(
            Channel.BIRTH,
            Birth,
            1,
            True,
            "device",
            "Identity, published when the device connects (session start).",
        ),
        ChannelSpec(
            Channel.STATE,
            State,
            1,
            True,
            "device",
            "Full reported state, published after birth and on every change.",
        ),
        ChannelSpec(
            Channel.TELEMETRY,
            Telemetry,
            0,
            False,
            "device",
            "Periodic samples. QoS 0: a lost sample is replaced by the next one.",
        ),
        ChannelSpec(
            Channel.ALARM,
            AlarmEvent,
            1,
            False,
            "device",
            "Alarm raised / cleared events. QoS 1 and queued by the device across disconnects: none is lost.",
        ),
        ChannelSpec(
            Channel.STATUS,
            DeviceStatus,
            1,
            True,
            "device",
            "Online after birth; offline by the last will (connection lost) or on a clean shutdown.",
        ),
        ChannelSpec(
            Channel.CMD,
            Command,
            1,
            False,
            "twin",
            "Commands to the device (refill, reprogram, bolus, rebirth; faults to simulated devices only).",
        ),
        ChannelSpec(
            Channel.CLOCK,
            SimClock,
            1,
            True,
            "simulator",
            "The simulation's clock at a site (pumptwin/v1/{site}/clock): time thresholds of simulated pumps run on it.",
        ),
        ChannelSpec(
            Channel.CMD_RESULT,
            CommandResult,
            1,
            False,
            "device",
            "The device's answer to each command, by command id.",
        ),
    )
}

_DEVICE_MESSAGE: Final[TypeAdapter[DeviceMessage]] = TypeAdapter(AnyDeviceMessage)
_COMMAND: Final = TypeAdapter(Command)
_CLOCK: Final = TypeAdapter(SimClock)
_KIND_OF_CHANNEL: Final[dict[Channel, str]] = {
    Channel.BIRTH: "birth",
    Channel.STATE: "state",
    Channel.TELEMETRY: "telemetry",
    Channel.ALARM: "alarm",
    Channel.STATUS: "status",
    Channel.CMD: "command",
    Channel.CMD_RESULT: "command_result",
    Channel.CLOCK: "clock",
}


class ContractError(ValueError):
    """A payload that breaks the contract. ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


REJECT_REASONS: Final = (
    "too_large",
    "not_json",
    "too_deep",
    "not_object",
    "unknown_contract_version",
    "kind_mismatch",
    "schema",
    "device_id_mismatch",
    "site_mismatch",
)


def encode(message: WireModel) -> bytes:
    """The JSON payload of ``message`` (UTF-8)."""
    return message.model_dump_json().encode()


def _check_envelope(payload: bytes | str, expected_kind: str) -> dict[str, object]:
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > MAX_PAYLOAD_BYTES:
        raise ContractError("too_large", f"payload is {size} bytes; at most {MAX_PAYLOAD_BYTES} accepted")
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError("not_json", f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise ContractError("too_deep", "payload nests deeper than a JSON decoder can follow") from None
    if not isinstance(raw, dict):
        raise ContractError("not_object", f"payload is a JSON {type(raw).__name__}, not an object")
    version = raw.get("contract_version")
    if version != CONTRACT_VERSION:
        raise ContractError(
            "unknown_contract_version",
            f"contract_version {version!r} is not supported (this service speaks {CONTRACT_VERSION!r})",
        )
    kind = raw.get("kind")
    if kind != expected_kind:
        raise ContractError(
            "kind_mismatch", f"kind {kind!r} does not belong on this channel (expected {expected_kind!r})"
        )
    return raw


def _schema_error(exc: ValidationError) -> ContractError:
    first = exc.errors(include_url=False)[:3]
    where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in first)
    more = f" (+{exc.error_count() - len(first)} more)" if exc.error_count() > len(first) else ""
    return ContractError("schema", f"payload does not match the schema: {where}{more}")


def decode_device_message(address: TopicAddress, payload: bytes | str) -> DeviceMessage:
    """Validate a device payload received on ``address``.

    A valid payload is parsed and validated in one pass by pydantic; an invalid one is examined
    again step by step so that the reason is precise. Checks, in
    order: size, JSON, object, contract version, kind against channel, schema, and that
    the payload's ``device_id`` is the topic's. Raises :class:`ContractError` with the first failure.
    """
    if address.channel is Channel.CMD:
        raise ContractError("kind_mismatch", "the cmd channel carries commands, not device messages")
    if address.channel is Channel.CLOCK:
        raise ContractError("kind_mismatch", "the clock channel carries a site's simulation clock, not device messages")
    expected = _KIND_OF_CHANNEL[address.channel]
    size = len(payload)
    message: DeviceMessage | None = None
    if size <= MAX_PAYLOAD_BYTES:
        # fast path for the common case: pydantic parses and validates the JSON in one pass
        try:
            message = _DEVICE_MESSAGE.validate_json(payload)
        except ValidationError:
            message = None
    if message is None or getattr(message, "kind", None) != expected:
        # slow path: find the precise reason (size, JSON, object, version, kind, schema)
        raw = _check_envelope(payload, expected)
        try:
            message = _DEVICE_MESSAGE.validate_python(raw)
        except ValidationError as exc:
            raise _schema_error(exc) from None
    if message.device_id != address.device_id:
        raise ContractError(
            "device_id_mismatch",
            f"payload device_id {message.device_id!r} contradicts topic device id {address.device_id!r}",
        )
    return message


def decode_clock(address: TopicAddress, payload: bytes | str) -> SimClock:
    """Validate a simulation clock received on a site's ``clock`` topic."""
    if address.channel is not Channel.CLOCK:
        raise ContractError("kind_mismatch", f"the {address.channel.value} channel does not carry clocks")
    try:
        clock = _CLOCK.validate_json(payload) if len(payload) <= MAX_PAYLOAD_BYTES else None
    except ValidationError:
        clock = None
    if clock is None:
        raw = _check_envelope(payload, "clock")
        try:
            clock = _CLOCK.validate_python(raw)
        except ValidationError as exc:
            raise _schema_error(exc) from None
    if clock.site != address.site:
        raise ContractError("site_mismatch", f"clock of site {clock.site!r} published on site {address.site!r}")
    return clock


def decode_command(address: TopicAddress, payload: bytes | str) -> Command:
    """Validate a command received on a device's ``cmd`` topic (the device side of the contract)."""
    raw = _check_envelope(payload, "command")
    try:
        command = _COMMAND.validate_python(raw)
    except ValidationError as exc:
        raise _schema_error(exc) from None
    if command.device_id != address.device_id:
        raise ContractError(
            "device_id_mismatch",
            f"command device_id {command.device_id!r} contradicts topic device id {address.device_id!r}",
        )
    return command


__all__ = [
    "CHANNELS",
    "REJECT_REASONS",
    "AlarmEvent",
    "Birth",
    "ChannelSpec",
    "Command",
    "CommandResult",
    "ContractError",
    "DeviceStatus",
    "State",
    "Telemetry",
    "decode_clock",
    "decode_command",
    "decode_device_message",
    "encode",
]
