import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.contract import examples
from twin.contract.codec import CHANNELS, ContractError, decode_clock, decode_command, decode_device_message, encode
from twin.contract.messages import MAX_PAYLOAD_BYTES, Command, InfusionMode, Program
from twin.contract.topics import Channel, TopicAddress, TopicError, build_topic, parse_topic, site_topic

ADDRESS = {ch: TopicAddress("st-olaf-clinic", examples.EXAMPLE_DEVICE, ch) for ch in Channel}
EXAMPLE_CHANNEL = {
    "birth": Channel.BIRTH,
    "state": Channel.STATE,
    "telemetry": Channel.TELEMETRY,
    "alarm": Channel.ALARM,
    "status_online": Channel.STATUS,
    "status_will": Channel.STATUS,
    "command_result": Channel.CMD_RESULT,
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_CHANNEL))
def test_every_device_message_round_trips(name: str) -> None:
    message = examples.all_examples()[name]
    decoded = decode_device_message(ADDRESS[EXAMPLE_CHANNEL[name]], encode(message))
    assert decoded == message
    assert type(decoded) is CHANNELS[EXAMPLE_CHANNEL[name]].model


def test_command_round_trips() -> None:
    command = examples.command()
    assert decode_command(ADDRESS[Channel.CMD], encode(command)) == command


def _payload(name: str, **changes: object) -> bytes:
    raw = json.loads(encode(examples.all_examples()[name]))
    raw.update(changes)
    return json.dumps(raw).encode()  # writes NaN / Infinity tokens for non-finite floats


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"state"', "not_object"),
        (_payload("state", contract_version="9.0"), "unknown_contract_version"),
        (_payload("state", contract_version=None), "unknown_contract_version"),
        (_payload("state", kind="telemetry"), "kind_mismatch"),
        (_payload("state", reservoir_ml=-1.0), "schema"),
        (_payload("state", reservoir_ml="lots"), "schema"),
        (_payload("state", surprise=True), "schema"),
        (_payload("state", device_time="2026-01-01T00:00:00"), "schema"),  # no timezone
        (_payload("state", device_id="pump-9999"), "device_id_mismatch"),
        (_payload("state", device_id="pump/#"), "schema"),
        (_payload("state", seq=-1), "schema"),
        (_payload("state", bogus="x" * MAX_PAYLOAD_BYTES), "too_large"),
        (_payload("state", reservoir_ml=float("nan")), "schema"),
        (_payload("state", battery_percent=float("inf")), "schema"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_device_message(ADDRESS[Channel.STATE], payload)
    assert caught.value.reason == reason
    assert str(caught.value)


def test_schema_error_names_the_field() -> None:
    with pytest.raises(ContractError, match="reservoir_ml"):
        decode_device_message(ADDRESS[Channel.STATE], _payload("state", reservoir_ml=-1.0))


def test_cmd_channel_never_decodes_as_a_device_message() -> None:
    with pytest.raises(ContractError) as caught:
        decode_device_message(ADDRESS[Channel.CMD], encode(examples.command()))
    assert caught.value.reason == "kind_mismatch"


def test_command_for_another_device_is_refused() -> None:
    other = TopicAddress("st-olaf-clinic", "pump-0002", Channel.CMD)
    with pytest.raises(ContractError) as caught:
        decode_command(other, encode(examples.command()))
    assert caught.value.reason == "device_id_mismatch"


def test_unknown_fault_is_a_schema_error() -> None:
    raw = json.loads(encode(examples.command()))
    raw["action"] = {"type": "inject_fault", "fault": {"fault": "alien_abduction"}}
    with pytest.raises(ContractError, match="schema"):
        decode_command(ADDRESS[Channel.CMD], json.dumps(raw))


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_anything_but_contract_error(payload: bytes) -> None:
    # random bytes are (almost) never a valid telemetry message; whatever they are, the only
    # exception allowed out is ContractError with one of the documented reasons
    with pytest.raises(ContractError) as caught:
        decode_device_message(ADDRESS[Channel.TELEMETRY], payload)
    assert caught.value.reason in {"not_json", "not_object", "unknown_contract_version", "kind_mismatch", "schema"}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"mode": InfusionMode.CONTINUOUS}, "needs rate_ml_per_day"),
        ({"mode": InfusionMode.FLEXIBLE}, "at least one step"),
        (
            {
                "mode": InfusionMode.FLEXIBLE,
                "steps": [{"start_minute": 60, "rate_ml_per_day": 0.2}, {"start_minute": 0, "rate_ml_per_day": 0.3}],
            },
            "increasing",
        ),
        ({"mode": InfusionMode.STOPPED, "rate_ml_per_day": 0.2}, "only allowed in continuous"),
        ({"mode": InfusionMode.CONTINUOUS, "rate_ml_per_day": 0.01}, "greater than or equal to 0.048"),
    ],
)
def test_program_validation(fields: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Program.model_validate(fields)


def test_delivery_rules_per_channel() -> None:
    retained = {ch for ch, spec in CHANNELS.items() if spec.retain}
    assert retained == {Channel.BIRTH, Channel.STATE, Channel.STATUS, Channel.CLOCK}
    assert CHANNELS[Channel.ALARM].qos == 1
    assert CHANNELS[Channel.CMD].qos == 1
    assert CHANNELS[Channel.CMD].publisher == "twin"


def test_timestamps_are_written_in_utc_with_z() -> None:
    command = Command.model_validate(
        {**json.loads(encode(examples.command())), "issued_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat()}
    )
    assert b'"issued_at":"2026-01-01T00:00:00Z"' in encode(command)


def test_deeply_nested_json_is_refused_with_a_reason_not_an_exception() -> None:
    address = parse_topic("pumptwin/v1/site-a/pump-1/state")
    for payload in (b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"[" * 60_000 + b"]" * 60_000):
        with pytest.raises(ContractError) as caught:
            decode_device_message(address, payload[:MAX_PAYLOAD_BYTES])
        assert caught.value.reason in ("too_deep", "not_json", "not_object")


@pytest.mark.parametrize("year", [1, 1989, 2200, 9999])
def test_a_device_time_outside_the_window_is_refused(year: int) -> None:
    body = json.loads(encode(examples.telemetry()))
    body["device_time"] = f"{year:04d}-12-31T23:59:59Z"
    with pytest.raises(ContractError) as caught:
        decode_device_message(parse_topic("pumptwin/v1/st-olaf-clinic/pump-0001/telemetry"), json.dumps(body))
    assert caught.value.reason == "schema"
    bound = "greater than or equal to 1990-01-01" if year < 1990 else "less than 2200-01-01"
    assert f"device_time: Input should be {bound}" in str(caught.value)


def test_the_site_clock_has_its_own_topic_and_model() -> None:
    topic = site_topic("st-olaf-clinic")
    assert topic == "pumptwin/v1/st-olaf-clinic/clock"
    address = parse_topic(topic)
    assert (address.site, address.device_id, address.channel) == ("st-olaf-clinic", "", Channel.CLOCK)
    clock = decode_clock(address, encode(examples.clock()))
    assert clock.speed == 600.0
    with pytest.raises(ContractError) as caught:
        decode_clock(parse_topic("pumptwin/v1/other-site/clock"), encode(examples.clock()))
    assert caught.value.reason == "site_mismatch"
    with pytest.raises(ContractError):
        decode_device_message(address, encode(examples.clock()))
    with pytest.raises(TopicError):
        build_topic("st-olaf-clinic", "pump-1", Channel.CLOCK)
