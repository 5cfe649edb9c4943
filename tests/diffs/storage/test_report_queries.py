"""How many statements a report takes: a fixed number, however many services, endpoints, promotions and pending
periods the store holds (one per service, endpoint or field would be an N+1 that grows with the configuration)."""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert
from store_fixtures import comparison

from diffs.readiness import Criteria
from diffs.report import Window
from diffs.rollups import GRAINS, OTHER_SIGNATURE, Cell, findings, floor_time
from diffs.rules import NoiseConfig
from diffs.storage import Store, queries
from diffs.storage.models import PromotionRow
from diffs.storage.rollup_rows import TABLE, values_of
from diffs.trend import bucket_edges

STATEMENTS = 6
"""Promotions; then in one read transaction: pending marks, the rollup rows (one statement), noise marks, every
service's first and newest minute for the trends (one statement), and every service's trend rows (one statement)."""
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


@pytest.mark.parametrize("since", [None, START + timedelta(hours=1)])
async def test_a_report_as_of_now_counts_up_to_now_not_the_wall_clock(store: Store, since: datetime | None) -> None:
    """`load_report(now=...)`: every number ends at `now` (the exchanges recorded after it are not counted), as the
    trend already did."""
    names = await _fill(store, 2)
    now = START + timedelta(hours=2)  # the fill runs four hours, a minute apart, up to an hour before the clock
    report = await queries.load_report(
        store,
        window=Window(since=since),
        criteria=Criteria(),
        noise=NoiseConfig(),
        primaries={},
        services=names,
        now=now,
    )
    minutes = 120 if since is None else 60
    assert [s.counts.total for s in report.services] == [minutes, minutes]
    assert report.generated_at == now
    assert [sum(b.samples for b in s.trend.buckets) for s in report.services] == [minutes, minutes]


async def test_the_trend_bucket_sql_is_bisect_on_each_rows_middle(store: Store) -> None:
    """Rows go to the bucket holding their middle, in SQL now: the same bucket as `bisect_right` on start + grain / 2,
    at the edges to the microsecond, for every grain."""
    since = START + timedelta(seconds=7, microseconds=123457)
    edges = bucket_edges(since, since + timedelta(hours=30, minutes=3))
    starts: set[tuple[int, datetime]] = set()
    for grain in GRAINS:
        half = timedelta(seconds=grain / 2)
        for edge in (since - timedelta(days=1), *edges, edges[-1] + timedelta(days=1)):
            for nudge in (timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1), timedelta(seconds=61)):
                starts.add((grain, edge - half + nudge))
    cell = Cell()
    cell.add(outcome="match", primary_ms=1.0, shadow_ms=1.0, primary_status=200, shadow_status=200)
    rows = [
        {"grain": g, "start": t, "service": "s", "endpoint": "e", "direction": "v1>v2", "run": "", **values_of(cell)}
        for g, t in sorted(starts)
    ]
    async with queries._engine(store).begin() as conn:
        await conn.execute(insert(TABLE), rows)
    async with queries._engine(store).connect() as conn:
        query = queries._trend_rows(edges).add_columns(TABLE.c.grain, TABLE.c.start)
        fetched = (await conn.execute(query)).all()
    assert len(fetched) == len(rows)
    for row in fetched:
        expected = max(0, bisect.bisect_right(edges, row.start + timedelta(seconds=row.grain / 2)) - 1)
        assert row.bucket == expected, (row.grain, row.start)


def test_findings_over_many_rows_remembered_are_rollups_findings() -> None:
    rng = random.Random(3)
    paths = ["root.a", "root.b"]
    names = ["root.a", "root.b", "root.c", "root.a\nroot.c", "root.c\nroot.d", OTHER_SIGNATURE, ""]
    hits: dict[str, bool] = {}
    for _ in range(50):
        rows = [{rng.choice(names): rng.randrange(1, 9) for _ in range(3)} for _ in range(rng.randrange(4))]
        expected = sum(findings(one, paths) for one in rows)
        assert queries._findings(rows, paths, hits) == expected
