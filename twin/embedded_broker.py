"""An MQTT broker inside the PumpTwin process, for the zero-install default (``pumptwin demo``).

amqtt is a pure-Python, asyncio-native broker, maintained again since 2025 (0.11, 0.12), that
runs in our own event loop: a new user needs nothing but ``pip``. It is slower than Mosquitto by
an order of magnitude, which does not matter for a demo fleet of tens of pumps; production and
the tests use a real Mosquitto (see ``broker/``). Anonymous access, loopback only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator

from amqtt.broker import Broker


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run a broker on ``host:port`` (a free port if 0) for the duration; yields its ``mqtt://`` URL."""
    port = port or _free_port(host)
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    for name in ("amqtt", "transitions"):  # both log every packet at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker(config)
    await broker.start()
    try:
        yield f"mqtt://{host}:{port}"
    finally:
        await broker.shutdown()
