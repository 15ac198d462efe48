"""A simulated fleet wired straight into a twin service, in one process, without a broker.

For runs that must be fast and deterministic rather than networked: backfilling months of
history into InfluxDB, headless fault scenarios, tests. Every message a pump publishes goes
through the same encoding and validation the broker path uses (``TwinService.handle`` on the
encoded payload), and every command the twin sends (a refill from the API, a fault, a rebirth)
goes back to the simulated device through ``FleetSimulation.command``, exactly as over MQTT.

The twin's clock is the simulation's clock (device time), so alarm times, time to acknowledge
and time-series timestamps all line up with the simulated history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from twin.contract.codec import decode_command, encode
from twin.contract.topics import build_topic, parse_topic
from twin.mirror.alerts import AlertPolicy
from twin.service.twin_service import TwinService
from twin.sim.device import Outgoing, SimulatedDevice
from twin.sim.simulation import FleetSimulation
from twin.store.journal import Journal


class InProcessTwin:
    """``sim`` feeding ``service`` directly; :meth:`run` advances both."""

    def __init__(
        self,
        sim: FleetSimulation,
        journal: Journal,
        *,
        writer: Any | None = None,
        policy: AlertPolicy | None = None,
        tick_every_s: float = 300.0,
        on_message: Callable[[SimulatedDevice, Outgoing, float], None] | None = None,
    ) -> None:
        self.sim = sim
        self.tick_every_s = tick_every_s
        self.on_message = on_message
        self.service = TwinService(journal, writer=writer, policy=policy or _simulated_policy(), clock=self.now)
        sim.sink = self._deliver
        self._last_tick = sim.now

    def now(self) -> datetime:
        return self.sim.epoch + timedelta(seconds=self.sim.now)

    def _deliver(self, device: SimulatedDevice, outgoing: Outgoing, t: float) -> None:
        if self.on_message is not None:
            self.on_message(device, outgoing, t)
        topic = build_topic(device.identity.site, device.device_id, outgoing.channel)
        self.service.handle(topic, encode(outgoing.message), self.sim.epoch + timedelta(seconds=t))

    def route_commands(self) -> int:
        """Deliver what the twin queued for the broker (commands, rebirths) to the simulated devices."""
        delivered = 0
        while self.service.outbound:
            out = self.service.outbound.popleft()
            address = parse_topic(out.topic)
            command = decode_command(address, out.payload)
            self.sim.command(address.device_id, command)
            delivered += 1
        return delivered

    def open_sessions(self, session: int = 1) -> None:
        self.sim.open_sessions(session)
        self.route_commands()

    def run(self, until_s: float, *, step_s: float | None = None) -> None:
        """Advance to simulation second ``until_s``, ticking the twin and routing its commands on the way."""
        step = step_s or self.tick_every_s
        while self.sim.now < until_s:
            target = min(until_s, self.sim.now + step)
            self.sim.run(target)
            self.route_commands()
            if self.sim.now - self._last_tick >= self.tick_every_s or self.sim.now >= until_s:
                self.service.tick(self.now())
                self._last_tick = self.sim.now
                self.route_commands()


def _simulated_policy() -> AlertPolicy:
    """In-process there is no broker and no wall clock: a pump is silent only if the simulation
    says so (its telemetry interval decides); keep the silence limit in simulated time generous."""
    return AlertPolicy(silent_after_simulated=timedelta(hours=6))
