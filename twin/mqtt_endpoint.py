"""Where an MQTT broker is, parsed once from a URL: ``mqtt://[user[:password]@]host[:port]``
(``mqtts://`` for TLS, default ports 1883 and 8883)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

NO_DELAY: Final = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
"""Socket options of every PumpTwin MQTT connection (aiomqtt's ``socket_options``): Nagle's
algorithm off. paho leaves it on, so a small packet (an alarm, a PUBACK) written while an earlier
one is unacknowledged waits for the peer's delayed ACK, up to 40 ms on Linux: measured with a real
Mosquitto, a pump's alarm among a fleet's telemetry reached a subscriber after a median 15-37 ms
with Nagle on and 0.74 ms with it off (``benchmarks/alarm_latency.py``, BENCHMARKS.md). The
broker's own side is ``set_tcp_nodelay true`` in ``broker/mosquitto.conf``."""


class EndpointError(ValueError):
    """An MQTT URL that cannot be used."""


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @classmethod
    def parse(
        cls, url: str, *, username: str | None = None, password: str | None = None, ca_file: Path | None = None
    ) -> MqttEndpoint:
        """Parse ``url``; explicit ``username``/``password`` win over credentials in the URL."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise EndpointError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise EndpointError(f"MQTT URL {url!r} has no host")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise EndpointError(f"MQTT URL {url!r}: {exc}") from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=username if username is not None else (unquote(parts.username) if parts.username else None),
            password=password if password is not None else (unquote(parts.password) if parts.password else None),
            ca_file=ca_file,
        )

    @property
    def url(self) -> str:
        """The URL without credentials (safe to print)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
