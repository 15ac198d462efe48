"""The broker access policy and its ACL file, without a broker: rules, rendering, strict read-back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.broker_accounts import (
    DEVICE_CHANNELS,
    SERVICE_ACCOUNTS,
    TWIN_ACCOUNT,
    AccessPolicy,
    AccountError,
    DeviceAccount,
    check_password,
    parse_acl,
    render_acl,
    verify_password,
)
from twin.contract.topics import Channel

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z").filter(lambda s: s not in SERVICE_ACCOUNTS)

# made by mosquitto_passwd 2.0.11 for the password "s3"
MOSQUITTO_HASH = (
    "$7$101$4ieRuzsLcKWf/ID5$fzh9fk2q+fbFt2U486dl0BvbgNHARc/5E501+J2cW5UAW38LCHOaBkB8AnyevNGfkvrK9LlwY5oy0vvWbZp9MQ=="
)


@st.composite
def policies(draw: st.DrawFn) -> AccessPolicy:
    policy = AccessPolicy()
    for site in draw(st.lists(ids, max_size=3, unique=True)):
        policy = policy.with_simulation_site(site)
    sites = draw(st.lists(ids, min_size=1, max_size=4, unique=True)) + sorted(policy.simulation_sites)
    for device_id in draw(st.lists(ids, max_size=8, unique=True)):
        site = draw(st.sampled_from(sites))
        policy = policy.with_device(site, device_id, simulated=site in policy.simulation_sites)
    return policy


def _rights(text: str) -> dict[str, list[tuple[str, str]]]:
    """user -> [(access, topic)], as Mosquitto reads the file (comments and blank lines skipped)."""
    rights: dict[str, list[tuple[str, str]]] = {}
    user = None
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        assert words[0] in ("user", "topic"), line  # no `pattern` lines: they would apply to every account
        if words[0] == "user":
            user = words[1]
            rights[user] = []
        else:
            assert user is not None, "a topic line before any user applies to anonymous clients"
            rights[user].append((words[1], words[2]))
    return rights


@given(policies())
def test_acl_round_trips(policy: AccessPolicy) -> None:
    text = render_acl(policy)
    assert parse_acl(text) == policy
    assert render_acl(parse_acl(text)) == text


@given(policies())
def test_twin_writes_only_commands_of_simulation_sites(policy: AccessPolicy) -> None:
    twin = _rights(render_acl(policy))[TWIN_ACCOUNT]
    assert ("read", "pumptwin/v1/#") in twin
    writes = [topic for access, topic in twin if access != "read"]
    assert writes == [f"pumptwin/v1/{site}/+/cmd" for site in sorted(policy.simulation_sites)]
    for device in policy.devices:
        if not policy.is_simulated(device):
            assert device.site not in {topic.split("/")[2] for topic in writes}


@given(policies())
def test_a_device_may_write_its_own_topics_and_read_its_own_commands_only(policy: AccessPolicy) -> None:
    rights = _rights(render_acl(policy))
    for device in policy.devices:
        own = f"pumptwin/v1/{device.site}/{device.device_id}"
        assert rights[device.device_id] == [
            *(("write", f"{own}/{channel.value}") for channel in DEVICE_CHANNELS),
            ("read", f"{own}/cmd"),
        ]


def test_devices_publish_every_channel_but_cmd() -> None:
    assert set(DEVICE_CHANNELS) == set(Channel) - {Channel.CMD, Channel.CLOCK}  # the clock is the simulator's


def test_simulator_rights_are_confined_to_simulation_sites() -> None:
    policy = AccessPolicy().with_simulation_site("sim-a").with_device("clinic", "pump-1", simulated=False)
    simulator = _rights(render_acl(policy))["simulator"]
    assert {topic.split("/")[2] for _, topic in simulator} == {"sim-a"}
    assert ("read", "pumptwin/v1/sim-a/+/cmd") in simulator
    assert ("write", "pumptwin/v1/sim-a/+/cmd") not in simulator


def test_without_simulation_sites_the_twin_commands_nothing_and_the_simulator_has_no_rights() -> None:
    rights = _rights(render_acl(AccessPolicy()))
    assert rights == {TWIN_ACCOUNT: [("read", "pumptwin/v1/#")], "simulator": []}


@pytest.mark.parametrize(
    ("site", "device_id", "simulated", "reason"),
    [
        ("sim-a", "pump-9", False, "real_device_in_simulation_site"),
        ("clinic", "sim-9", True, "simulated_device_in_real_site"),
        ("clinic-b", "pump-1", False, "device_elsewhere"),  # one username, one device, one site
        ("clinic", TWIN_ACCOUNT, False, "reserved_username"),
        ("clinic", "simulator", False, "reserved_username"),
        ("clinic", "pump\n", False, "invalid_id"),  # would split an ACL line in two
        ("clinic", "pump+", False, "invalid_id"),
        ("clinic", "#", False, "invalid_id"),
        ("clinic", "a/b", False, "invalid_id"),
        ("clinic\ntopic", "pump-2", False, "invalid_id"),
        ("", "pump-2", False, "empty_id"),
    ],
)
def test_refused_devices(site: str, device_id: str, simulated: bool, reason: str) -> None:
    policy = AccessPolicy().with_simulation_site("sim-a").with_device("clinic", "pump-1", simulated=False)
    with pytest.raises(AccountError) as refused:
        policy.with_device(site, device_id, simulated=simulated)
    assert refused.value.reason == reason


def test_a_site_with_real_devices_cannot_become_a_simulation_site() -> None:
    policy = AccessPolicy().with_device("clinic", "pump-1", simulated=False)
    with pytest.raises(AccountError) as refused:
        policy.with_simulation_site("clinic")
    assert refused.value.reason == "site_has_real_devices"


def test_issuing_twice_changes_nothing() -> None:
    policy = AccessPolicy().with_simulation_site("sim-a").with_device("sim-a", "sim-1", simulated=True)
    assert policy.with_device("sim-a", "sim-1", simulated=True) is policy
    assert policy.with_simulation_site("sim-a") is policy
    assert policy.devices == (DeviceAccount("sim-1", "sim-a"),)


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text + "topic write pumptwin/v1/#\n",  # an extra right for the last device
        lambda text: text + "\nuser intruder\ntopic readwrite #\n",
        lambda text: text.replace("topic read pumptwin/v1/clinic/pump-1/cmd", "topic read pumptwin/v1/+/+/cmd"),
        lambda text: text.replace("topic write pumptwin/v1/clinic/pump-1/state\n", ""),  # a missing line
        lambda text: text.replace("user twin", "user twin\ntopic write pumptwin/v1/clinic/+/cmd"),
        lambda text: "pattern write pumptwin/v1/%u/#\n" + text,
        lambda text: "topic read #\n" + text,  # a right for anonymous clients
        lambda text: text.replace("\n", "\r\n"),
    ],
)
def test_a_hand_edited_acl_is_refused(edit: object) -> None:
    text = render_acl(AccessPolicy().with_simulation_site("sim-a").with_device("clinic", "pump-1", simulated=False))
    with pytest.raises(AccountError) as refused:
        parse_acl(edit(text))  # type: ignore[operator]
    assert refused.value.reason == "acl_edited"


def test_verify_password_against_a_mosquitto_passwd_hash() -> None:
    assert verify_password("s3", MOSQUITTO_HASH)
    assert not verify_password("s4", MOSQUITTO_HASH)
    assert not verify_password("s3", "$7$101$not base64$x")
    assert not verify_password("s3", "plaintext")


@pytest.mark.parametrize("password", ["short", "x" * 257, "sixteen-chars-ok\n", "tab\tinside-a-password"])
def test_operator_passwords_must_be_long_and_single_line(password: str) -> None:
    with pytest.raises(AccountError):
        check_password(password, what="the twin password")
    assert check_password("sixteen-chars-ok", what="the twin password") == "sixteen-chars-ok"
