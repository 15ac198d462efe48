"""The database and cluster settings: ``PUMPTWIN_DATABASE__URL`` and ``pumptwin serve
--database-url`` reach :class:`~twin.settings.Settings`; a URL that is not PostgreSQL's is refused
with a clear message; the URL is a secret (never printed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from twin.app import serve as app_serve
from twin.cli import app
from twin.settings import Settings

URL = "postgresql://twin:s3cret@db.example:5432/pumptwin"


def test_the_environment_sets_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMPTWIN_DATABASE__URL", URL)
    monkeypatch.setenv("PUMPTWIN_CLUSTER__PARTITIONS", "12")
    settings = Settings()
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value() == URL
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.database)
    assert settings.cluster.partitions == 12


def test_without_a_database_the_twin_keeps_its_sqlite_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUMPTWIN_DATABASE__URL", raising=False)
    assert Settings().database.url is None


def test_each_process_gets_its_own_replica_id() -> None:
    assert Settings().cluster.replica_id != Settings().cluster.replica_id


@pytest.mark.parametrize("url", ["mysql://db/x", "sqlite:///var/x.sqlite", "db.example:5432"])
def test_a_url_that_is_not_postgresql_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PUMPTWIN_DATABASE__URL", url)
    with pytest.raises(ValidationError, match="must start with one of postgresql://"):
        Settings()


class _Started(Exception):
    pass


def _capture(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the running twin (not under test here) by a stand-in that records its settings."""
    seen: dict[str, Any] = {}

    async def serve_forever(settings: Settings, mqtt_url: str | None) -> None:
        seen["settings"] = settings
        raise _Started

    monkeypatch.setattr(app_serve, "serve_forever", serve_forever)
    return seen


def test_serve_database_url_reaches_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUMPTWIN_DATABASE__URL", raising=False)
    seen = _capture(monkeypatch)
    result = CliRunner().invoke(app, ["serve", "--mqtt", "mqtt://127.0.0.1:1", "--database-url", URL])
    assert isinstance(result.exception, _Started), result.output
    assert seen["settings"].database.url.get_secret_value() == URL


def test_serve_refuses_a_database_url_that_is_not_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture(monkeypatch)
    result = CliRunner().invoke(app, ["serve", "--mqtt", "mqtt://127.0.0.1:1", "--database-url", "mysql://x/y"])
    assert result.exit_code == 2
    assert "must start with one of postgresql://" in re.sub(r"[\s│]+", " ", result.output)  # rich boxes it
    assert "settings" not in seen
