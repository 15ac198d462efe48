"""``pumptwin demo``: the whole product on an embedded default, with nothing to install.

An embedded MQTT broker, the twin service with its HTTP API and live stream, a simulated fleet
running faster than real time, and a live view of what the pumps publish. It grows with the
product: every part that lands joins it here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from rich.console import Console

from twin.app.serve import running_twin
from twin.embedded_broker import embedded_broker
from twin.mqtt_endpoint import MqttEndpoint
from twin.pump.model import ERI_PERCENT
from twin.roles import Role
from twin.scenarios.model import Scenario
from twin.scenarios.runner import ScenarioRefused, ScenarioRunner, run_summary
from twin.scenarios.scenario_file import load_library
from twin.settings import Settings
from twin.sim.driver import SimDriver
from twin.sim.fleet import PumpSpec
from twin.sim.plan import SimPlan
from twin.sim.watch import watch
from twin.store.users import UserError, UserStore, hash_password

DEMO_ACCOUNTS: Final = (
    ("admin", Role.ADMIN, "demo-admin"),
    ("instructor", Role.INSTRUCTOR, "demo-instructor"),
    ("trainee", Role.TRAINEE, "demo-trainee"),
    ("viewer", Role.VIEWER, "demo-viewer"),
)
"""One console login per role, with published passwords: for the demo only (an embedded twin on
127.0.0.1 with a throw-away data directory). A real twin gets its accounts from ``pumptwin users add``."""


async def add_demo_accounts(users: UserStore) -> list[tuple[str, Role, str]]:
    """Create :data:`DEMO_ACCOUNTS` (those that do not exist yet); hashing runs off the event loop."""
    for name, role, password in DEMO_ACCOUNTS:
        password_hash = await asyncio.to_thread(hash_password, password)
        try:
            users.add(name, role, password_hash, actor="demo", at=datetime.now(UTC))
        except UserError as exc:
            if exc.reason != "user_exists":
                raise
    return list(DEMO_ACCOUNTS)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def demo_fleet(specs: list[PumpSpec]) -> list[PumpSpec]:
    """Make a generated fleet eventful within minutes of a demo: every fourth pump reaches its
    low-reservoir threshold within its first simulated days (the clinic then refills it), and one
    pump is days from its battery's elective replacement point."""
    out = []
    for i, spec in enumerate(specs):
        if i % 4 == 0:
            hours = 2 + 6 * (i // 4)
            spec = spec.model_copy(
                update={"reservoir_ml": spec.low_reservoir_threshold_ml + spec.mean_rate_ml_per_day * hours / 24}
            )
        elif i == 1:
            spec = spec.model_copy(update={"battery_percent": ERI_PERCENT + 0.15})
        out.append(spec)
    return out


async def run_demo(
    *,
    pumps: int,
    speed: float | None,
    seed: int,
    duration_s: float | None,
    http_port: int = 8080,
    data_dir: Path | None = None,
    scenario: Scenario | None = None,
    training: bool = False,
) -> None:
    """The demo fleet runs at ``speed``; the catalogue is offered on the API (``/api/scenarios``),
    and every scenario run (a training session) runs on pumps of its own: the scenario's fleet from
    its baseline, in a simulation of its own at the run's speed, on sites ``tr-<run>.<site>``
    (:class:`~twin.scenarios.runner.ScenarioRunner`). With ``scenario``, that scenario starts
    once the twin is up.

    With ``training``, the demo fleet has no random faults (its alarms would only distract from
    the sessions'), and nothing starts by itself: an instructor starts training sessions from the
    console; several can run at once."""
    console = Console()
    settings = Settings()
    settings.http.port = http_port if _port_free(http_port) else 0  # 8080 taken: any free port (printed)
    with tempfile.TemporaryDirectory(prefix="pumptwin-demo-") as scratch:
        settings.data_dir = data_dir or Path(scratch)
        async with embedded_broker() as url, contextlib.AsyncExitStack() as stack:
            endpoint = MqttEndpoint.parse(url)
            library = load_library()
            if scenario is not None:
                library[scenario.name] = scenario
            runner = ScenarioRunner(library)
            twin = await stack.enter_async_context(
                running_twin(settings, endpoint, client_id="pumptwin-demo-twin", scenarios=runner)
            )
            accounts = await add_demo_accounts(twin.users) if twin.users is not None else []
            plan = SimPlan.build(
                pumps=pumps,
                fleet_file=None,
                seed=seed,
                speed=speed,
                duration_s=duration_s,
                start=None,
                telemetry_every_s=None,
                random_faults=True,
                clinic=True,
            )
            plan = dataclasses.replace(plan, specs=demo_fleet(plan.specs), random_faults=not training)
            sim = plan.simulation()
            driver = SimDriver(sim, endpoint, speed=plan.speed, end_s=plan.duration_s)
            runner.attach(twin.service, lambda own, pace: SimDriver(own, endpoint, speed=pace, session_base=1))
            console.rule("[bold]PumpTwin demo")
            console.print(f"embedded MQTT broker   {url}")
            console.print(f"twin service           [bold cyan]{twin.url}[/]  (API docs {twin.url}/docs)")
            console.print(f"training console       [bold cyan]{twin.url}/console/[/]")
            console.print(f"live stream            {twin.url}/api/stream   metrics {twin.url}/metrics")
            influx = twin.writer.describe() if twin.writer is not None else "disabled"
            console.print(f"time series            {influx}")
            if accounts:
                console.print("[bold yellow]demo logins (DEMO ONLY: published passwords, gone when the demo stops)[/]")
                for name, role, password in accounts:
                    console.print(f"  {role.value:<11} user [bold]{name}[/]  password [bold]{password}[/]")
            console.print(
                f"{len(plan.specs)} simulated pumps, "
                f"{'as fast as possible' if speed is None else f'{speed:g}x real time'}; Ctrl-C to stop\n"
            )
            if training:
                console.print(
                    "[bold]training[/]: sign in as an instructor, open "
                    f"[bold cyan]{twin.url}/console/#/training[/], pick a scenario and trainees, start; "
                    "trainees sign in from another browser. Each session runs the scenario's own pumps "
                    "(sites tr-<run>.<site>), from its baseline, at its own speed."
                )
            counts: Counter[str] = Counter()
            driver_done = asyncio.Event()

            async def watching() -> None:
                watcher = asyncio.create_task(watch(endpoint, console.print, counts=counts))
                try:
                    await driver_done.wait()
                    await asyncio.sleep(0.5)
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher

            async def driving() -> None:
                await asyncio.sleep(0.5)  # let the watcher subscribe before the first births
                try:
                    await driver.run()
                finally:
                    driver_done.set()

            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(watching(), name="demo-watch")
                tasks.create_task(driving(), name="sim-driver")
                if scenario is not None:
                    console.print(f"scenario               [bold]{scenario.title}[/] ({twin.url}/api/scenario-runs)")
                    try:
                        runner.start(scenario.name, speed=speed, started_by="demo")
                    except ScenarioRefused as exc:
                        console.print(f"[red]scenario {scenario.name} not started: {exc}[/]")
            await runner.close()
            for run in runner.runs.values():
                console.print(run_summary(run))
            mirrored = twin.service.fleet
            console.print(
                f"\nmessages seen: {dict(counts)}; the twin mirrors {len(mirrored.devices)} devices, "
                f"{sum(1 for _ in mirrored.board.open())} alarms open"
            )
