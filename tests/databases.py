"""Where a test's store lives when it runs on both backends: a SQLite file, or a fresh PostgreSQL schema."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


@contextlib.asynccontextmanager
async def fresh_schema(url: str) -> AsyncIterator[str]:
    """A new schema on the test PostgreSQL, dropped afterwards, so concurrent runs never share tables."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield schema
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@contextlib.asynccontextmanager
async def sqlite_or_postgres(
    request: pytest.FixtureRequest, sqlite_file: Path
) -> AsyncIterator[tuple[str, str | None]]:
    """(URL, schema) for a fixture parametrised "sqlite"/"postgresql". The `postgres_url` fixture is asked for only
    on PostgreSQL, so the SQLite runs never need the server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{sqlite_file}", None
        return
    url = request.getfixturevalue("postgres_url")
    async with fresh_schema(url) as schema:
        yield url, schema
