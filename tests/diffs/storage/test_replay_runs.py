"""Replay runs in the store: each exchange keeps its run label, and every report query can take one run or live only."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text
from store_fixtures import Database, comparison

from diffs.exchange import Comparison, Outcome
from diffs.readiness import Criteria
from diffs.report import LIVE, Report, Window
from diffs.rules import NoiseConfig
from diffs.storage import Store, queries


def _in_run(c: Comparison, run: str | None) -> Comparison:
    return replace(c, exchange=replace(c.exchange, run=run))


async def _report(store: Store, run: str | None) -> Report:
    return await queries.load_report(
        store,
        window=Window(run=run),
        criteria=Criteria(min_samples=1),
        noise=NoiseConfig(),
        primaries={},
        services=["orders"],
    )


@pytest.fixture
async def mixed(store: Store) -> Store:
    """Live: 3 matches. Replay "r1": 1 match, 2 diffs at root.total. Replay "r2": 1 shadow error."""
    batch = [_in_run(comparison(), None) for _ in range(3)]
    batch.append(_in_run(comparison(), "r1"))
    batch += [_in_run(comparison(diffs=[("root.total", "1.00", "2.00")]), "r1") for _ in range(2)]
    batch.append(_in_run(comparison(outcome=Outcome.SHADOW_ERROR), "r2"))
    await store.write_batch(batch)
    return store


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (None, (4, 2, 1)),
        (LIVE, (3, 0, 0)),
        ("r1", (1, 2, 0)),
        ("r2", (0, 0, 1)),
        ("nothing-here", (0, 0, 0)),
    ],
)
async def test_the_report_counts_only_the_traffic_asked_for(
    mixed: Store, run: str | None, expected: tuple[int, int, int]
) -> None:
    orders = (await _report(mixed, run)).service("orders")
    assert orders is not None
    assert (orders.counts.match, orders.counts.diff, orders.counts.shadow_error) == expected
    fields = {f.path: f.raw for e in orders.endpoints for f in e.fields}
    assert fields == ({"root.total": 2} if expected[1] else {})


async def test_listings_filter_by_run_and_rows_keep_their_label(mixed: Store, database: Database) -> None:
    for run, count in ((None, 7), (LIVE, 3), ("r1", 3), ("r2", 1)):
        page = await queries.list_exchanges(mixed, queries.ExchangeFilter(run=run), limit=100)
        assert len(page.items) == count, run
    with_path = queries.ExchangeFilter(endpoint="GET /api/orders/{id}", path="root.total", run="r1")
    assert len((await queries.list_exchanges(mixed, with_path)).items) == 2
    assert not (await queries.list_exchanges(mixed, replace(with_path, run=LIVE))).items
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            diff_runs = (await conn.execute(text("SELECT DISTINCT run FROM field_diffs"))).scalars().all()
    finally:
        await engine.dispose()
    assert diff_runs == ["r1"]
