"""Store fixtures: every store test runs on a fresh SQLite file and on its own PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_fixtures import Database

from diffs.storage import Store
from tests.databases import sqlite_or_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_or_postgres(request, tmp_path / "store.db") as found:
        yield Database(*found)


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    opened = await database.open()
    try:
        yield opened
    finally:
        await opened.close()
