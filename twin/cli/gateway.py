"""``pumptwin gateway``: real pumps' interrogation read-outs in over MQTT (import, watch) and the read-out schema."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin.cli.app import app
from twin.cli.options import parse_duration, setup_logging

if TYPE_CHECKING:
    from twin.mqtt_endpoint import MqttEndpoint

gateway_app = typer.Typer(
    help="Real pumps: publish interrogation read-outs (JSON or YAML files) over MQTT as the contract says.",
    no_args_is_help=True,
)
app.add_typer(gateway_app, name="gateway")

MqttOption = Annotated[
    str, typer.Option("--mqtt", envvar="PUMPTWIN_GATEWAY_MQTT", help="Broker URL mqtt://host:port (mqtts:// for TLS).")
]
UsernameOption = Annotated[
    str,
    typer.Option("--username", envvar="PUMPTWIN_GATEWAY_USERNAME", help="The gateway's broker account."),
]
PasswordEnvOption = Annotated[
    str,
    typer.Option(
        "--password-env", help="Environment variable that holds the account's password (never on the command line)."
    ),
]
CaFileOption = Annotated[Path | None, typer.Option("--ca-file", help="CA certificate for mqtts://.")]
DEFAULT_MQTT = "mqtt://127.0.0.1:1883"


def _endpoint(mqtt: str, username: str, password_env: str, ca_file: Path | None) -> MqttEndpoint:
    from twin.mqtt_endpoint import EndpointError, MqttEndpoint

    try:
        return MqttEndpoint.parse(
            mqtt, username=username or None, password=os.environ.get(password_env), ca_file=ca_file
        )
    except EndpointError as exc:
        raise typer.BadParameter(str(exc)) from None


@gateway_app.command("import")
def gateway_import(
    files: Annotated[list[Path], typer.Argument(help="Read-out files (.json, .yaml, .yml).")],
    mqtt: MqttOption = DEFAULT_MQTT,
    username: UsernameOption = "gateway",
    password_env: PasswordEnvOption = "PUMPTWIN_GATEWAY_PASSWORD",
    ca_file: CaFileOption = None,
    check: Annotated[bool, typer.Option("--check", help="Only check the files; publish nothing.")] = False,
) -> None:
    """Check every file, then publish them (each pump's oldest first). One bad file and nothing is published:
    every mistake is listed with its file, line and field. Importing a file again changes nothing."""
    from twin.gateway.publisher import GatewayError, Loaded, OutcomeStatus, publish_readouts
    from twin.gateway.readout_file import ReadoutFileError, load_readout

    batch: list[Loaded] = []
    bad = 0
    for path in files:
        try:
            batch.append(Loaded(str(path), load_readout(path)))
        except ReadoutFileError as exc:
            bad += 1
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
    if bad:
        typer.echo(f"refused: {bad} of {len(files)} files are not valid read-outs; nothing was published", err=True)
        raise typer.Exit(1)
    if check:
        typer.echo(f"{len(batch)} read-outs are valid (nothing published: --check)")
        return
    endpoint = _endpoint(mqtt, username, password_env, ca_file)
    try:
        outcomes = asyncio.run(publish_readouts(endpoint, batch))
    except GatewayError as exc:
        typer.echo(f"gateway: {exc}", err=True)
        raise typer.Exit(2) from None
    for outcome in outcomes:
        verb = "published" if outcome.status is OutcomeStatus.PUBLISHED else "skipped"
        typer.echo(
            f"{verb} {outcome.source}: {outcome.site}/{outcome.device_id} interrogated "
            f"{outcome.interrogated_at.isoformat()}: {outcome.detail}"
        )


@gateway_app.command("watch")
def gateway_watch(
    directory: Annotated[Path, typer.Argument(help="The inbox: read-out files dropped here are published.")],
    mqtt: MqttOption = DEFAULT_MQTT,
    username: UsernameOption = "gateway",
    password_env: PasswordEnvOption = "PUMPTWIN_GATEWAY_PASSWORD",
    ca_file: CaFileOption = None,
    interval: Annotated[str, typer.Option("--interval", help="Time between two looks at the folder.")] = "2s",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Publish every read-out dropped into DIRECTORY; move it to published/ once done, or a bad one to
    rejected/ with its reasons in NAME.reason.txt beside it (nothing of a bad file is published)."""
    from twin.gateway.inbox import Inbox

    setup_logging(verbose)
    if not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a directory")
    inbox = Inbox(directory, _endpoint(mqtt, username, password_env, ca_file), poll_s=parse_duration(interval))
    inbox.report = typer.echo
    typer.echo(f"watching {directory} (published/ and rejected/ beside the files); Ctrl-C stops")

    async def main() -> None:
        await inbox.run(asyncio.Event())

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        counts = inbox.counts
        typer.echo(f"stopped: {counts.published} published, {counts.superseded} skipped, {counts.rejected} rejected")


@gateway_app.command("schema")
def gateway_schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the schema here.")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if docs/interrogation.schema.json (or --output) is out of date.")
    ] = False,
) -> None:
    """The JSON Schema of a read-out file (docs/interrogation.schema.json)."""
    from twin.gateway.readout import SCHEMA_PATH, render_schema

    text = render_schema()
    if check:
        target = output or SCHEMA_PATH
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            typer.echo(f"{target} is out of date: run `pumptwin gateway schema -o {target}`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} is up to date")
        return
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)
