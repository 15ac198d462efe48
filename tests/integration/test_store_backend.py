"""The settings choose the back end: no database URL, the SQLite files in the data directory; a
PostgreSQL URL, the migrated database with leases and a commit feed (a real server here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.harness.postgres import Postgres
from tests.integration.test_store_contract import story
from twin.settings import DatabaseSettings, Settings
from twin.store.backend import open_stores
from twin.store.local import LocalJournalStore
from twin.store.postgres import PostgresJournalStore
from twin.store.protocol import Batch

pytestmark = pytest.mark.integration


async def test_without_a_url_the_twin_keeps_its_sqlite_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUMPTWIN_DATABASE__URL", raising=False)
    live, made = story()
    async with open_stores(Settings(data_dir=tmp_path)) as stores:
        assert stores.backend == "sqlite"
        assert isinstance(stores.journal, LocalJournalStore)
        assert stores.leases is None
        assert stores.feed is None
        await stores.journal.commit(Batch(transitions=made))
    assert (tmp_path / "journal.sqlite").exists()
    assert (tmp_path / "users.sqlite").exists()
    async with open_stores(Settings(data_dir=tmp_path)) as again:
        assert await again.journal.current_alarms() == live


async def test_a_database_url_opens_postgresql(postgres_server: Postgres, tmp_path: Path) -> None:
    url = postgres_server.create_database(f"backend_{tmp_path.name}".replace("-", "_"))
    settings = Settings(data_dir=tmp_path, database=DatabaseSettings(url=SecretStr(url)))
    live, made = story()
    async with open_stores(settings) as stores:
        assert stores.backend == "postgres"
        assert isinstance(stores.journal, PostgresJournalStore)
        assert stores.leases is not None
        assert stores.feed is not None
        await stores.journal.commit(Batch(transitions=made))
        assert await stores.journal.current_alarms() == live
    assert not (tmp_path / "journal.sqlite").exists()
