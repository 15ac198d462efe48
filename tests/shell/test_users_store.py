"""The account store (``twin.store.users``) on a real SQLite file, and ``pumptwin users``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app as cli
from twin.roles import GRANTS, Permission, Role, can, permissions
from twin.store import users as users_module
from twin.store.journal import JournalError
from twin.store.users import (
    SCHEMA_VERSION,
    UserError,
    UserStore,
    check_username,
    hash_password,
    token_digest,
    verify_password,
)

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def a_hash() -> str:
    return hash_password("correct horse")


def test_roles_are_ordered_and_each_includes_those_below() -> None:
    assert [r.value for r in sorted(Role, key=lambda r: r.rank)] == ["viewer", "trainee", "instructor", "admin"]
    assert Role.ADMIN.includes(Role.VIEWER)
    assert not Role.TRAINEE.includes(Role.INSTRUCTOR)
    assert set(GRANTS) == set(Permission)
    assert permissions(Role.VIEWER) == [Permission.READ]
    assert permissions(Role.ADMIN) == list(Permission)
    assert can(Role.INSTRUCTOR, Permission.COMMAND)
    assert not can(Role.INSTRUCTOR, Permission.MANAGE_USERS)


def test_passwords_verify_only_against_their_own_hash(a_hash: str) -> None:
    assert a_hash.startswith("$argon2id$")
    assert verify_password(a_hash, "correct horse")
    assert not verify_password(a_hash, "correct horsE")
    assert not verify_password(None, "correct horse")  # no such user
    assert not verify_password("not a hash", "correct horse")
    assert not verify_password(a_hash, "x" * 5000)
    with pytest.raises(UserError, match="8 to 1024"):
        hash_password("short")


@pytest.mark.parametrize("name", ["Alice", "al ice", "", "-alice", "twin", "device", "a" * 65, "scenario:x"])
def test_usernames_that_could_be_confused_are_refused(name: str) -> None:
    with pytest.raises(UserError) as refused:
        check_username(name)
    assert refused.value.reason == "invalid_username"


def test_accounts_are_created_once_and_changes_are_recorded(tmp_path: Path, a_hash: str) -> None:
    with UserStore(tmp_path / "users.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION
        user = store.add("nurse.jo", Role.TRAINEE, a_hash, actor="admin", at=T0)
        assert (user.username, user.role, user.disabled) == ("nurse.jo", Role.TRAINEE, False)
        with pytest.raises(UserError) as taken:
            store.add("nurse.jo", Role.ADMIN, a_hash, actor="admin", at=T0)
        assert taken.value.reason == "user_exists"
        store.update("nurse.jo", actor="admin", at=T0, role=Role.INSTRUCTOR)
        store.update("nurse.jo", actor="admin", at=T0, disabled=True)
        assert store.password_hash("nurse.jo") is None  # disabled: cannot sign in
        assert store.get("nurse.jo") is not None
        assert not store.any_admin()
        assert [(e.change, e.detail) for e in store.events("nurse.jo")] == [
            ("created", {"role": "trainee"}),
            ("role", {"from": "trainee", "to": "instructor"}),
            ("disabled", {}),
        ]
        with pytest.raises(UserError):
            store.update("ghost", actor="admin", at=T0, role=Role.VIEWER)
    raw = sqlite3.connect(tmp_path / "users.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM account_event")
    raw.close()


def test_sessions_keep_only_a_digest_expire_and_end_with_a_role_change(tmp_path: Path, a_hash: str) -> None:
    with UserStore(tmp_path / "users.sqlite") as store:
        store.add("nurse.jo", Role.TRAINEE, a_hash, actor="admin", at=T0)
        token = store.open_session("nurse.jo", T0, timedelta(hours=1))
        assert len(token) >= 40
        session = store.session(token, T0 + timedelta(minutes=59))
        assert session is not None
        assert session.user.username == "nurse.jo"
        assert session.expires_at == T0 + timedelta(hours=1)
        assert store.session(token, T0 + timedelta(hours=1)) is None
        assert store.session("guessed", T0) is None
        again = store.open_session("nurse.jo", T0 + timedelta(hours=2), timedelta(hours=1))
        store.update("nurse.jo", actor="admin", at=T0, password_hash=hash_password("new password"), rehash=True)
        assert store.session(again, T0 + timedelta(hours=2)) is not None  # a rehash keeps sessions
        store.update("nurse.jo", actor="admin", at=T0, role=Role.VIEWER)
        assert store.session(again, T0 + timedelta(hours=2)) is None
    raw = sqlite3.connect(tmp_path / "users.sqlite")
    stored = [row[0] for row in raw.execute("SELECT token_digest FROM login_session")]
    raw.close()
    assert token not in stored
    assert again not in stored
    assert token_digest(token) not in stored  # the expired one was swept when the next session opened


def test_a_file_from_a_newer_pumptwin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite"
    UserStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(JournalError, match="schema version"):
        UserStore(path)


def test_a_later_migration_applies_to_an_existing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, a_hash: str
) -> None:
    path = tmp_path / "users.sqlite"
    with UserStore(path) as store:
        store.add("nurse.jo", Role.TRAINEE, a_hash, actor="admin", at=T0)
    later = (*users_module.MIGRATIONS, ("CREATE INDEX account_role ON account (role)",))
    monkeypatch.setattr(users_module, "MIGRATIONS", later)
    monkeypatch.setattr(users_module, "SCHEMA_VERSION", len(later))
    with UserStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION + 1
        assert store.get("nurse.jo") is not None


def test_cli_adds_and_lists_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("NEW_PASSWORD", "from-the-env-1")
    added = runner.invoke(
        cli,
        [
            "users",
            "add",
            "head.nurse",
            "--role",
            "admin",
            "--password-env",
            "NEW_PASSWORD",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert added.exit_code == 0, added.output
    piped = runner.invoke(
        cli,
        ["users", "add", "jo", "-r", "trainee", "--password-stdin", "--data-dir", str(tmp_path)],
        input="from-stdin-22\n",
    )
    assert piped.exit_code == 0, piped.output
    prompted = runner.invoke(
        cli,
        ["users", "add", "kim", "-r", "viewer", "--data-dir", str(tmp_path)],
        input="typed-twice-3\ntyped-twice-3\n",
    )
    assert prompted.exit_code == 0, prompted.output
    weak = runner.invoke(
        cli, ["users", "add", "lee", "-r", "viewer", "--password-stdin", "--data-dir", str(tmp_path)], input="short\n"
    )
    assert weak.exit_code == 1
    assert "weak_password" in weak.output
    twice = runner.invoke(
        cli,
        ["users", "add", "jo", "-r", "viewer", "--password-stdin", "--data-dir", str(tmp_path)],
        input="from-stdin-22\n",
    )
    assert twice.exit_code == 1
    listed = runner.invoke(cli, ["users", "list", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0
    assert listed.output.splitlines() == ["head.nurse\tadmin", "jo\ttrainee", "kim\tviewer"]
    with UserStore(tmp_path / "users.sqlite") as store:
        assert verify_password(store.password_hash("jo"), "from-stdin-22")
        assert verify_password(store.password_hash("kim"), "typed-twice-3")
        assert verify_password(store.password_hash("head.nurse"), "from-the-env-1")


async def test_the_demo_accounts_are_one_per_role_and_can_sign_in() -> None:
    from twin.app.demo import DEMO_ACCOUNTS, add_demo_accounts

    with UserStore(None) as store:
        made = await add_demo_accounts(store)
        again = await add_demo_accounts(store)  # a demo restarted on the same data directory
        assert made == again == list(DEMO_ACCOUNTS)
        assert {u.role for u in store.all()} == set(Role)
        for name, role, password in DEMO_ACCOUNTS:
            user = store.get(name)
            assert user is not None
            assert user.role is role
            assert verify_password(store.password_hash(name), password)
