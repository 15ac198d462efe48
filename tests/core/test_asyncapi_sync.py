"""docs/asyncapi.yaml must be exactly what the models generate."""

import yaml

from twin.contract import asyncapi
from twin.contract.codec import CHANNELS


def test_committed_document_matches_the_models() -> None:
    committed = asyncapi.DOCUMENT_PATH.read_text(encoding="utf-8")
    assert committed == asyncapi.render(), "docs/asyncapi.yaml is stale: run `make asyncapi` and commit it"


def test_generation_is_deterministic() -> None:
    assert asyncapi.render() == asyncapi.render()


def test_document_carries_qos_retain_and_a_schema_per_channel() -> None:
    doc = yaml.safe_load(asyncapi.render())
    assert doc["asyncapi"] == "3.0.0"
    ops = doc["operations"]
    assert len(ops) == len(CHANNELS)
    by_channel = {op["channel"]["$ref"].rsplit("/", 1)[1]: op for op in ops.values()}
    assert by_channel["alarm"]["bindings"]["mqtt"] == {"qos": 1, "retain": False, "bindingVersion": "0.2.0"}
    assert by_channel["state"]["bindings"]["mqtt"]["retain"] is True
    assert by_channel["command"]["action"] == "receive"
    schemas = doc["components"]["schemas"]
    for spec in CHANNELS.values():
        assert spec.model.__name__ in schemas
    assert all(m["examples"] for m in doc["components"]["messages"].values())
    assert doc["servers"]["broker"]["bindings"]["mqtt"]["lastWill"]["retain"] is True
