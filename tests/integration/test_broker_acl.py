"""The production broker configuration (broker/mosquitto.conf) on a real Mosquitto, with accounts made by
``twin.broker_accounts`` in the test's temp dir.

"Not delivered" is never a timeout: the forbidden message is published first and an allowed sentinel after it
on the same connection, and the test waits for the sentinel. Mosquitto routes one connection's messages in
order, so a forbidden message that had been delivered would have arrived before the sentinel. A publish the
ACL denies is dropped before routing, so a subscriber with read rights on everything (the twin) is the
strictest witness that nobody got it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from tests.harness.mqtt import Collector, Received, collecting, hostname_port
from tests.harness.servers import Mosquitto, adapt_mosquitto_config, free_port
from twin.broker_accounts import DEVICE_CHANNELS, SIMULATOR_ACCOUNT, TWIN_ACCOUNT, BrokerAccounts
from twin.contract.messages import MAX_PAYLOAD_BYTES
from twin.contract.topics import ID_MAX_LENGTH, Channel, build_topic, subscription

pytestmark = pytest.mark.integration

BROKER_DIR = Path(__file__).resolve().parents[2] / "broker"
REAL_SITE = "clinic-a"
SIM_SITE = "sim-lab"
LONG_SITE = "s" * ID_MAX_LENGTH
LONG_DEVICE = "d" * ID_MAX_LENGTH
MAX_PACKET_SIZE = 66560  # broker/mosquitto.conf; test_max_packet_size_is_the_one_configured keeps them equal
DEVICES = {  # device id -> (site, simulated)
    "pump-a1": (REAL_SITE, False),
    "pump-a2": (REAL_SITE, False),
    "sim-1": (SIM_SITE, True),
    "sim-2": (SIM_SITE, True),
    LONG_DEVICE: (LONG_SITE, False),
}
REFUSED = {134, 135}  # CONNACK "bad user name or password", "not authorized" (paho maps 3.1.1's 4 and 5 to these)


@dataclass
class SecuredBroker:
    server: Mosquitto
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, username: str, *, port: int | None = None, **kwargs: object) -> aiomqtt.Client:
        host, default_port = hostname_port(self.url)
        return aiomqtt.Client(
            host,
            port or default_port,
            username=username,
            password=self.passwords[username],
            **kwargs,  # type: ignore[arg-type]  # identifier, will, tls_params: passed through as given
        )

    def watching(
        self, *filters: str, username: str = TWIN_ACCOUNT
    ) -> contextlib.AbstractAsyncContextManager[Collector]:
        return collecting(self.url, *filters, username=username, password=self.passwords[username])


def _issue_accounts(auth: Path) -> dict[str, str]:
    accounts = BrokerAccounts(password_file=auth / "passwd", acl_file=auth / "acl")
    accounts.add_simulation_sites([SIM_SITE])
    passwords = {}
    for device_id, (site, simulated) in DEVICES.items():
        issued = accounts.issue_device(site, device_id, simulated=simulated)
        assert issued.password is not None
        passwords[device_id] = issued.password
    for service in (TWIN_ACCOUNT, SIMULATOR_ACCOUNT):
        issued = accounts.issue_service(service)
        assert issued.password is not None
        passwords[service] = issued.password
    return passwords


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make test` (it installs the Debian package mosquitto)")
    auth = tmp_path / "auth"
    passwords = _issue_accounts(auth)
    server = Mosquitto(
        workdir=tmp_path,
        config_file=BROKER_DIR / "mosquitto.conf",
        path_map={"/mosquitto/auth/": auth, "/mosquitto/data/": tmp_path / "data", "/mosquitto/config/": BROKER_DIR},
    )
    server.start()
    yield SecuredBroker(server, passwords)
    server.stop()


def _topic(site: str, device: str, channel: Channel) -> str:
    return build_topic(site, device, channel)


def _topics(messages: list[Received]) -> list[str]:
    return [m.topic for m in messages]


def _retrieve_disconnect_error(client: aiomqtt.Client) -> None:
    """Read the error of a connection the broker closed: aiomqtt 2.5's ``__aexit__`` returns early without reading
    it, and asyncio then logs "Future exception was never retrieved" when the future is collected."""
    future = client._disconnected  # aiomqtt has no public accessor for it
    if future.done() and not future.cancelled():
        future.exception()


def _arrived(topic: str, payload: bytes | None = None) -> object:
    return lambda ms: any(m.topic == topic and (payload is None or m.payload == payload) for m in ms)


# -- who may connect -------------------------------------------------------------------------------------------


async def test_anonymous_clients_are_refused(secured: SecuredBroker) -> None:
    host, port = hostname_port(secured.url)
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with aiomqtt.Client(host, port):
            pass
    assert getattr(refused.value.rc, "value", refused.value.rc) in REFUSED


@pytest.mark.parametrize(
    ("username", "password_of"),
    [
        ("pump-a1", None),  # a wrong password
        ("pump-a1", "pump-a2"),  # another device's password
        (TWIN_ACCOUNT, "simulator"),  # a service with the other service's password
        ("nobody", "pump-a1"),  # an unknown user with a valid password
    ],
)
async def test_wrong_credentials_are_refused(secured: SecuredBroker, username: str, password_of: str | None) -> None:
    host, port = hostname_port(secured.url)
    password = secured.passwords[password_of] if password_of else "not-the-password-at-all"
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with aiomqtt.Client(host, port, username=username, password=password):
            pass
    assert getattr(refused.value.rc, "value", refused.value.rc) in REFUSED


# -- devices ---------------------------------------------------------------------------------------------------


async def test_device_publishes_its_own_topics_and_nothing_else(secured: SecuredBroker) -> None:
    own = [_topic(REAL_SITE, "pump-a1", channel) for channel in DEVICE_CHANNELS]
    forbidden = [
        _topic(REAL_SITE, "pump-a2", Channel.STATE),  # another device, same site
        _topic(REAL_SITE, "pump-a2", Channel.ALARM),
        _topic(REAL_SITE, "pump-a2", Channel.CMD_RESULT),
        _topic(SIM_SITE, "pump-a1", Channel.STATE),  # its own id in another site
        _topic(REAL_SITE, "pump-a1", Channel.CMD),  # a command to itself, as if from the twin
        "pumptwin/v1/clinic-a/pump-a1/state/extra",  # below its own topics
        "elsewhere/pump-a1",
    ]
    async with secured.watching("#") as everything:
        async with secured.client("pump-a1") as device:
            for topic in forbidden:
                await device.publish(topic, b"forged", qos=1)
            for topic in own:  # the last of these is the sentinel
                await device.publish(topic, b"own", qos=1)
        await everything.wait_for(_arrived(own[-1]))
    assert _topics(everything.messages) == own


async def test_device_reads_only_its_own_commands(secured: SecuredBroker) -> None:
    own_cmd = _topic(SIM_SITE, "sim-1", Channel.CMD)
    sim2_state = _topic(SIM_SITE, "sim-2", Channel.STATE)
    async with (
        secured.watching(subscription()) as twin_view,
        secured.watching("#", username="sim-1") as sim1_view,
    ):
        # another device's state: wait until the broker has routed it (the twin sees it) before the sentinel
        async with secured.client("sim-2") as sim2:
            await sim2.publish(sim2_state, b"state of sim-2", qos=1)
        await twin_view.wait_for(_arrived(sim2_state))
        async with secured.client(TWIN_ACCOUNT) as twin:
            await twin.publish(_topic(SIM_SITE, "sim-2", Channel.CMD), b"for sim-2", qos=1)
            await twin.publish(own_cmd, b"for sim-1", qos=1)  # the sentinel: sim-1's own command
        await sim1_view.wait_for(_arrived(own_cmd))
    assert {m.topic for m in sim1_view.messages} == {own_cmd}
    assert _arrived(_topic(SIM_SITE, "sim-2", Channel.CMD), b"for sim-2")(twin_view.messages)  # it was sent


# -- the twin --------------------------------------------------------------------------------------------------


async def test_twin_reads_every_device_and_commands_a_simulated_one(secured: SecuredBroker) -> None:
    published = {
        "pump-a1": [_topic(REAL_SITE, "pump-a1", channel) for channel in DEVICE_CHANNELS],
        "sim-1": [_topic(SIM_SITE, "sim-1", channel) for channel in DEVICE_CHANNELS],
        SIMULATOR_ACCOUNT: [_topic(SIM_SITE, "sim-9", channel) for channel in DEVICE_CHANNELS],
    }
    expected = {topic for topics in published.values() for topic in topics}
    async with secured.watching(subscription()) as twin_view:
        for username, topics in published.items():
            async with secured.client(username) as client:
                for topic in topics:
                    await client.publish(topic, username.encode(), qos=1)
        await twin_view.wait_for(lambda ms: expected <= {m.topic for m in ms})

    command = _topic(SIM_SITE, "sim-1", Channel.CMD)
    async with secured.watching(command, username="sim-1") as device_view:
        async with secured.client(TWIN_ACCOUNT) as twin:
            await twin.publish(command, b"refill", qos=1)
        await device_view.wait_for(_arrived(command, b"refill"))


async def test_twin_cannot_command_a_real_device(secured: SecuredBroker) -> None:
    real_cmds = [_topic(REAL_SITE, "pump-a1", Channel.CMD), _topic(LONG_SITE, LONG_DEVICE, Channel.CMD)]
    sentinel = _topic(SIM_SITE, "sim-1", Channel.CMD)
    async with secured.watching(subscription()) as twin_view:
        async with secured.client(TWIN_ACCOUNT) as twin:
            for topic in real_cmds:
                await twin.publish(topic, b"inject_fault", qos=1)
            await twin.publish(_topic(REAL_SITE, "pump-a1", Channel.STATE), b"forged state", qos=1)
            await twin.publish(sentinel, b"sentinel", qos=1)
        await twin_view.wait_for(_arrived(sentinel))
    assert _topics(twin_view.messages) == [sentinel]


# -- the simulator ---------------------------------------------------------------------------------------------


async def test_simulator_publishes_only_in_simulation_sites_and_reads_their_commands(secured: SecuredBroker) -> None:
    sim_state = _topic(SIM_SITE, "sim-42", Channel.STATE)
    sim_cmd = _topic(SIM_SITE, "sim-42", Channel.CMD)
    async with (
        secured.watching(subscription()) as twin_view,
        secured.watching(subscription(), username=SIMULATOR_ACCOUNT) as simulator_view,
    ):
        async with secured.client(SIMULATOR_ACCOUNT) as simulator:
            await simulator.publish(_topic(REAL_SITE, "pump-a1", Channel.STATE), b"forged", qos=1)
            await simulator.publish(_topic(SIM_SITE, "sim-42", Channel.CMD), b"a command to itself", qos=1)
            await simulator.publish(sim_state, b"simulated", qos=1)
        await twin_view.wait_for(_arrived(sim_state))
        assert _topics(twin_view.messages) == [sim_state]
        async with secured.client(TWIN_ACCOUNT) as twin:
            await twin.publish(sim_cmd, b"from the twin", qos=1)
        await simulator_view.wait_for(_arrived(sim_cmd, b"from the twin"))
    # the simulator reads commands only, not the devices' own topics (not even its own state above)
    assert {m.topic for m in simulator_view.messages} == {sim_cmd}


# -- limits ----------------------------------------------------------------------------------------------------


def test_max_packet_size_is_the_one_configured() -> None:
    lines = (BROKER_DIR / "mosquitto.conf").read_text().splitlines()
    assert f"max_packet_size {MAX_PACKET_SIZE}" in lines


async def test_largest_contract_payload_passes_and_an_oversized_packet_disconnects(secured: SecuredBroker) -> None:
    longest = _topic(LONG_SITE, LONG_DEVICE, Channel.CMD_RESULT)
    status = _topic(LONG_SITE, LONG_DEVICE, Channel.STATUS)
    largest = b"x" * MAX_PAYLOAD_BYTES
    oversized = b"y" * MAX_PACKET_SIZE
    will = aiomqtt.Will(status, b"connection lost", qos=1)
    async with secured.watching(subscription()) as twin_view:
        with contextlib.suppress(aiomqtt.MqttError):  # leaving a connection the broker has closed may say so
            async with secured.client(LONG_DEVICE, will=will) as device:
                await device.publish(longest, largest, qos=1)
                await twin_view.wait_for(_arrived(longest))
                await device.publish(longest, oversized, qos=0)
                await twin_view.wait_for(_arrived(status, b"connection lost"))  # the broker dropped it
        _retrieve_disconnect_error(device)
    assert [(m.topic, len(m.payload)) for m in twin_view.messages] == [
        (longest, MAX_PAYLOAD_BYTES),
        (status, len(b"connection lost")),
    ]


# -- TLS listener ----------------------------------------------------------------------------------------------


def _make_certificates(certs: Path) -> None:
    """A CA and a server certificate for localhost / 127.0.0.1, as broker/README.md tells an operator to."""
    certs.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=PumpTwin test CA",
        "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"
    )
    (certs / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
    )  # fmt: skip


@pytest.fixture
def secured_tls(tmp_path: Path) -> Iterator[tuple[SecuredBroker, int]]:
    """The production config with conf.d/tls.conf.example enabled (copied to tls.conf), as the README says."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (Debian package openssl)")
    auth, certs, conf_d = tmp_path / "auth", tmp_path / "certs", tmp_path / "conf.d"
    passwords = _issue_accounts(auth)
    _make_certificates(certs)
    tls_port = free_port()
    conf_d.mkdir()
    path_map = {
        "/mosquitto/auth/": auth,
        "/mosquitto/data/": tmp_path / "data",
        "/mosquitto/config/certs/": certs,
        "/mosquitto/config/conf.d": conf_d,
        "/mosquitto/config/": BROKER_DIR,
    }
    (conf_d / "tls.conf").write_text(
        adapt_mosquitto_config(
            (BROKER_DIR / "conf.d" / "tls.conf.example").read_text(), ports={8883: tls_port}, path_map=path_map
        )
    )
    server = Mosquitto(
        workdir=tmp_path, config_file=BROKER_DIR / "mosquitto.conf", path_map=path_map, listener_ports={8883: tls_port}
    )
    server.start()
    yield SecuredBroker(server, passwords), tls_port
    server.stop()


@contextlib.asynccontextmanager
async def _tls_client(
    broker: SecuredBroker, port: int, username: str, ca: Path, **kwargs: object
) -> AsyncIterator[aiomqtt.Client]:
    async with broker.client(
        username, port=port, tls_params=aiomqtt.TLSParameters(ca_certs=str(ca)), **kwargs
    ) as client:
        yield client


async def test_tls_listener_authenticates_and_ties_client_id_to_username(
    secured_tls: tuple[SecuredBroker, int], tmp_path: Path
) -> None:
    """On 8883 a device cannot use another device's client id to take over its session (use_username_as_clientid).

    The witness is pump-a1's last will: a session taken over loses its connection and the broker publishes the
    will. The same move on the plain listener, where ids are free, is the positive control that it would show.
    """
    broker, tls_port = secured_tls
    ca = tmp_path / "certs" / "ca.crt"
    _, plain_port = hostname_port(broker.url)
    will_topic = _topic(REAL_SITE, "pump-a1", Channel.STATUS)
    sentinel = _topic(REAL_SITE, "pump-a2", Channel.STATE)

    async with broker.watching(subscription()) as twin_view:
        # TLS: pump-a2 claims pump-a1's client id; the broker replaces it with "pump-a2", pump-a1 stays connected
        async with _tls_client(
            broker, tls_port, "pump-a1", ca, identifier="pump-a1", will=aiomqtt.Will(will_topic, b"tls will", qos=1)
        ):
            async with _tls_client(broker, tls_port, "pump-a2", ca, identifier="pump-a1") as intruder:
                await intruder.publish(sentinel, b"tls", qos=1)
                await twin_view.wait_for(_arrived(sentinel, b"tls"))
            assert not _arrived(will_topic)(twin_view.messages)

        # plain listener (positive control): the same client id takes the session over and the will fires
        with contextlib.suppress(aiomqtt.MqttError):  # pump-a1's connection is closed under it
            async with (
                broker.client(
                    "pump-a1", identifier="pump-a1", will=aiomqtt.Will(will_topic, b"plain will", qos=1)
                ) as victim,
                broker.client("pump-a2", port=plain_port, identifier="pump-a1"),
            ):
                await twin_view.wait_for(_arrived(will_topic, b"plain will"))
        _retrieve_disconnect_error(victim)
