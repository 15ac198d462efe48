"""The ``pumptwin`` command line (Typer): one entry point, a subcommand per job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin import __version__
from twin.roles import Role
from twin.scenarios.cli import scenario_app

if TYPE_CHECKING:
    from twin import broker_accounts

app = typer.Typer(
    name="pumptwin",
    help="PumpTwin: virtual intrathecal pumps, a digital twin of every pump, and alarm training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contract_app = typer.Typer(help="The MQTT contract: generate and check docs/asyncapi.yaml.", no_args_is_help=True)
app.add_typer(contract_app, name="contract")
broker_app = typer.Typer(
    help="Broker accounts: device credentials, simulation sites, the twin and simulator accounts (Mosquitto).",
    no_args_is_help=True,
)
app.add_typer(broker_app, name="broker")
users_app = typer.Typer(
    help="Console accounts (roles viewer < trainee < instructor < admin), in <data dir>/users.sqlite.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")
app.add_typer(scenario_app, name="scenario")


@app.command()
def version() -> None:
    """Print the PumpTwin version and the contract version."""
    from twin.contract import CONTRACT_VERSION

    typer.echo(f"pumptwin {__version__} (contract {CONTRACT_VERSION})")


def parse_duration(text: str) -> float:
    """'90d', '12h', '30m', '45s', '1d12h' or plain seconds -> seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"{text!r} is not a duration like 90d, 12h, 30m, 45s or 1d12h")
    return sum(float(n) * units[u] for n, u in parts)


def parse_speed(text: str) -> float | None:
    """'1', '60', '3600', '60x' or 'max' (as fast as possible: None)."""
    text = text.strip().lower()
    if text in ("max", "fast", "asap"):  # before the "x" suffix goes: "max" ends in x
        return None
    text = text.removesuffix("x")
    try:
        speed = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a speed: use a factor like 1, 60, 3600 or 'max'") from None
    if speed <= 0:
        raise typer.BadParameter("speed must be positive")
    return speed


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: thousands a minute from the InfluxDB writer
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.command()
def sim(
    pumps: Annotated[int, typer.Option("--pumps", "-n", min=1, help="Pumps to generate (ignored with --fleet).")] = 20,
    fleet: Annotated[Path | None, typer.Option("--fleet", help="YAML fleet file instead of a generated fleet.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the fleet, the clinic and the hazards.")] = 1,
    speed: Annotated[str, typer.Option(help="Speed factor: 1, 60, 3600 ... or 'max'.")] = "1",
    duration: Annotated[
        str | None, typer.Option(help="Simulated time to run (90d, 12h ...); default: until stopped.")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(help="Simulation start (UTC). Default: now, or now minus the duration at speed max (backfill)."),
    ] = None,
    telemetry_every: Annotated[
        str | None, typer.Option(help="Simulated time between telemetry samples. Default: 10 s of wall time.")
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(envvar="PUMPTWIN_MQTT__URL", help="Broker URL mqtt://host:port; default: an embedded broker."),
    ] = None,
    sites: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated site ids for a generated fleet (they must be simulation sites on a "
            "secured broker, see broker/README.md)."
        ),
    ] = None,
    random_faults: Annotated[bool, typer.Option(help="Inject faults at their published hazard rates.")] = False,
    clinic: Annotated[
        bool, typer.Option(help="Refill pumps after their low-reservoir alarm, as a clinic does.")
    ] = True,
    influx_url: Annotated[
        str | None,
        typer.Option(
            help="Backfill: with --speed max and --duration, run the twin in this process and write its "
            "history straight to this InfluxDB (v1 API) instead of publishing over MQTT."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a fleet of virtual pumps that publish over MQTT."""
    from twin.contract.topics import TopicError, validate_id
    from twin.mqtt_endpoint import MqttEndpoint
    from twin.settings import Settings
    from twin.sim.runner import SimPlan, run_simulator

    _setup_logging(verbose)
    speed_factor = parse_speed(speed)
    duration_s = parse_duration(duration) if duration else None
    site_list = [x.strip() for x in sites.split(",") if x.strip()] if sites else None
    for site in site_list or []:
        try:
            validate_id(site, what="site")
        except TopicError as exc:
            raise typer.BadParameter(str(exc), param_hint="--sites") from None
    plan = SimPlan.build(
        pumps=pumps,
        sites=site_list,
        fleet_file=fleet,
        seed=seed,
        speed=speed_factor,
        duration_s=duration_s,
        start=start,
        telemetry_every_s=parse_duration(telemetry_every) if telemetry_every else None,
        random_faults=random_faults,
        clinic=clinic,
    )
    settings = Settings()
    if influx_url:
        if speed_factor is not None or duration_s is None:
            raise typer.BadParameter(
                "a backfill runs as fast as possible for a duration: add --speed max --duration 90d"
            )
        from rich.console import Console

        from twin.sim.backfill import backfill

        settings.influx.url = influx_url
        console = Console(stderr=True)
        console.print(f"backfilling {len(plan.specs)} pumps, {duration_s / 86400:g} days from {plan.epoch.isoformat()}")
        result = asyncio.run(backfill(plan, settings.influx, console=console, spool_dir=settings.data_dir / "spool"))
        console.print(
            f"{result.messages} messages -> {result.points_written} points written to InfluxDB "
            f"({result.points_accepted} accepted, {result.dead_lettered} dead-lettered) in {result.wall_s:.1f} s; "
            f"{result.alarms_open} alarms open at the end"
        )
        if not result.drained:
            console.print("[yellow]InfluxDB did not take everything yet: the rest waits in the spool[/]")
            raise typer.Exit(1)
        return
    endpoint = None
    if mqtt:
        endpoint = MqttEndpoint.parse(
            mqtt,
            username=settings.mqtt.username,
            password=settings.mqtt.password.get_secret_value() if settings.mqtt.password else None,
            ca_file=settings.mqtt.ca_file,
        )
    try:
        asyncio.run(run_simulator(plan, endpoint))
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def serve(
    mqtt: Annotated[
        str | None, typer.Option(envvar="PUMPTWIN_MQTT__URL", help="Broker URL; default: an embedded broker.")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="HTTP address (default from PUMPTWIN_HTTP__HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default from PUMPTWIN_HTTP__PORT or 8080).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Journal database and spool (default ./var).")] = None,
    influx_url: Annotated[
        str | None, typer.Option(help="InfluxDB URL (v1 API); default from PUMPTWIN_INFLUX__URL; unset: spool only.")
    ] = None,
    sites: Annotated[str | None, typer.Option(help="Comma-separated sites this twin owns; default all.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the twin service: mirror every device, run its alarms, serve the HTTP API."""
    from twin.mqtt_endpoint import MqttEndpoint
    from twin.service.runtime import running_twin
    from twin.settings import Settings

    _setup_logging(verbose)
    settings = Settings()
    if host is not None:
        settings.http.host = host
    if port is not None:
        settings.http.port = port
    if data_dir is not None:
        settings.data_dir = data_dir
    if influx_url is not None:
        settings.influx.url = influx_url
    if sites:
        settings.mqtt.sites = [x.strip() for x in sites.split(",") if x.strip()]
    mqtt = mqtt or settings.mqtt.url

    async def main() -> None:
        from twin.embedded_broker import embedded_broker

        async with contextlib.AsyncExitStack() as stack:
            url: str = mqtt if mqtt else await stack.enter_async_context(embedded_broker())
            endpoint = MqttEndpoint.parse(
                url,
                username=settings.mqtt.username,
                password=settings.mqtt.password.get_secret_value() if settings.mqtt.password else None,
                ca_file=settings.mqtt.ca_file,
            )
            running = await stack.enter_async_context(running_twin(settings, endpoint))
            typer.echo(f"twin service: {running.url} (API docs {running.url}/docs), MQTT {endpoint.url}")
            await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def demo(
    pumps: Annotated[int, typer.Option("--pumps", "-n", min=1)] = 12,
    speed: Annotated[
        str | None, typer.Option(help="Speed factor (default 3600: an hour a second; with --scenario, its own).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 1,
    duration: Annotated[str | None, typer.Option(help="Stop after this simulated time (default: Ctrl-C).")] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Run this catalogue scenario live on its own fleet (see `pumptwin scenario`).")
    ] = None,
    training: Annotated[
        bool,
        typer.Option(
            "--training",
            help="A fleet for training sessions: every pump of the catalogue's scenarios, at 1x until an "
            "instructor starts a session in the console.",
        ),
    ] = False,
) -> None:
    """The whole product on an embedded default: no broker or database to install."""
    from twin.demo import run_demo
    from twin.scenarios.scenario_file import ScenarioFileError, find_scenario, load_scenario

    _setup_logging(False)
    try:
        chosen = load_scenario(find_scenario(scenario)) if scenario else None
    except ScenarioFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenario") from None
    if training and chosen is not None:
        raise typer.BadParameter("--training offers every scenario; leave out --scenario", param_hint="--training")
    default_speed = chosen.speed if chosen else (1.0 if training else 3600.0)
    factor = parse_speed(speed) if speed is not None else default_speed
    try:
        asyncio.run(
            run_demo(
                pumps=pumps,
                speed=factor,
                seed=seed,
                duration_s=parse_duration(duration) if duration else None,
                scenario=chosen,
                training=training,
            )
        )
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command("watch")
def watch_cmd(
    mqtt: Annotated[str, typer.Option(envvar="PUMPTWIN_MQTT__URL", help="Broker URL mqtt://host:port.")],
    telemetry: Annotated[bool, typer.Option(help="Show every telemetry sample too.")] = False,
) -> None:
    """Print what the pumps publish (births, status, alarms, command results)."""
    from twin.mqtt_endpoint import MqttEndpoint
    from twin.sim.watch import watch

    try:
        asyncio.run(watch(MqttEndpoint.parse(mqtt), typer.echo, show_telemetry=telemetry))
    except KeyboardInterrupt:
        typer.echo("stopped")


@contract_app.command("asyncapi")
def contract_asyncapi(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write (default: docs/asyncapi.yaml).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Do not write; exit 1 if the file differs from the models.")
    ] = False,
) -> None:
    """Generate the AsyncAPI 3.0 document from the contract models."""
    from twin.contract import asyncapi

    target = output or asyncapi.DOCUMENT_PATH
    if check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != asyncapi.render():
            typer.echo(f"{target} is out of date: run `pumptwin contract asyncapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} is up to date")
        return
    asyncapi.write(target)
    typer.echo(f"wrote {target}")


PasswordFileOption = Annotated[
    Path,
    typer.Option(
        "--password-file", envvar="PUMPTWIN_BROKER_PASSWORD_FILE", help="Mosquitto password file (mosquitto.conf)."
    ),
]
AclFileOption = Annotated[
    Path, typer.Option("--acl-file", envvar="PUMPTWIN_BROKER_ACL_FILE", help="Mosquitto ACL file (mosquitto.conf).")
]
OwnerOption = Annotated[
    str | None,
    typer.Option(
        "--owner",
        envvar="PUMPTWIN_BROKER_OWNER",
        help="user[:group] the broker runs as, given new files (it reads them after dropping root).",
    ),
]
DEFAULT_PASSWORD_FILE = Path("broker/auth/passwd")
DEFAULT_ACL_FILE = Path("broker/auth/acl")


def _broker_accounts(password_file: Path, acl_file: Path, owner: str | None) -> broker_accounts.BrokerAccounts:
    from twin import broker_accounts

    owner_ids = broker_accounts.Owner.parse(owner) if owner else None
    return broker_accounts.BrokerAccounts(password_file=password_file, acl_file=acl_file, owner=owner_ids)


def _report(issued: broker_accounts.Issued, what: str) -> None:
    """Messages go to stderr; a new password goes to stdout as username=/password= lines, shown this once only."""
    if issued.password is not None:
        typer.echo(f"{what}: new password (store it in the client now; it is not shown again)", err=True)
        typer.echo(f"username={issued.username}")
        typer.echo(f"password={issued.password}")
    elif issued.changed:
        typer.echo(f"{what}: updated", err=True)
    else:
        typer.echo(f"{what}: already in place, nothing changed", err=True)


def _password_from_env(name: str | None) -> str | None:
    import os

    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        typer.echo(f"environment variable {name} is not set or empty", err=True)
        raise typer.Exit(2)
    return value


@contextlib.contextmanager
def _account_errors() -> Iterator[None]:
    from twin.broker_accounts import AccountError

    try:
        yield
    except AccountError as exc:
        typer.echo(f"refused ({exc.reason}): {exc}", err=True)
        raise typer.Exit(1) from None


@broker_app.command("device")
def broker_device(
    site: Annotated[str, typer.Argument(help="The device's site (a topic level).")],
    device_id: Annotated[str, typer.Argument(help="The device id, also its username (a topic level).")],
    simulated: Annotated[
        bool, typer.Option("--simulated", help="A simulated device; the site must be a simulation site.")
    ] = False,
    rotate: Annotated[bool, typer.Option("--rotate", help="Issue a new password even if it has one.")] = False,
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Issue a device credential: a random password, and rights on its own topics only."""
    with _account_errors():
        issued = _broker_accounts(password_file, acl_file, owner).issue_device(
            site, device_id, simulated=simulated, rotate=rotate
        )
    _report(issued, f"device {device_id} at {site}")


@broker_app.command("revoke")
def broker_revoke(
    device_id: Annotated[str, typer.Argument(help="The device id (username) to remove.")],
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Remove a device's credential and rights (reload the broker to drop a connected client)."""
    with _account_errors():
        issued = _broker_accounts(password_file, acl_file, owner).revoke_device(device_id)
    typer.echo(f"device {device_id}: {'revoked' if issued.changed else 'had no account'}", err=True)


@broker_app.command("simulation-site")
def broker_simulation_site(
    sites: Annotated[list[str], typer.Argument(help="Sites whose devices are all simulated.")],
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Declare simulation sites: the twin may command their devices; the simulator publishes for them."""
    with _account_errors():
        changed = _broker_accounts(password_file, acl_file, owner).add_simulation_sites(sites)
    typer.echo(f"simulation sites {', '.join(sites)}: {'added' if changed else 'already declared'}", err=True)


@broker_app.command("service")
def broker_service(
    account: Annotated[str, typer.Argument(help="twin or simulator.")],
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Take the password from this environment variable (else generate one)."),
    ] = None,
    rotate: Annotated[bool, typer.Option("--rotate", help="Generate a new password even if it has one.")] = False,
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Issue the twin's or the simulator's password (their rights follow from the simulation sites)."""
    password = _password_from_env(password_env)
    with _account_errors():
        issued = _broker_accounts(password_file, acl_file, owner).issue_service(
            account, password=password, rotate=rotate
        )
    _report(issued, f"service account {account}")


@broker_app.command("provision")
def broker_provision(
    simulation_sites: Annotated[
        str, typer.Option("--simulation-sites", help="Comma-separated simulation sites to declare.")
    ] = "",
    twin_password_env: Annotated[
        str | None, typer.Option("--twin-password-env", help="Environment variable holding the twin's password.")
    ] = None,
    simulator_password_env: Annotated[
        str | None,
        typer.Option("--simulator-password-env", help="Environment variable holding the simulator's password."),
    ] = None,
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Set up the service side in one idempotent step (the compose init): simulation sites, twin, simulator."""
    accounts = _broker_accounts(password_file, acl_file, owner)
    sites = [s.strip() for s in simulation_sites.split(",") if s.strip()]
    with _account_errors():
        changed = accounts.add_simulation_sites(sites)
        typer.echo(f"simulation sites {', '.join(sites) or '(none)'}: {'added' if changed else 'in place'}", err=True)
        for account, env in (("twin", twin_password_env), ("simulator", simulator_password_env)):
            if env is not None:
                _report(accounts.issue_service(account, password=_password_from_env(env)), f"service account {account}")


@broker_app.command("show")
def broker_show(
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
) -> None:
    """List the accounts: simulation sites, services, devices (real or simulated), and which have a password."""
    from twin.broker_accounts import SERVICE_ACCOUNTS

    accounts = _broker_accounts(password_file, acl_file, None)
    with _account_errors():
        policy = accounts.policy()
    hashes = accounts.password_hashes()
    typer.echo(f"simulation sites: {', '.join(sorted(policy.simulation_sites)) or '(none)'}")
    for account in SERVICE_ACCOUNTS:
        typer.echo(f"service {account}: {'password set' if account in hashes else 'NO PASSWORD'}")
    for device in policy.devices:
        kind = "simulated" if policy.is_simulated(device) else "real"
        state = "password set" if device.device_id in hashes else "NO PASSWORD"
        typer.echo(f"device {device.device_id} at {device.site} ({kind}): {state}")
    orphans = sorted(set(hashes) - set(SERVICE_ACCOUNTS) - {d.device_id for d in policy.devices})
    for user in orphans:
        typer.echo(f"password without rights (revoke it): {user}")


DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="The twin's data directory (default from PUMPTWIN_DATA_DIR or ./var).")
]


def _users_file(data_dir: Path | None) -> Path:
    from twin.service.runtime import USERS_FILE
    from twin.settings import Settings

    return (data_dir or Settings().data_dir) / USERS_FILE


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name: lower-case letters, digits, '.', '_', '-'.")],
    role: Annotated[Role, typer.Option("--role", "-r", help="viewer, trainee, instructor or admin.")],
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Take the password from this environment variable.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Create a console account. Without --password-env or --password-stdin it asks for the password twice."""
    import getpass
    import sys
    from datetime import UTC, datetime

    from twin.store.users import UserError, UserStore, check_password, check_username, hash_password

    if password_env and password_stdin:
        raise typer.BadParameter("give --password-env or --password-stdin, not both")
    try:
        check_username(name)
        if password_env:
            password = _password_from_env(password_env) or ""
        elif password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        password_hash = hash_password(check_password(password))
        with UserStore(_users_file(data_dir)) as store:
            user = store.add(name, role, password_hash, actor=f"cli:{getpass.getuser()}", at=datetime.now(UTC))
    except UserError as exc:
        typer.echo(f"refused ({exc.reason}): {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"added {user.username} ({user.role.value})")


@users_app.command("list")
def users_list(data_dir: DataDirOption = None) -> None:
    """List the console accounts: name, role, and whether the account is disabled."""
    from twin.store.users import UserStore

    with UserStore(_users_file(data_dir)) as store:
        users = store.all()
    if not users:
        typer.echo("no users yet: pumptwin users add NAME --role admin")
    for user in users:
        flag = "\tdisabled" if user.disabled else ""
        typer.echo(f"{user.username}\t{user.role.value}{flag}")


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="pumptwin")
