"""``pumptwin broker``: broker accounts (Mosquitto password file and ACL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin.cli.app import app

if TYPE_CHECKING:
    from twin import broker_accounts

broker_app = typer.Typer(
    help="Broker accounts: device credentials, simulation and gateway sites, the service accounts (Mosquitto).",
    no_args_is_help=True,
)
app.add_typer(broker_app, name="broker")


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


def password_from_env(name: str | None) -> str | None:
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


@broker_app.command("gateway-site")
def broker_gateway_site(
    sites: Annotated[list[str], typer.Argument(help="Real sites whose pumps the read-out gateway publishes.")],
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Declare gateway sites: the gateway account may publish interrogation read-outs of their real pumps."""
    with _account_errors():
        changed = _broker_accounts(password_file, acl_file, owner).add_gateway_sites(sites)
    typer.echo(f"gateway sites {', '.join(sites)}: {'added' if changed else 'already declared'}", err=True)


@broker_app.command("service")
def broker_service(
    account: Annotated[str, typer.Argument(help="twin, simulator or gateway.")],
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Take the password from this environment variable (else generate one)."),
    ] = None,
    rotate: Annotated[bool, typer.Option("--rotate", help="Generate a new password even if it has one.")] = False,
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Issue the twin's, the simulator's or the gateway's password (rights follow from the declared sites)."""
    password = password_from_env(password_env)
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
    gateway_sites: Annotated[
        str, typer.Option("--gateway-sites", help="Comma-separated real sites whose read-outs the gateway publishes.")
    ] = "",
    gateway_password_env: Annotated[
        str | None,
        typer.Option("--gateway-password-env", help="Environment variable holding the read-out gateway's password."),
    ] = None,
    password_file: PasswordFileOption = DEFAULT_PASSWORD_FILE,
    acl_file: AclFileOption = DEFAULT_ACL_FILE,
    owner: OwnerOption = None,
) -> None:
    """Set up the service side in one idempotent step (the compose init): simulation sites, gateway sites, and
    the twin's, the simulator's and the gateway's passwords."""
    accounts = _broker_accounts(password_file, acl_file, owner)
    sites = [s.strip() for s in simulation_sites.split(",") if s.strip()]
    real = [s.strip() for s in gateway_sites.split(",") if s.strip()]
    with _account_errors():
        changed = accounts.add_simulation_sites(sites)
        typer.echo(f"simulation sites {', '.join(sites) or '(none)'}: {'added' if changed else 'in place'}", err=True)
        if real:
            changed = accounts.add_gateway_sites(real)
            typer.echo(f"gateway sites {', '.join(real)}: {'added' if changed else 'in place'}", err=True)
        services = (
            ("twin", twin_password_env),
            ("simulator", simulator_password_env),
            ("gateway", gateway_password_env),
        )
        for account, env in services:
            if env is not None:
                _report(accounts.issue_service(account, password=password_from_env(env)), f"service account {account}")


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
    typer.echo(f"gateway sites: {', '.join(sorted(policy.gateway_sites)) or '(none)'}")
    for account in SERVICE_ACCOUNTS:
        typer.echo(f"service {account}: {'password set' if account in hashes else 'NO PASSWORD'}")
    for device in policy.devices:
        kind = "simulated" if policy.is_simulated(device) else "real"
        state = "password set" if device.device_id in hashes else "NO PASSWORD"
        typer.echo(f"device {device.device_id} at {device.site} ({kind}): {state}")
    orphans = sorted(set(hashes) - set(SERVICE_ACCOUNTS) - {d.device_id for d in policy.devices})
    for user in orphans:
        typer.echo(f"password without rights (revoke it): {user}")
