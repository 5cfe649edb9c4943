"""How many statements a report takes: a fixed number, however many services, endpoints, promotions and pending
periods the store holds (one per service, endpoint or field would be an N+1 that grows with the configuration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert
from store_fixtures import comparison

from diffs.readiness import Criteria
from diffs.report import Window
from diffs.rollups import floor_time
from diffs.rules import NoiseConfig
from diffs.storage import Store, queries
from diffs.storage.models import PromotionRow

STATEMENTS = 7
"""Promotions, pending marks, the rollup rows (one statement), noise marks, then for the trends: the pending marks,
every service's first and newest minute (one statement), and every service's trend rows (one statement)."""
START = floor_time(datetime.now(UTC) - timedelta(hours=5), 60)
ENDPOINTS = ("GET /api/{s}/{{id}}", "GET /api/{s}", "POST /api/{s}")


async def _fill(store: Store, services: int) -> list[str]:
    names = [f"svc{n}" for n in range(services)]
    batch = []
    for n in range(240):  # four hours, a minute apart: hours and days pending, not compacted
        for i, name in enumerate(names):
            endpoint = ENDPOINTS[(n + i) % len(ENDPOINTS)].format(s=name)
            diffs = [("root.total", "1.00", "2.00")] if n % 7 == 0 else []
            batch.append(
                comparison(service=name, endpoint=endpoint, started_at=START + timedelta(minutes=n), diffs=diffs)
            )
    await store.write_batch(batch)
    async with queries._engine(store).begin() as conn:  # promoted halfway: `since_promotion` moves their start
        promotion = dict(from_side="v1", to_side="v2", reason="test", actor="alice", at=START + timedelta(hours=2))
        await conn.execute(insert(PromotionRow), [{**promotion, "service": name} for name in names[::2]])
    return names


def _selects(store: Store) -> tuple[list[str], Any]:
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "(SELECT")):
            seen.append(statement)

    return seen, capture


@pytest.mark.parametrize("services", [1, 5])
@pytest.mark.parametrize("since_promotion", [False, True])
async def test_a_report_takes_a_fixed_number_of_statements(store: Store, services: int, since_promotion: bool) -> None:
    names = await _fill(store, services)
    seen, capture = _selects(store)
    engine = queries._engine(store).sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        report = await queries.load_report(
            store,
            window=Window(since_promotion=since_promotion),
            criteria=Criteria(),
            noise=NoiseConfig(),
            primaries={},
            services=names,
            now=datetime.now(UTC),
        )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    totals = [s.counts.total for s in report.services]
    assert len(totals) == services and all(totals) and (since_promotion or sum(totals) == 240 * services)
    assert all(s.trend.buckets for s in report.services)
    every_start_moved = since_promotion and services == 1  # no open start: no first and newest minute to look up
    assert len(seen) == STATEMENTS - every_start_moved, "\n".join(seen)
