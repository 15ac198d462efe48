"""``pumptwin users``: console accounts."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from twin.cli.app import app
from twin.cli.broker import password_from_env
from twin.cli.options import DataDirOption
from twin.roles import Role

users_app = typer.Typer(
    help="Console accounts (roles viewer < trainee < instructor < admin), in <data dir>/users.sqlite, "
    "or in PostgreSQL when PUMPTWIN_DATABASE__URL is set (the accounts every replica shares).",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")


def _users_file(data_dir: Path | None) -> Path:
    from twin.app.serve import USERS_FILE
    from twin.settings import Settings

    return (data_dir or Settings().data_dir) / USERS_FILE


@contextlib.contextmanager
def _accounts(data_dir: Path | None) -> Iterator[Any]:
    """The account store: the replicas' PostgreSQL when a database URL is set, else the SQLite file."""
    from twin.settings import Settings
    from twin.store.users import UserStore

    settings = Settings()
    if settings.database.url is None:
        with UserStore(_users_file(data_dir)) as store:
            yield store
        return
    from twin.app.replica import BlockingAccounts, database_limits
    from twin.store.postgres.schema import migrate_sync

    url = settings.database.url.get_secret_value()
    migrate_sync(url)
    accounts = BlockingAccounts(url, replica=f"cli-{os.getpid()}", limits=database_limits(settings))
    try:
        yield accounts
    finally:
        accounts.close()


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

    from twin.store.users import UserError, check_password, check_username, hash_password

    if password_env and password_stdin:
        raise typer.BadParameter("give --password-env or --password-stdin, not both")
    try:
        check_username(name)
        if password_env:
            password = password_from_env(password_env) or ""
        elif password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        password_hash = hash_password(check_password(password))
        with _accounts(data_dir) as store:
            user = store.add(name, role, password_hash, actor=f"cli:{getpass.getuser()}", at=datetime.now(UTC))
    except UserError as exc:
        typer.echo(f"refused ({exc.reason}): {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"added {user.username} ({user.role.value})")


@users_app.command("list")
def users_list(data_dir: DataDirOption = None) -> None:
    """List the console accounts: name, role, and whether the account is disabled."""
    with _accounts(data_dir) as store:
        users = store.all()
    if not users:
        typer.echo("no users yet: pumptwin users add NAME --role admin")
    for user in users:
        flag = "\tdisabled" if user.disabled else ""
        typer.echo(f"{user.username}\t{user.role.value}{flag}")
