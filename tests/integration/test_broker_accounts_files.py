"""``pumptwin broker``: the password file and ACL on disk, with the real ``mosquitto_passwd``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.broker_accounts import AccountError, BrokerAccounts, Owner, verify_password
from twin.cli import app

pytestmark = pytest.mark.integration

TWIN_PASSWORD = "twin-password-from-dotenv"
GATEWAY_PASSWORD = "gateway-password-of-some-length"
SIM_PASSWORD = "simulator-password-from-dotenv"


@pytest.fixture
def accounts(tmp_path: Path) -> BrokerAccounts:
    return BrokerAccounts(password_file=tmp_path / "auth" / "passwd", acl_file=tmp_path / "auth" / "acl")


def _snapshot(accounts: BrokerAccounts) -> tuple[bytes, bytes, int, int]:
    return (
        accounts.password_file.read_bytes(),
        accounts.acl_file.read_bytes(),
        accounts.password_file.stat().st_mtime_ns,
        accounts.acl_file.stat().st_mtime_ns,
    )


def test_issuing_a_device_twice_changes_nothing_and_shows_no_password(accounts: BrokerAccounts) -> None:
    first = accounts.issue_device("clinic", "pump-1", simulated=False)
    assert first.changed
    assert first.password is not None
    assert verify_password(first.password, accounts.password_hashes()["pump-1"])
    before = _snapshot(accounts)
    again = accounts.issue_device("clinic", "pump-1", simulated=False)
    assert (again.changed, again.password) == (False, None)
    assert _snapshot(accounts) == before
    assert oct(accounts.password_file.stat().st_mode & 0o777) == oct(0o600)
    assert oct(accounts.acl_file.stat().st_mode & 0o777) == oct(0o600)


def test_rotating_replaces_the_password(accounts: BrokerAccounts) -> None:
    old = accounts.issue_device("clinic", "pump-1", simulated=False).password
    new = accounts.issue_device("clinic", "pump-1", simulated=False, rotate=True).password
    assert old is not None
    assert new is not None
    assert old != new
    stored = accounts.password_hashes()["pump-1"]
    assert verify_password(new, stored)
    assert not verify_password(old, stored)


def test_a_refused_request_leaves_both_files_alone(accounts: BrokerAccounts) -> None:
    accounts.add_simulation_sites(["sim-a"])
    accounts.issue_device("clinic", "pump-1", simulated=False)
    before = _snapshot(accounts)
    for request in (
        lambda: accounts.issue_device("sim-a", "pump-2", simulated=False),
        lambda: accounts.issue_device("clinic-b", "pump-1", simulated=False),
        lambda: accounts.add_simulation_sites(["clinic"]),
        lambda: accounts.issue_device("clinic", "twin", simulated=False),
    ):
        with pytest.raises(AccountError):
            request()
    assert _snapshot(accounts) == before


def test_service_password_from_the_operator_is_idempotent(accounts: BrokerAccounts) -> None:
    assert accounts.issue_service("twin", password=TWIN_PASSWORD).changed
    before = _snapshot(accounts)
    assert not accounts.issue_service("twin", password=TWIN_PASSWORD).changed
    assert _snapshot(accounts) == before
    changed = accounts.issue_service("twin", password=TWIN_PASSWORD + "-rotated")
    assert (changed.changed, changed.password) == (True, None)  # an operator's password is never echoed
    assert verify_password(TWIN_PASSWORD + "-rotated", accounts.password_hashes()["twin"])


def test_revoking_removes_password_and_rights(accounts: BrokerAccounts) -> None:
    accounts.issue_device("clinic", "pump-1", simulated=False)
    accounts.issue_device("clinic", "pump-2", simulated=False)
    assert accounts.revoke_device("pump-1").changed
    assert set(accounts.password_hashes()) == {"pump-2"}
    assert [d.device_id for d in accounts.policy().devices] == ["pump-2"]
    assert not accounts.revoke_device("pump-1").changed


def test_a_hand_edited_acl_is_not_overwritten(accounts: BrokerAccounts) -> None:
    accounts.issue_device("clinic", "pump-1", simulated=False)
    edited = accounts.acl_file.read_text() + "topic readwrite #\n"
    accounts.acl_file.write_text(edited)
    with pytest.raises(AccountError) as refused:
        accounts.issue_device("clinic", "pump-2", simulated=False)
    assert refused.value.reason == "acl_edited"
    assert accounts.acl_file.read_text() == edited
    assert "pump-2" not in accounts.password_hashes()


def test_legacy_sha512_hashes_are_understood(tmp_path: Path) -> None:
    passwd = tmp_path / "legacy"
    subprocess.run(
        ["mosquitto_passwd", "-H", "sha512", "-c", str(passwd), "old"], input="legacy-password\nlegacy-password\n",
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stored = passwd.read_text().strip().split(":", 1)[1]
    assert stored.startswith("$6$")
    assert verify_password("legacy-password", stored)
    assert not verify_password("legacy-passworD", stored)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_files_keep_their_owner_and_new_files_get_the_broker_user(tmp_path: Path) -> None:
    broker_user = Owner(uid=1883, gid=1883)  # the eclipse-mosquitto image's user
    accounts = BrokerAccounts(password_file=tmp_path / "passwd", acl_file=tmp_path / "acl", owner=broker_user)
    accounts.issue_device("clinic", "pump-1", simulated=False)
    for path in (accounts.password_file, accounts.acl_file):
        assert (path.stat().st_uid, path.stat().st_gid) == (1883, 1883)
    plain = BrokerAccounts(password_file=accounts.password_file, acl_file=accounts.acl_file)  # no --owner given
    plain.issue_device("clinic", "pump-2", simulated=False)
    for path in (accounts.password_file, accounts.acl_file):
        assert (path.stat().st_uid, path.stat().st_gid) == (1883, 1883)


def test_owner_spec_parsing() -> None:
    assert Owner.parse("0") == Owner(0, 0)
    assert Owner.parse("1883:1884") == Owner(1883, 1884)
    assert Owner.parse("root:0") == Owner(0, 0)
    with pytest.raises(AccountError):
        Owner.parse("no-such-user-here")


# -- the command line ------------------------------------------------------------------------------------------


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    files = ["--password-file", str(tmp_path / "passwd"), "--acl-file", str(tmp_path / "acl")]
    result = CliRunner().invoke(app, ["broker", *args, *files], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_cli_issues_a_device_and_prints_its_password_once(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path, "device", "clinic", "pump-1")
    assert code == 0
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert lines["username"] == "pump-1"
    accounts = BrokerAccounts(password_file=tmp_path / "passwd", acl_file=tmp_path / "acl")
    assert verify_password(lines["password"], accounts.password_hashes()["pump-1"])
    code, out, err = _run(tmp_path, "device", "clinic", "pump-1")
    assert (code, out) == (0, "")
    assert "nothing changed" in err


def test_cli_refuses_with_the_reason(tmp_path: Path) -> None:
    assert _run(tmp_path, "simulation-site", "sim-a")[0] == 0
    code, out, err = _run(tmp_path, "device", "sim-a", "pump-1")
    assert (code, out) == (1, "")
    assert "real_device_in_simulation_site" in err


def test_cli_provision_is_the_compose_init(tmp_path: Path) -> None:
    env = {"TWIN_PW": TWIN_PASSWORD, "SIM_PW": SIM_PASSWORD}
    args = ["provision", "--simulation-sites", "sim-a, sim-b", "--twin-password-env", "TWIN_PW"]
    args += ["--simulator-password-env", "SIM_PW"]
    code, out, _ = _run(tmp_path, *args, env=env)
    assert (code, out) == (0, "")  # passwords from the environment are never printed
    accounts = BrokerAccounts(password_file=tmp_path / "passwd", acl_file=tmp_path / "acl")
    assert accounts.policy().simulation_sites == {"sim-a", "sim-b"}
    hashes = accounts.password_hashes()
    assert verify_password(TWIN_PASSWORD, hashes["twin"])
    assert verify_password(SIM_PASSWORD, hashes["simulator"])
    before = _snapshot(accounts)
    assert _run(tmp_path, *args, env=env)[0] == 0
    assert _snapshot(accounts) == before


def test_cli_provision_declares_gateway_sites_and_the_gateway_password(tmp_path: Path) -> None:
    env = {"TWIN_PW": TWIN_PASSWORD, "GATEWAY_PW": GATEWAY_PASSWORD}
    args = ["provision", "--simulation-sites", "sim-a", "--twin-password-env", "TWIN_PW"]
    args += ["--gateway-sites", "clinic-a, clinic-b", "--gateway-password-env", "GATEWAY_PW"]
    code, out, _ = _run(tmp_path, *args, env=env)
    assert (code, out) == (0, "")
    accounts = BrokerAccounts(password_file=tmp_path / "passwd", acl_file=tmp_path / "acl")
    assert accounts.policy().gateway_sites == {"clinic-a", "clinic-b"}
    assert verify_password(GATEWAY_PASSWORD, accounts.password_hashes()["gateway"])
    assert "topic write pumptwin/v1/clinic-a/+/state" in accounts.acl_file.read_text()
    before = _snapshot(accounts)
    assert _run(tmp_path, *args, env=env)[0] == 0
    assert _snapshot(accounts) == before
    # a gateway site is a real site: never a simulation site too
    code, _, err = _run(tmp_path, "provision", "--gateway-sites", "sim-a")
    assert code == 1
    assert "gateway_in_simulation_site" in err


def test_cli_provision_refuses_an_unset_password_variable(tmp_path: Path) -> None:
    code, _, err = _run(tmp_path, "provision", "--twin-password-env", "UNSET_FOR_SURE", env={"UNSET_FOR_SURE": ""})
    assert code == 2
    assert "UNSET_FOR_SURE" in err


def test_cli_show_lists_accounts(tmp_path: Path) -> None:
    _run(tmp_path, "simulation-site", "sim-a")
    _run(tmp_path, "device", "sim-a", "sim-1", "--simulated")
    _run(tmp_path, "device", "clinic", "pump-1")
    code, out, _ = _run(tmp_path, "show")
    assert code == 0
    assert "device sim-1 at sim-a (simulated): password set" in out
    assert "device pump-1 at clinic (real): password set" in out
    assert "service twin: NO PASSWORD" in out
