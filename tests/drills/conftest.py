"""The ``rig`` fixture: a fresh broker (``broker/mosquitto.conf`` with accounts made by the
product's own tool), influxd, twin process and fleet publisher for each drill, all torn down after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.drills.ledger import Ledger
from tests.drills.rig import DATABASE, FLEET_ACCOUNT, SITE, TWIN_ACCOUNT, FleetPublisher, Rig
from tests.drills.twin_process import TwinProcess
from tests.harness.servers import Influxd, Mosquitto
from twin.broker_accounts import BrokerAccounts

BROKER_DIR = Path(__file__).resolve().parents[2] / "broker"

MakeRig = Callable[..., Rig]


def shipped_broker(workdir: Path) -> tuple[Mosquitto, dict[str, str]]:
    """The production broker configuration, unchanged but for ports and paths, with the twin's and
    the simulator's accounts (and the drill's simulation site) made by ``pumptwin broker``'s code."""
    auth = workdir / "auth"
    accounts = BrokerAccounts(password_file=auth / "passwd", acl_file=auth / "acl")
    accounts.add_simulation_sites([SITE])
    passwords = {}
    for account in (TWIN_ACCOUNT, FLEET_ACCOUNT):
        issued = accounts.issue_service(account)
        assert issued.password is not None
        passwords[account] = issued.password
    broker = Mosquitto(
        workdir=workdir,
        config_file=BROKER_DIR / "mosquitto.conf",
        path_map={"/mosquitto/auth/": auth, "/mosquitto/data/": workdir / "data", "/mosquitto/config/": BROKER_DIR},
    )
    return broker, passwords


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeRig]:
    """``rig(devices=…)`` starts the drill's processes; the twin is started by the test
    (``rig.twin.start()``), so a drill can begin with the twin down."""
    made: list[Rig] = []

    def make(devices: int = 40, *, state_every: int = 10, alarm_every: int = 7) -> Rig:
        broker, passwords = shipped_broker(tmp_path / "broker")
        broker.start()
        influxd = Influxd(workdir=tmp_path / "influxd")
        influxd.workdir.mkdir()
        influxd.start()
        twin = TwinProcess(
            tmp_path / "twin",
            broker.url,
            env={
                "PUMPTWIN_MQTT__USERNAME": TWIN_ACCOUNT,
                "PUMPTWIN_MQTT__PASSWORD": passwords[TWIN_ACCOUNT],
                "PUMPTWIN_INFLUX__URL": influxd.url,
                "PUMPTWIN_INFLUX__DATABASE": DATABASE,
                "PUMPTWIN_INFLUX__FLUSH_INTERVAL_S": "0.2",
                "PUMPTWIN_INFLUX__RETRY_INITIAL_S": "0.1",
                "PUMPTWIN_INFLUX__RETRY_MAX_S": "1.0",
                "PUMPTWIN_INFLUX__DRAIN_ON_CLOSE_S": "1.0",
            },
        )
        ledger = Ledger(SITE)
        fleet = FleetPublisher(
            broker, passwords[FLEET_ACCOUNT], ledger, devices, state_every=state_every, alarm_every=alarm_every
        )
        fleet.wait_connected()
        made.append(Rig(request.node.name, broker, influxd, twin, fleet, ledger, tmp_path))
        return made[-1]

    yield make
    for r in made:
        r.fleet.close()
        r.twin.kill()
        r.broker.stop(kill=True)
        r.influxd.stop(kill=True)
