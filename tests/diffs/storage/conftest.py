"""Store fixtures: every store test runs on a fresh SQLite file and on its own PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_fixtures import Database, postgres_schema

from diffs.storage import Store


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        yield Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        return
    async with postgres_schema(request.getfixturevalue("postgres_url")) as database:
        yield database


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    opened = await database.open()
    try:
        yield opened
    finally:
        await opened.close()
