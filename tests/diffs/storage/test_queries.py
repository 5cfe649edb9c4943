"""The report SQL on SQLite and PostgreSQL, over a store seeded through the real pipeline and batch writer."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from diffs.comparer import Comparer
from diffs.exchange import Outcome
from diffs.percentiles import HistogramBucket, latency_bucket
from diffs.percentiles import percentiles as pure_percentiles
from diffs.readiness import Criteria
from diffs.report import Report, Verdict, Window
from diffs.rollups import floor_time
from diffs.rules import NoiseConfig
from diffs.storage import Store, queries
from proxy.config import load_settings
from tests import factories as f
from tests.proxy.report_seed import Seeded, seed

NOW = datetime.now(UTC)
GET_ORDER = "GET /api/orders/{id}"
EVERYTHING = Window()


async def load(
    store: Store, window: Window = EVERYTHING, service: str | None = None, primaries: dict[str, str] | None = None
) -> Report:
    settings = load_settings(environ={})
    return await queries.load_report(
        store,
        window=window,
        criteria=Criteria(),
        noise=NoiseConfig(),
        primaries=primaries or {},
        service=service,
        services=list(settings.services),
    )


@pytest.fixture
async def seeded(store: Store) -> Seeded:
    return await seed(store, now=NOW)


async def test_the_report_counts_outcomes_findings_and_judges_readiness(store: Store, seeded: Seeded) -> None:
    report = await load(store)
    orders, products, ai = report.service("orders"), report.service("products"), report.service("ai")
    assert orders is not None and products is not None and ai is not None
    assert (orders.counts.match, orders.counts.diff, orders.counts.shadow_error) == (128, 10, 2)
    assert orders.counts.findings == 10
    assert [f.criterion for f in orders.readiness.failures] == ["max_diff_rate", "max_error_rate"]
    assert products.readiness.ready and products.primary == "v1"
    assert [f.criterion for f in ai.readiness.failures] == ["min_samples"]
    by_endpoint = {e.endpoint: e for e in orders.endpoints}
    assert [(x.path, x.raw, x.noise, x.verdict) for x in by_endpoint[GET_ORDER].fields] == [
        ("root.total", 10, 0, Verdict.FINDING)
    ]
    assert [(x.path, x.raw, x.noise, x.verdict) for x in by_endpoint["POST /api/orders"].fields] == [
        ("root.order_number", 20, 20, Verdict.NOISE)
    ]


async def test_latency_percentiles_cover_only_exchanges_both_sides_answered(store: Store, seeded: Seeded) -> None:
    orders = (await load(store, service="orders")).service("orders")
    assert orders is not None
    get = next(e for e in orders.endpoints if e.endpoint == GET_ORDER)
    # 120 exchanges, 2 shadow timeouts (5 s) left out of both roles.
    assert get.latency.primary.count == get.latency.shadow.count == 118
    assert get.latency.primary.p50 == 22.0 and get.latency.shadow.p99 == 19.0
    assert products_speedup(await load(store)) == pytest.approx(0.23, abs=0.01)


def products_speedup(report: Report) -> float | None:
    products = report.service("products")
    return None if products is None else products.v2_speedup


async def test_a_noise_mark_takes_a_field_out_of_the_diff_rate(store: Store, seeded: Seeded) -> None:
    await store.add_noise_mark(GET_ORDER, "root.total", "rounding, accepted")
    orders = (await load(store)).service("orders")
    assert orders is not None
    assert orders.counts.findings == 0 and orders.counts.diff == 10  # raw outcome unchanged
    assert [x.verdict for e in orders.endpoints for x in e.fields if x.path == "root.total"] == [Verdict.MARKED]
    assert [f.criterion for f in orders.readiness.failures] == ["max_error_rate"]


async def test_the_time_window_bounds_every_number_to_the_minute(store: Store, seeded: Seeded) -> None:
    recent = await load(store, Window(since=NOW - timedelta(minutes=10)))
    assert all(s.counts.total == 0 for s in recent.services) and not recent.ready
    # Products were recorded one a second from `started`, then orders: a window ending on the minute boundary
    # after the last product holds every product and, of the orders, those before the boundary.
    boundary = floor_time(seeded.started + timedelta(seconds=150), 60) + timedelta(minutes=1)

    def recorded_before(at: datetime) -> int:  # one a second from `started`
        return math.ceil((at - seeded.started).total_seconds())

    early = await load(store, Window(until=boundary))
    products, orders = early.service("products"), early.service("orders")
    assert products is not None and products.counts.total == 150
    assert orders is not None and orders.counts.total == recorded_before(boundary) - 150
    earlier = await load(store, Window(until=boundary - timedelta(minutes=2)))
    products = earlier.service("products")
    assert products is not None and products.counts.total == recorded_before(boundary - timedelta(minutes=2))


async def test_after_a_promotion_each_direction_is_reported_apart(store: Store, seeded: Seeded) -> None:
    # The seeded products traffic had V1 as primary; with V2 primary now, its numbers are not the current ones.
    products = (await load(store, primaries={"products": "v2"})).service("products")
    assert products is not None and products.primary == "v2" and products.direction == "v2>v1"
    assert products.counts.total == 0 and [f.criterion for f in products.readiness.failures] == ["min_samples"]
    (before,) = products.directions
    assert before.direction == "v1>v2" and before.counts.samples == 150 and before.readiness.ready


async def test_sql_histograms_give_the_same_percentiles_as_the_pure_buckets(store: Store) -> None:
    settings = load_settings(environ={})
    comparer = Comparer(settings.services)
    values = [0.0, 0.4, 1.0, 2.5, 7.25, 10.0, 33.3, 99.9, 250.0, 1234.5] * 7
    batch = []
    for n, ms in enumerate(values):
        x = f.exchange(
            primary=f.primary(f.order_body(), latency_ms=ms), shadow=f.shadow(f.order_body(), latency_ms=ms * 2)
        )
        batch.append(comparer.compare(replace(x, started_at=NOW - timedelta(seconds=n))))
    await store.write_batch(batch)
    (get,) = (await load(store, service="orders")).service("orders").endpoints  # type: ignore[union-attr]
    grouped: dict[int, list[float]] = {}
    for ms in values:
        grouped.setdefault(latency_bucket(ms), []).append(ms)
    expected = pure_percentiles(HistogramBucket(b, len(v), sum(v) / len(v)) for b, v in grouped.items())
    assert get.latency.primary == expected
    assert get.latency.primary.p99 == pytest.approx(1234.5)
    assert get.latency.shadow.p50 == pytest.approx(2 * expected.p50)  # type: ignore[operator]


async def test_exchanges_with_a_diff_at_a_field_page_newest_first_without_repeats(store: Store, seeded: Seeded) -> None:
    flt = queries.ExchangeFilter(endpoint=GET_ORDER, path="root.total")
    seen, before, pages = [], None, 0
    while True:
        page = await queries.list_exchanges(store, flt, before=before, limit=3)
        seen += list(page.items)
        pages += 1
        if page.next_cursor is None:
            break
        before = page.next_cursor
    assert pages == 4 and len({x.id for x in seen}) == 10 == len(seen)
    assert all(x.outcome is Outcome.DIFF and x.endpoint == GET_ORDER for x in seen)
    assert [x.started_at for x in seen] == sorted((x.started_at for x in seen), reverse=True)
    assert seeded.diff_exchange_id in {x.id for x in seen}


async def test_plain_filters_use_the_store_listing(store: Store, seeded: Seeded) -> None:
    page = await queries.list_exchanges(store, queries.ExchangeFilter(service="orders", outcome="shadow_error"))
    assert len(page.items) == 2 and page.next_cursor is None
    assert all(x.outcome is Outcome.SHADOW_ERROR and x.service == "orders" for x in page.items)
    assert seeded.error_exchange_id in {x.id for x in page.items}


async def test_field_examples_and_the_service_of_an_endpoint(store: Store, seeded: Seeded) -> None:
    examples = await queries.field_examples(store, GET_ORDER)
    assert "root.total" in examples
    kept = await store.get_exchange(examples["root.total"])
    assert kept is not None and kept.shadow is not None and kept.shadow.body is not None
    noise_only = await queries.field_examples(store, "POST /api/orders")  # differs only as noise: on matches
    assert list(noise_only) == ["root.order_number"]
    kept_match = await store.get_exchange(noise_only["root.order_number"])
    assert kept_match is not None and kept_match.primary.body is not None
    assert await queries.service_of(store, GET_ORDER) == "orders"
    assert await queries.service_of(store, "GET /nowhere") is None


@pytest.mark.parametrize(
    "flt",
    [
        queries.ExchangeFilter(),
        queries.ExchangeFilter(service="orders"),
        queries.ExchangeFilter(endpoint=GET_ORDER),
        queries.ExchangeFilter(outcome="diff"),
        queries.ExchangeFilter(service="orders", since=NOW - timedelta(hours=1)),
        queries.ExchangeFilter(endpoint=GET_ORDER, path="root.total"),
    ],
    ids=["all", "service", "endpoint", "outcome", "service+window", "field"],
)
async def test_every_exchange_page_is_an_index_range_scan_without_a_sort(
    tmp_path: Path, flt: queries.ExchangeFilter
) -> None:
    # What keeps deep pages fast at a million exchanges: SQLite walks an index in (started_at, id) order from the
    # cursor and stops after `limit` rows; it never scans the table or sorts what it found.
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}")
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM exchanges" in statement:
            statements.append((statement, parameters))

    engine = queries._engine(store).sync_engine
    await seed(store, now=NOW)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        first = await queries.list_exchanges(store, flt, limit=2)
        await queries.list_exchanges(store, flt, before=first.next_cursor, limit=2)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
        await store.close()
    assert len(statements) == 2
    with sqlite3.connect(tmp_path / "plan.db") as conn:
        for statement, parameters in statements:
            plan = " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
            assert "SCAN exchanges" not in plan or "USING INDEX" in plan, plan


async def test_the_trend_counts_findings_per_time_bucket(store: Store) -> None:
    """An hour of orders: half of them differ during the first 20 minutes, none after; the trend shows it."""
    settings = load_settings(environ={})
    comparer = Comparer(settings.services)
    start = floor_time(NOW - timedelta(hours=1), 60)  # rollups count by the minute
    batch = []
    for minute in range(60):
        for k in range(4):
            order = f.order_body(id=minute * 10 + k + 1)
            differs = minute < 20 and k < 2
            x = f.exchange(
                primary=f.primary(order),
                shadow=f.shadow({**order, "total": "1.00"} if differs else order),
                path=f"/api/orders/{minute * 10 + k + 1}",
                started_at=start + timedelta(minutes=minute, seconds=k),
            )
            batch.append(comparer.compare(x))
    await store.write_batch(batch)
    report = await load(store, Window(since=start, until=start + timedelta(hours=1)))
    orders = report.service("orders")
    assert orders is not None
    assert [(b.samples, b.findings) for b in orders.trend.buckets] == [(20, 10)] * 4 + [(20, 0)] * 8
    assert orders.trend.direction == "better" and orders.trend.spark() == "████▁▁▁▁▁▁▁▁"
    assert sum(b.findings for b in orders.trend.buckets) == orders.counts.findings == 40
    # An open window starts at the oldest exchange; a service without traffic has no trend.
    everything = await load(store)  # "all time": from the oldest exchange to the newest, not to now
    all_time = everything.service("orders")
    assert all_time is not None and all_time.trend.buckets[0].start == start
    assert [(b.samples, b.findings) for b in all_time.trend.buckets] == [(20, 10)] * 4 + [(20, 0)] * 8
    assert everything.service("ai").trend.buckets == ()  # type: ignore[union-attr]


async def test_an_all_time_trend_spans_the_traffic_not_the_idle_time_after_it(store: Store) -> None:
    """Twelve minutes of traffic two hours ago: twelve one-minute buckets, none of them empty."""
    settings = load_settings(environ={})
    comparer = Comparer(settings.services)
    start = floor_time(NOW - timedelta(hours=2), 60)
    batch = [
        comparer.compare(f.exchange(path=f"/api/orders/{m + 1}", started_at=start + timedelta(minutes=m)))
        for m in range(12)
    ]
    await store.write_batch(batch)
    orders = (await load(store)).service("orders")
    assert orders is not None
    assert [b.samples for b in orders.trend.buckets] == [1] * 12
    assert orders.trend.buckets[-1].start < start + timedelta(minutes=11, seconds=1)
