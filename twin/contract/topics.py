"""Topic names of the PumpTwin MQTT contract: ``pumptwin/v1/{site}/{device_id}/{channel}``.

Every producer and consumer builds and parses topics here and nowhere else. Site and device
ids are validated against an allow-list, so an id can never inject a wildcard (``+``, ``#``),
a level separator (``/``), a ``$`` system prefix, control characters or NUL into a topic.

Pure: no I/O, no broker needed to test it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

TOPIC_ROOT: Final = "pumptwin/v1"
"""Versioned root. A breaking contract change gets a new root (``pumptwin/v2``) so both can run side by side."""

ID_MAX_LENGTH: Final = 64
"""Longest site or device id. Keeps a whole topic well under MQTT's 65,535-byte limit and log lines short."""

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
"""Allowed ids: ASCII letters, digits, ``_ . -``; first character a letter or digit. Used with ``fullmatch``:
an anchored ``^...$`` with ``match`` would accept a trailing newline, which would break a topic (or an ACL
line written from an id) in two."""


class Channel(StrEnum):
    """The last topic level(s): what kind of message travels there."""

    BIRTH = "birth"
    STATE = "state"
    TELEMETRY = "telemetry"
    ALARM = "alarm"
    STATUS = "status"
    CMD = "cmd"
    CMD_RESULT = "cmd/result"
    CLOCK = "clock"  # site level: pumptwin/v1/{site}/clock (simulated sites only)


SITE_CHANNELS: Final = frozenset({Channel.CLOCK})
"""Channels of a whole site rather than one device: their topic has no device level, and their
:class:`TopicAddress` has an empty ``device_id``."""


class TopicError(ValueError):
    """A topic, site or device id that does not fit the contract.

    ``reason`` is a short stable code (for counters and API errors); the message says what was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """Where a message was published: its site, device and channel."""

    site: str
    device_id: str
    channel: Channel


def validate_id(value: str, *, what: str = "device id") -> str:
    """Return ``value`` if it is a valid site or device id, else raise :class:`TopicError`.

    Refused: empty, longer than :data:`ID_MAX_LENGTH`, or anything outside :data:`ID_PATTERN`
    (which excludes ``+``, ``#``, ``/``, ``$``, spaces, control characters and non-ASCII).
    """
    if not isinstance(value, str) or value == "":
        raise TopicError("empty_id", f"{what} is empty")
    if len(value) > ID_MAX_LENGTH:
        raise TopicError("id_too_long", f"{what} is {len(value)} characters long; at most {ID_MAX_LENGTH} allowed")
    if not ID_PATTERN.fullmatch(value):
        bad = sorted({c for c in value if not re.match(r"[A-Za-z0-9_.\-]", c)})
        shown = ", ".join(repr(c) for c in bad) if bad else repr(value[0])
        raise TopicError(
            "invalid_id",
            f"{what} {value!r} has characters not allowed in a topic level ({shown}); "
            "use letters, digits, '_', '.', '-', starting with a letter or digit",
        )
    return value


def build_topic(site: str, device_id: str, channel: Channel) -> str:
    """The topic for ``channel`` of ``device_id`` at ``site``; raises :class:`TopicError` on a bad id."""
    validate_id(site, what="site")
    if Channel(channel) in SITE_CHANNELS:
        raise TopicError("site_channel", f"{channel} is a site channel: use site_topic()")
    validate_id(device_id, what="device id")
    return f"{TOPIC_ROOT}/{site}/{device_id}/{Channel(channel).value}"


def site_topic(site: str, channel: Channel = Channel.CLOCK) -> str:
    """The topic of a site channel (``pumptwin/v1/{site}/clock``)."""
    validate_id(site, what="site")
    if Channel(channel) not in SITE_CHANNELS:
        raise TopicError("device_channel", f"{channel} is a device channel: use build_topic()")
    return f"{TOPIC_ROOT}/{site}/{Channel(channel).value}"


@functools.lru_cache(maxsize=65_536)
def parse_topic(topic: str) -> TopicAddress:
    """Split a concrete topic into site, device and channel; raises :class:`TopicError` if it is not ours.

    Cached: a fleet publishes on a few topics per device, over and over (errors are not cached)."""
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        raise TopicError("foreign_topic", f"topic {topic!r} is not under {TOPIC_ROOT}/")
    parts = topic[len(prefix) :].split("/")
    if len(parts) == 2 and parts[1] in _SITE_CHANNEL_NAMES:
        validate_id(parts[0], what="site")
        return TopicAddress(site=parts[0], device_id="", channel=Channel(parts[1]))
    if len(parts) < 3:
        raise TopicError("short_topic", f"topic {topic!r} lacks site, device id or channel")
    site, device_id, channel_text = parts[0], parts[1], "/".join(parts[2:])
    validate_id(site, what="site")
    validate_id(device_id, what="device id")
    try:
        channel = Channel(channel_text)
    except ValueError:
        raise TopicError("unknown_channel", f"topic {topic!r} has unknown channel {channel_text!r}") from None
    return TopicAddress(site=site, device_id=device_id, channel=channel)


_SITE_CHANNEL_NAMES: Final = frozenset(c.value for c in SITE_CHANNELS)


def site_subscription(site: str | None = None) -> str:
    """The filter for every site channel of ``site`` (or of every site)."""
    site_level = validate_id(site, what="site") if site is not None else "+"
    return f"{TOPIC_ROOT}/{site_level}/+"


def subscription(channel: Channel | None = None, *, site: str | None = None, device_id: str | None = None) -> str:
    """A subscription filter: all sites/devices (``+``) unless given, one channel or all (``#``)."""
    site_level = validate_id(site, what="site") if site is not None else "+"
    device_level = validate_id(device_id, what="device id") if device_id is not None else "+"
    tail = Channel(channel).value if channel is not None else "#"
    return f"{TOPIC_ROOT}/{site_level}/{device_level}/{tail}"
