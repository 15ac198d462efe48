import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.contract.topics import (
    ID_MAX_LENGTH,
    SITE_CHANNELS,
    Channel,
    TopicAddress,
    TopicError,
    build_topic,
    parse_topic,
    site_topic,
    subscription,
)

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")


@given(site=ids, device=ids, channel=st.sampled_from([c for c in Channel if c not in SITE_CHANNELS]))
def test_build_and_parse_round_trip(site: str, device: str, channel: Channel) -> None:
    topic = build_topic(site, device, channel)
    assert topic == f"pumptwin/v1/{site}/{device}/{channel.value}"
    assert parse_topic(topic) == TopicAddress(site, device, channel)


@given(site=ids)
def test_site_topics_round_trip_and_never_collide_with_a_device_named_clock(site: str) -> None:
    assert parse_topic(site_topic(site)) == TopicAddress(site, "", Channel.CLOCK)
    assert parse_topic(build_topic(site, "clock", Channel.STATE)) == TopicAddress(site, "clock", Channel.STATE)


@pytest.mark.parametrize(
    ("device_id", "reason"),
    [
        ("pump+1", "invalid_id"),
        ("pump#", "invalid_id"),
        ("a/b", "invalid_id"),
        ("", "empty_id"),
        ("x" * (ID_MAX_LENGTH + 1), "id_too_long"),
        ("$SYS", "invalid_id"),
        ("pump 1", "invalid_id"),
        ("pump\x00", "invalid_id"),
        ("pump\n", "invalid_id"),  # `$` alone would let a trailing newline through
        ("pump\r", "invalid_id"),
        ("pümp", "invalid_id"),
        ("-leading-dash", "invalid_id"),
        ("../etc", "invalid_id"),
    ],
)
def test_hostile_device_ids_are_refused_with_a_clear_error(device_id: str, reason: str) -> None:
    with pytest.raises(TopicError) as caught:
        build_topic("site-a", device_id, Channel.STATE)
    assert caught.value.reason == reason
    assert "device id" in str(caught.value)


def test_error_names_the_offending_characters() -> None:
    with pytest.raises(TopicError, match=r"'\+'"):
        build_topic("site-a", "pump+1", Channel.STATE)


def test_hostile_site_is_refused() -> None:
    with pytest.raises(TopicError, match="site"):
        build_topic("site/#", "pump-1", Channel.STATE)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("other/v1/s/d/state", "foreign_topic"),
        ("pumptwin/v2/s/d/state", "foreign_topic"),
        ("pumptwin/v1/s/d", "short_topic"),
        ("pumptwin/v1/s/d/unknown", "unknown_channel"),
        ("pumptwin/v1/s/d/cmd/other", "unknown_channel"),
        ("pumptwin/v1/s/+/state", "invalid_id"),
        ("pumptwin/v1//d/state", "empty_id"),
    ],
)
def test_parse_refuses_topics_that_are_not_ours(topic: str, reason: str) -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic(topic)
    assert caught.value.reason == reason


def test_command_result_channel_has_two_levels() -> None:
    assert parse_topic("pumptwin/v1/s/d/cmd/result").channel is Channel.CMD_RESULT
    assert parse_topic("pumptwin/v1/s/d/cmd").channel is Channel.CMD


def test_subscription_filters() -> None:
    assert subscription() == "pumptwin/v1/+/+/#"
    assert subscription(Channel.ALARM, site="north") == "pumptwin/v1/north/+/alarm"
    assert subscription(Channel.CMD, site="north", device_id="p1") == "pumptwin/v1/north/p1/cmd"
    with pytest.raises(TopicError):
        subscription(site="#")
