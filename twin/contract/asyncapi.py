"""Generate ``docs/asyncapi.yaml`` (AsyncAPI 3.0) from the contract models.

The document describes the contract from the side of a *device* (a simulated pump or a gateway
for real pumps): it sends birth, state, telemetry, alarm, status and command results, and
receives commands. Everything in it comes from :mod:`twin.contract`: channels and their QoS and
retain flags from :data:`~twin.contract.codec.CHANNELS`, payload schemas from the pydantic
models, examples from :mod:`twin.contract.examples`, the alarm table from the catalogue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic.json_schema import models_json_schema

from twin import __version__
from twin.contract import examples
from twin.contract.alarms import ALARM_CATALOGUE
from twin.contract.codec import CHANNELS
from twin.contract.messages import (
    CONTRACT_VERSION,
    MAX_PAYLOAD_BYTES,
    WireModel,
)
from twin.contract.topics import ID_MAX_LENGTH, SITE_CHANNELS, TOPIC_ROOT, Channel

DOCUMENT_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
MQTT_BINDING_VERSION: Final = "0.2.0"

_MESSAGE_NAMES: Final[dict[Channel, str]] = {
    Channel.BIRTH: "birth",
    Channel.STATE: "state",
    Channel.TELEMETRY: "telemetry",
    Channel.ALARM: "alarm",
    Channel.STATUS: "status",
    Channel.CMD: "command",
    Channel.CMD_RESULT: "commandResult",
    Channel.CLOCK: "clock",
}
_CHANNEL_KEYS: Final[dict[Channel, str]] = {
    Channel.BIRTH: "birth",
    Channel.STATE: "state",
    Channel.TELEMETRY: "telemetry",
    Channel.ALARM: "alarm",
    Channel.STATUS: "status",
    Channel.CMD: "command",
    Channel.CMD_RESULT: "commandResult",
    Channel.CLOCK: "clock",
}
_EXAMPLES_OF: Final[dict[Channel, tuple[str, ...]]] = {
    Channel.BIRTH: ("birth",),
    Channel.STATE: ("state",),
    Channel.TELEMETRY: ("telemetry",),
    Channel.ALARM: ("alarm",),
    Channel.STATUS: ("status_online", "status_will"),
    Channel.CMD: ("command",),
    Channel.CMD_RESULT: ("command_result",),
    Channel.CLOCK: ("clock",),
}

_DESCRIPTION: Final = f"""\
The MQTT contract between intrathecal pumps (simulated, or real ones behind a gateway) and the
PumpTwin twin service. A gateway that implements this document is mirrored exactly like a
simulated pump, except that the twin never sends it a fault or a simulation-only command.

**Topics.** `{TOPIC_ROOT}/{{site}}/{{device_id}}/{{channel}}`. Site and device ids are 1–{ID_MAX_LENGTH}
characters of `A–Z a–z 0–9 _ . -`, starting with a letter or digit (no `+`, `#`, `/`, `$`, spaces).

**Payloads.** UTF-8 JSON objects, at most {MAX_PAYLOAD_BYTES} bytes, with `contract_version: "{CONTRACT_VERSION}"`
and a `kind` that names the message. Unknown fields, NaN and infinities are refused. Times are
ISO 8601 with a timezone; units are in field names (mL, mL/day, mg/mL, mg/day, percent, s, minutes).

**Sessions and sequence numbers.** A device opens a session when it connects: it sets its last
will (`status`, `state: offline`, `reason: will`, retained, QoS 1) carrying the new `session`
number (one more than the previous session), then publishes `birth` (`seq` 0), `state` (`seq` 1)
and `status: online`. Every later birth, state, telemetry, alarm and command-result message adds
one to `seq`. The twin orders by `(session, seq)`, drops repeats and counts gaps; on a gap it may
send a `rebirth` command, answered by a new birth (same session, next `seq`) and full state.
Status messages carry the birth's `seq` and are ordered by `session` only, so a late will from an
old session never marks a newer session offline.

**Simulation clock.** A simulator also publishes, per site, `{TOPIC_ROOT}/{{site}}/clock` (retained,
QoS 1): the simulation's time and speed (0 when paused). The twin runs the time thresholds of simulated
pumps (silence, forecasts) on it. Real sites have no clock topic.

**Commands.** QoS 1 on `cmd`; each has a `command_id`. The device answers every command on
`cmd/result` with `applied` or `rejected`; a repeated `command_id` is answered with the stored
result and `replay: true` and is not applied again. A command past its `expires_at` is rejected.
Devices whose birth says `simulated: false` must reject `inject_fault` and `clear_fault`.

**Alarms.** Alarm events are QoS 1 and queued by the device across a disconnect, so none is
lost. `alarm_id` ties a `cleared` event to its `raised` event. Device alarm catalogue:

| code | device class | priority | trigger |
|---|---|---|---|
""" + "\n".join(
    f"| `{s.code.value}` | {s.device_class.value} | {s.priority.value} | {s.trigger} |"
    for s in ALARM_CATALOGUE.values()
)


def _fix_schema(node: Any) -> Any:
    """Make pydantic's JSON Schema fit the AsyncAPI Schema Object (a JSON Schema draft-07 superset).

    pydantic writes OpenAPI-style ``discriminator`` objects; AsyncAPI wants a property name
    string there. Each variant already pins the discriminating property with ``const``, so plain
    ``oneOf`` validation stays exact.
    """
    if isinstance(node, dict):
        fixed = {k: _fix_schema(v) for k, v in node.items()}
        disc = fixed.get("discriminator")
        if isinstance(disc, dict):
            fixed["discriminator"] = disc["propertyName"]
        return fixed
    if isinstance(node, list):
        return [_fix_schema(v) for v in node]
    return node


def _schemas() -> dict[str, Any]:
    models: list[type[WireModel]] = [spec.model for spec in CHANNELS.values()]
    top, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    del top
    return {name: _fix_schema(schema) for name, schema in sorted(defs["$defs"].items())}


def _mqtt_op_binding(qos: int, retain: bool) -> dict[str, Any]:
    return {"mqtt": {"qos": qos, "retain": retain, "bindingVersion": MQTT_BINDING_VERSION}}


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as plain data."""
    example_data = {name: ex.model_dump(mode="json") for name, ex in examples.all_examples().items()}
    parameters = {
        "site": {
            "description": "Site (clinic, hospital) id; the unit of scale-out.",
            "examples": [examples.EXAMPLE_SITE],
        },
        "device_id": {"description": "Device id, unique within the fleet.", "examples": [examples.EXAMPLE_DEVICE]},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel, spec in CHANNELS.items():
        key, msg_name = _CHANNEL_KEYS[channel], _MESSAGE_NAMES[channel]
        messages[msg_name] = {
            "name": msg_name,
            "title": spec.model.__name__,
            "summary": spec.summary,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{spec.model.__name__}"},
            "bindings": {"mqtt": {"bindingVersion": MQTT_BINDING_VERSION}},
            "examples": [{"name": n, "payload": example_data[n]} for n in _EXAMPLES_OF[channel]],
        }
        site_level = channel in SITE_CHANNELS
        channels[key] = {
            "address": (
                f"{TOPIC_ROOT}/{{site}}/{channel.value}"
                if site_level
                else f"{TOPIC_ROOT}/{{site}}/{{device_id}}/{channel.value}"
            ),
            "title": channel.value,
            "description": (
                f"{spec.summary} QoS {spec.qos}, {'retained' if spec.retain else 'not retained'}; "
                f"published by the {spec.publisher}."
            ),
            "parameters": {"site": parameters["site"]} if site_level else parameters,
            "messages": {msg_name: {"$ref": f"#/components/messages/{msg_name}"}},
        }
        device_sends = spec.publisher in ("device", "simulator")
        op_name = ("send" if device_sends else "receive") + key[0].upper() + key[1:]
        operations[op_name] = {
            "action": "send" if device_sends else "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": spec.summary,
            "messages": [{"$ref": f"#/channels/{key}/messages/{msg_name}"}],
            "bindings": _mqtt_op_binding(spec.qos, spec.retain),
        }
    will = example_data["status_will"]
    return {
        "asyncapi": "3.0.0",
        "id": "urn:pumptwin:contract:v1",
        "info": {
            "title": "PumpTwin device contract",
            "version": CONTRACT_VERSION,
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0"},
            "tags": [{"name": "intrathecal-pump"}, {"name": "digital-twin"}],
            "x-generator": f"twin.contract.asyncapi (pumptwin {__version__})",
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "localhost:1883",
                "protocol": "mqtt",
                "protocolVersion": "3.1.1",
                "description": (
                    "Any MQTT 3.1.1/5 broker (Mosquitto, EMQX, HiveMQ, VerneMQ). Production brokers use "
                    "TLS on 8883 and per-device credentials (see broker/)."
                ),
                "bindings": {
                    "mqtt": {
                        "cleanSession": False,
                        "keepAlive": 30,
                        "lastWill": {
                            "topic": f"{TOPIC_ROOT}/{examples.EXAMPLE_SITE}/{examples.EXAMPLE_DEVICE}/status",
                            "qos": 1,
                            "retain": True,
                            "message": json.dumps(will, separators=(",", ":")),
                        },
                        "bindingVersion": MQTT_BINDING_VERSION,
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _schemas()},
    }


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so the description reads as Markdown."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def render() -> str:
    """The document as YAML text, deterministic."""
    header = "# Generated by `pumptwin contract asyncapi` from twin/contract. Do not edit by hand.\n"
    body = yaml.dump(build_document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return header + body


def write(path: Path = DOCUMENT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path
