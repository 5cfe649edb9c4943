"""Migration 0005: a store written before rollups is rolled up on upgrade, and reports what it reported before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alembic import command
from sqlalchemy import insert
from store_fixtures import T0, Database, comparison

from diffs.report import Window
from diffs.rollups import fold_all
from diffs.rules import NoiseConfig
from diffs.storage import queries, rows
from diffs.storage.engine import make_engine
from diffs.storage.models import ExchangeRow, FieldDiffRow
from diffs.storage.schema import alembic_config
from diffs.storage.urls import async_url


def _at_0004(sync: Any) -> None:
    command.upgrade(alembic_config(sync), "0004")


async def test_existing_exchanges_are_rolled_up_on_upgrade(database: Database) -> None:
    batch = []
    for n in range(300):
        at = T0 + timedelta(seconds=41 * n)  # over about three and a half hours
        if n % 10 == 0:
            batch.append(comparison(started_at=at, diffs=[("root.total", "1.00", "2.00")]))
        elif n % 10 == 1:
            batch.append(comparison(started_at=at, diffs=[("root.created_at", 1, 2)], noise=True))
        else:
            batch.append(comparison(started_at=at, endpoint="GET /api/orders" if n % 2 else "GET /api/orders/{id}"))
    engine = make_engine(async_url(database.url), schema=database.schema)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_at_0004)  # the schema as the previous release left it, with every exchange a row
            for c in batch:
                await conn.execute(insert(ExchangeRow), [rows.exchange_values(c, c.exchange.id, False)])
                if c.diffs:
                    await conn.execute(insert(FieldDiffRow), rows.diff_values(c, c.exchange.id))
    finally:
        await engine.dispose()

    store = await database.open()  # upgrades to head: 0005 rolls the exchanges up
    try:
        found = await queries.totals(store, Window(), now=T0 + timedelta(days=1))
        partial = await queries.totals(
            store, Window(since=T0 + timedelta(minutes=37), until=T0 + timedelta(hours=2, minutes=3))
        )
    finally:
        await store.close()
    expected = fold_all(batch)
    by_endpoint: dict[str, Any] = {}
    for key, cell in expected.items():
        by_endpoint.setdefault(key.endpoint, []).append(cell)
    assert {k[1] for k in found} == set(by_endpoint)
    for (_, endpoint, direction), t in found.items():
        cells = by_endpoint[endpoint]
        assert direction == "v1>v2"
        assert t.outcomes == sum((c.outcomes for c in cells), type(t.outcomes)())
        assert t.noisy_match == sum(c.noisy_match for c in cells)
        assert t.signatures == sum((c.signatures for c in cells), type(t.signatures)())
        assert t.primary.counts == _accumulated(cells)
    in_window = [
        c for c in batch if T0 + timedelta(minutes=37) <= c.exchange.started_at < T0 + timedelta(hours=2, minutes=3)
    ]
    assert sum(sum(t.outcomes.values()) for t in partial.values()) == len(in_window)
    endpoints, fields, _ = queries.report_inputs(found, NoiseConfig(), [])
    get = next(e for e in endpoints if e.endpoint == "GET /api/orders/{id}")
    # The fixture stores noise-only diffs as `diff` outcomes: 60 differ, 30 of them in a finding, 30 only in noise.
    assert get.outcomes["diff"] == 60 and get.finding_exchanges == 30
    assert {(f.path, f.verdict) for f in fields if f.endpoint == get.endpoint} == {
        ("root.total", "finding"),
        ("root.created_at", "noise"),
    }


def _accumulated(cells: list[Any]) -> list[int]:
    from diffs.rollups import Accumulator

    total = Accumulator()
    for cell in cells:
        total.add_encoded(cell.primary.encode())
    return total.counts
