"""Migration 0006: the rollups' (service, direction, grain, start, run) index comes and goes, rows kept."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from store_fixtures import T0, Database, comparison

from diffs.storage.models import Base
from diffs.storage.schema import alembic_config


async def _indexes(database: Database) -> tuple[set[str], int, list[object]]:
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: {i["name"] for i in inspect(sync).get_indexes("rollups")})
            count = (await conn.execute(text("SELECT count(*) FROM rollups"))).scalar_one()
            drift = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await engine.dispose()
    return names, count, drift


async def _to(database: Database, revision: str, *, down: bool) -> None:
    engine = database.engine()
    try:
        async with engine.begin() as conn:
            step = command.downgrade if down else command.upgrade
            await conn.run_sync(lambda sync: step(alembic_config(sync), revision))
    finally:
        await engine.dispose()


async def test_the_series_index_upgrades_and_downgrades_keeping_the_rollups(database: Database) -> None:
    store = await database.open()
    try:
        await store.write_batch(
            [comparison(exchange_id=f"x-{n}", started_at=T0 + timedelta(minutes=n)) for n in range(3)]
        )
    finally:
        await store.close()
    names, rows, drift = await _indexes(database)
    assert "ix_rollups_series" in names and rows > 0 and drift == []

    await _to(database, "0005", down=True)
    after_down = await _indexes(database)
    assert "ix_rollups_series" not in after_down[0] and after_down[1] == rows

    await _to(database, "head", down=False)
    after_up = await _indexes(database)
    assert "ix_rollups_series" in after_up[0] and after_up[1] == rows and after_up[2] == []
