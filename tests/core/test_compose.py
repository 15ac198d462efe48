"""The deployment files: compose.yaml, .env.example, the Dockerfile and the Grafana provisioning.

No container engine is needed (none is on CI): compose.yaml is validated against the Compose Specification
JSON schema, and everything it refers to (files, variables, commands, settings) is checked against the
repository. What this cannot check is listed in README.md ("Running the stack").

The schema is the one check-jsonschema (a dev dependency, pinned in requirements.lock) vendors from the
compose-spec project as ``vendor/compose-spec.json``; check-jsonschema records its sha256 next to it.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml

from twin.cli import app
from twin.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PUMPTWIN_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?+])[^}]*)?\}")


class MissingCommand(AssertionError):
    """A command line in the deployment files names a pumptwin subcommand that does not exist."""


def _compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))
    return schema


def _schema_errors(document: object) -> list[str]:
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


def _cli() -> Any:
    """The click group behind ``pumptwin`` (Typer's own vendored click, so duck-typed: groups have ``commands``)."""
    command = typer.main.get_command(app)
    assert hasattr(command, "commands")
    return command


def _resolve(argv: list[str]) -> Any:
    """The click command ``pumptwin <argv>`` runs (subcommands followed until an option or argument)."""
    assert argv[0] == "pumptwin", argv
    command = _cli()
    for word in argv[1:]:
        if not hasattr(command, "commands") or word.startswith("-"):
            break
        sub = command.commands.get(word)
        if sub is None:
            raise MissingCommand(f"`{' '.join(argv)}`: pumptwin has no subcommand {word!r}")
        command = sub
    return command


def _options_exist(argv: list[str]) -> None:
    command = _resolve(argv)
    known = {opt for param in command.params for opt in param.opts}
    for word in argv:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in known, f"`{' '.join(argv)}`: {command.name} has no option {word}"


def _bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes", []):
        source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
        if source.startswith((".", "/")):
            sources.append(source)
    return sources


# -- the Compose Specification ----------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    assert _schema_errors(COMPOSE) == []


def test_the_schema_check_catches_mistakes() -> None:
    """A control for the test above: the schema must refuse a misspelt key and a wrong type."""
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["twin"]["helthcheck"] = broken["services"]["twin"].pop("healthcheck")
    broken["services"]["mosquitto"]["depends_on"] = "broker-accounts"
    errors = _schema_errors(broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any(e.startswith("services/mosquitto/depends_on") for e in errors), errors


# -- what compose.yaml refers to --------------------------------------------------------------------------


def test_every_mounted_or_built_path_exists() -> None:
    for name, service in SERVICES.items():
        for source in _bind_sources(service):
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
        if "build" in service:
            context = ROOT / service["build"]["context"]
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file(), name
    declared = set(COMPOSE.get("volumes", {}))
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses volume {source!r}, not declared under volumes:"


def test_dockerfile_copies_only_files_that_exist() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            for source in words[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"


def test_every_variable_is_in_env_example_and_every_example_is_used() -> None:
    used = set(VARIABLE.findall((ROOT / "compose.yaml").read_text()))
    example = set(_env_example())
    assert used - example == set(), "variables compose.yaml uses but .env.example lacks"
    assert example - used == set(), "variables .env.example lists but compose.yaml does not use"


def test_env_example_holds_no_secrets() -> None:
    for name, value in _env_example().items():
        if any(word in name for word in ("PASSWORD", "TOKEN")):
            assert value == "", f"{name} must be empty in .env.example (compose then refuses to start)"
            assert re.search(rf"\$\{{{name}:\?", (ROOT / "compose.yaml").read_text()), f"{name} must be required"


def test_secrets_stay_out_of_the_image_and_the_repository() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "broker/auth", "broker/certs", ".venv", ".git"} <= set(ignored)
    git_ignored = (ROOT / ".gitignore").read_text().split()
    assert {".env", "/broker/auth/", "/broker/certs/"} <= set(git_ignored)


def test_every_service_has_a_health_check() -> None:
    """One-shot jobs are the exception: their health is their exit status, which dependants wait for."""
    one_shot = {
        dependency
        for service in SERVICES.values()
        for dependency, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }
    for name, service in SERVICES.items():
        check = service.get("healthcheck", {})
        if name in one_shot:
            assert check == {"disable": True}, name
            assert service.get("restart") == "no", name
            continue
        assert check.get("test"), f"{name} has no health check"
        test = check["test"]
        if test[:2] == ["CMD", "python"]:
            assert test[2] == "-c"
            compile(test[3], f"{name} healthcheck", "exec")


def test_ports_are_published_on_localhost_only() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


def test_broker_gets_the_repository_configuration_read_only() -> None:
    mounts = SERVICES["mosquitto"]["volumes"]
    assert "./broker:/mosquitto/config:ro" in mounts
    lines = (ROOT / "broker" / "mosquitto.conf").read_text().splitlines()
    auth_target = next(m.split(":")[1] for m in mounts if m.startswith("mosquitto-auth:"))
    assert f"password_file {auth_target}/passwd" in lines
    assert f"acl_file {auth_target}/acl" in lines
    init_env = SERVICES["broker-accounts"]["environment"]
    assert init_env["PUMPTWIN_BROKER_PASSWORD_FILE"] == f"{auth_target}/passwd"
    assert init_env["PUMPTWIN_BROKER_ACL_FILE"] == f"{auth_target}/acl"
    assert "mosquitto-auth:/mosquitto/auth" in SERVICES["broker-accounts"]["volumes"]


# -- commands and settings the services use ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    list(PUMPTWIN_SERVICES),
)
def test_service_commands_exist_in_the_cli(name: str) -> None:
    _options_exist(SERVICES[name]["command"])


def test_console_script_is_pumptwin() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pumptwin"] == "twin.cli:app"


def _settings_path_exists(variable: str) -> bool:
    model: Any = Settings
    for part in variable.removeprefix("PUMPTWIN_").lower().split("__"):
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = field.annotation
    return True


def test_service_environment_names_real_settings() -> None:
    """A misspelt PUMPTWIN_ variable would be ignored silently (extra="ignore"); the CLI's own variables count too."""
    cli_envvars = {
        envvar
        for command in _cli().commands["broker"].commands.values()
        for param in command.params
        for envvar in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    for name in PUMPTWIN_SERVICES:
        for variable in SERVICES[name].get("environment", {}):
            if variable.startswith("PUMPTWIN_"):
                assert _settings_path_exists(variable) or variable in cli_envvars, f"{name}: {variable}"


def test_dockerfile_health_check_and_command() -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    health = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    argv = json.loads(health[health.index("CMD") + 3 :])
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "Dockerfile HEALTHCHECK", "exec")
    assert "/healthz" in argv[2]
    assert "EXPOSE 8080" in text
    assert "PUMPTWIN_HTTP__PORT=8080" in text
    assert "--require-hashes" in text
    assert re.search(r"^USER pumptwin$", text, re.MULTILINE)


def test_dockerfile_default_command_exists() -> None:
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    _options_exist(json.loads(cmd[4:]))


def test_runtime_lock_is_the_runtime_part_of_the_dev_lock() -> None:
    def pins(name: str) -> dict[str, str]:
        text = (ROOT / name).read_text()
        return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ \\]+)", text, re.MULTILINE))

    runtime, full = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert {name: full.get(name) for name in runtime} == runtime, "re-run `make lock`"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=~! ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in runtime, f"{name} is a runtime dependency missing from requirements-runtime.lock"
    assert "pytest" not in runtime
    assert "playwright" not in runtime


# -- Grafana provisioning --------------------------------------------------------------------------------


def _datasource(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "datasources" / name).read_text())
    assert document["apiVersion"] == 1
    [datasource] = document["datasources"]
    return datasource  # type: ignore[no-any-return]  # YAML


def test_datasource_variants_are_influxql_with_one_uid() -> None:
    token, classic = _datasource("influxdb.yaml"), _datasource("influxdb-1x.yaml.example")
    for datasource in (token, classic):
        assert datasource["type"] == "influxdb"
        assert datasource["jsonData"]["version"] == "InfluxQL"
    assert token["uid"] == classic["uid"]  # dashboards work with either
    assert token["jsonData"]["httpHeaderName1"] == "Authorization"
    assert token["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"
    assert classic["user"] == "${INFLUX_USER}"
    assert classic["secureJsonData"]["password"] == "${INFLUX_PASSWORD}"


def test_grafana_has_every_variable_its_active_provisioning_uses() -> None:
    environment = SERVICES["grafana"]["environment"]
    for path in (ROOT / "dashboards" / "provisioning").rglob("*.yaml"):
        for variable in VARIABLE.findall(path.read_text()):
            assert variable in environment, f"{path.name} uses ${{{variable}}}, not set on the grafana service"


def test_dashboard_provider_reads_the_mounted_json_directory() -> None:
    provider = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "dashboards" / "pumptwin.yaml").read_text())
    [entry] = provider["providers"]
    mounts = dict(m.split(":")[:2] for m in SERVICES["grafana"]["volumes"] if m.startswith("./"))
    assert mounts["./dashboards/json"] == entry["options"]["path"]
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"


# -- profile "scale": EMQX cluster, PostgreSQL, twin replicas ---------------------------------------------

SCALE = {name: service for name, service in SERVICES.items() if "scale" in service.get("profiles", [])}


def test_the_default_stack_has_no_profile_and_the_scale_profile_is_whole() -> None:
    """``docker compose up`` starts what it always did; ``--profile scale`` adds the cluster."""
    for name in ("broker-accounts", "mosquitto", "influxdb", "twin", "simulator", "gateway", "grafana"):
        assert "profiles" not in SERVICES[name], name
    assert set(SCALE) == {
        "emqx-accounts",
        "emqx1",
        "emqx2",
        "emqx3",
        "postgres",
        "twin-1",
        "twin-2",
        "twin-3",
        "simulator-scale",
    }
    for name, service in SCALE.items():  # a scale service may need the shared ones, never another profile's
        for dependency in service.get("depends_on") or {}:
            assert dependency in SCALE or "profiles" not in SERVICES[dependency], (name, dependency)


def test_emqx_nodes_form_one_static_cluster() -> None:
    nodes = {name: service for name, service in SCALE.items() if service.get("image", "").startswith("emqx/emqx:5.")}
    assert len(nodes) == 3
    names = {}
    for name, service in nodes.items():
        env = service["environment"]
        node = env["EMQX_NODE__NAME"]
        host = node.split("@", 1)[1]
        assert service["hostname"] == host, name
        assert host in service["networks"]["default"]["aliases"], name
        assert env["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static", name
        assert env["EMQX_AUTHENTICATION__1__BACKEND"] == "built_in_database", name  # no anonymous clients
        names[name] = node
        data = [v for v in service["volumes"] if v.endswith(":/opt/emqx/data")]
        assert len(data) == 1, name
    seeds = {env["EMQX_CLUSTER__STATIC__SEEDS"] for env in (s["environment"] for s in nodes.values())}
    assert len(seeds) == 1, "every node is given the same seeds"
    assert set(seeds.pop().strip("[]").split(",")) == set(names.values())
    cookies = {s["environment"]["EMQX_NODE__COOKIE"] for s in nodes.values()}
    assert cookies == {"${EMQX_NODE_COOKIE:?set EMQX_NODE_COOKIE in .env (see .env.example)}"}
    volumes = {tuple(v for v in s["volumes"] if v.endswith(":/opt/emqx/data")) for s in nodes.values()}
    assert len(volumes) == 3, "each node keeps its own data"


def test_twin_replicas_share_postgres_and_lease_the_same_partitions() -> None:
    replicas = {name: s for name, s in SCALE.items() if s.get("command", [])[:2] == ["pumptwin", "serve"]}
    assert len(replicas) == 3
    hosts = {SERVICES[n]["hostname"] for n in ("emqx1", "emqx2", "emqx3")}
    ids, brokers, partitions = set(), set(), set()
    for name, service in replicas.items():
        env = service["environment"]
        assert re.fullmatch(
            r"postgresql://pumptwin:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/pumptwin",
            env["PUMPTWIN_DATABASE__URL"],
        ), name
        assert env["PUMPTWIN_CLUSTER__HTTP_URL"] == f"http://{name}:{env['PUMPTWIN_HTTP__PORT']}", name
        ids.add(env["PUMPTWIN_CLUSTER__REPLICA_ID"])
        partitions.add(env["PUMPTWIN_CLUSTER__PARTITIONS"])
        mqtt = service["command"][service["command"].index("--mqtt") + 1]
        brokers.add(mqtt.removeprefix("mqtt://").split(":")[0])
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert any(v.endswith(":/var/lib/pumptwin") for v in service["volumes"]), name
    assert len(ids) == 3, "replica ids are unique"
    assert len(partitions) == 1, "P is one setting for the deployment"
    assert brokers == hosts, "each replica reaches another node of the cluster"
    auth = SCALE["emqx-accounts"]
    assert auth["environment"].keys() == {"MQTT_TWIN_PASSWORD", "MQTT_SIMULATOR_PASSWORD"}
    assert any(v.startswith("emqx-auth:") for v in auth["volumes"])
