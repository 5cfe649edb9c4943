"""Schema: Alembic builds it on open, idempotently, matching the models; SQLite runs in WAL with a busy timeout."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from store_fixtures import Database, comparison

from diffs.storage import Store, rows
from diffs.storage.models import Base, ExchangeRow
from diffs.storage.schema import alembic_config
from diffs.storage.urls import async_url
from proxy.errors import ConfigError

TABLES = {
    "alembic_version",
    "exchanges",
    "exchange_payloads",
    "field_diffs",
    "body_examples",
    "noise_marks",
    "id_pairs",
    "promotions",
    "learned_templates",
    "rollups",
    "rollup_pending",
    "events",
}


async def _state(database: Database) -> tuple[set[str], str, list[object]]:
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            drift = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await engine.dispose()
    return tables, version, drift


async def test_fresh_database_gets_the_whole_schema_at_head(store: Store, database: Database) -> None:
    tables, version, drift = await _state(database)
    assert tables == TABLES
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert drift == []  # the migrations build exactly what the models describe


async def test_a_store_at_the_run_label_revision_upgrades_to_head_keeping_its_rows(database: Database) -> None:
    """0004 (verdicts: diff places, learned templates, id pairs) follows 0003 (the replay run label): a store that
    main's 0003 built upgrades in place, its exchanges and run labels kept; the old id pairs, which had no resource,
    are dropped with their table."""
    engine = database.engine()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0003"))
            row = comparison(exchange_id="x-1")
            row = replace(row, exchange=replace(row.exchange, run="r1"))
            await conn.execute(insert(ExchangeRow.__table__).values(rows.exchange_values(row, "x-1", False)))
            await conn.execute(
                text(
                    "INSERT INTO id_correlations (service, primary_id, shadow_id, created_at) "
                    "VALUES ('orders', '7', '1007', '2026-12-01 10:00:00+00')"
                )
            )
    finally:
        await engine.dispose()
    store = await database.open()
    try:
        stored = await store.get_exchange("x-1")
        assert stored is not None and stored.summary.endpoint == "GET /api/orders/{id}"
        assert await store.load_id_pairs() == []
    finally:
        await store.close()
    tables, version, drift = await _state(database)
    assert tables == TABLES and "id_correlations" not in tables
    script = ScriptDirectory.from_config(alembic_config())
    assert version == script.get_current_head() and script.get_revision("0004").down_revision == "0003"
    assert drift == []
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT run FROM exchanges WHERE id = 'x-1'"))).scalar_one() == "r1"
    finally:
        await engine.dispose()


async def test_opening_again_is_idempotent_and_keeps_data(database: Database) -> None:
    first = await database.open()
    await first.record_promotion("orders", "v1", "v2", "ok", "alice")
    await first.close()
    second = await database.open()
    try:
        assert await second.get_primaries() == {"orders": "v2"}
    finally:
        await second.close()
    tables, _, _ = await _state(database)
    assert tables == TABLES


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'wal.db'}", busy_timeout=2.5)
    try:
        engine = store._engine
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == 2500
    finally:
        await store.close()


async def test_in_memory_sqlite_works_for_quick_tools() -> None:
    store = await Store.open("sqlite://")
    try:
        await store.record_promotion("ai", "v1", "v2", "demo", "me")
        assert await store.get_primaries() == {"ai": "v2"}
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_map_to_async_drivers(given: str, driver: str) -> None:
    assert async_url(given).drivername == driver


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls_fail_with_the_config_key(bad: str) -> None:
    with pytest.raises(ConfigError, match="database_url"):
        async_url(bad)


async def test_from_settings_uses_the_redaction_and_retention_settings(tmp_path: Path) -> None:
    from proxy.config import load_settings

    settings = load_settings(
        overrides={
            "database_url": f"sqlite:///{tmp_path / 's.db'}",
            "redact_fields": ["ssn"],
            "examples_per_field": 3,
            "retention_max_exchanges": 5000,
        },
        environ={},
    )
    store = await Store.from_settings(settings)
    try:
        assert store.retention.examples_per_field == 3 and store.retention.max_exchanges == 5000
        assert store.redactor.is_secret_key("ssn") and not store.redactor.is_secret_key("password")
    finally:
        await store.close()
