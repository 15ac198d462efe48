"""Replicas share their console accounts in PostgreSQL: ``pumptwin users add`` and ``list`` write
and read them there when ``PUMPTWIN_DATABASE__URL`` is set (the first admin of a deployment of
replicas), and :class:`twin.app.replica.BlockingAccounts` serves them to the API's sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from twin.app.replica import BlockingAccounts
from twin.cli import app
from twin.roles import Role
from twin.store.postgres import Limits
from twin.store.users import hash_password, verify_password

pytestmark = pytest.mark.integration


def test_users_add_writes_the_shared_accounts_when_a_database_is_set(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUMPTWIN_DATABASE__URL", postgres_url)
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-enough-password-1")
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "ana", "--role", "admin", "--password-env", "ADMIN_PASSWORD"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    assert "ana\tadmin" in listed.output
    accounts = BlockingAccounts(postgres_url, replica="test", limits=Limits())
    try:
        stored = accounts.password_hash("ana")
        assert verify_password(stored, "a-long-enough-password-1")
        accounts.add("bo", Role.VIEWER, hash_password("another-long-password"), actor="ana", at=datetime.now(UTC))
        token = accounts.open_session("bo", datetime.now(UTC), timedelta(hours=1))
        session = accounts.session(token, datetime.now(UTC))
        assert session is not None
        assert session.user.username == "bo"
        assert accounts.close_session(token) is True
        assert accounts.session(token, datetime.now(UTC)) is None
    finally:
        accounts.close()
    again = runner.invoke(app, ["users", "add", "ana", "--role", "viewer", "--password-env", "ADMIN_PASSWORD"])
    assert again.exit_code == 1
    assert "user_exists" in again.output
