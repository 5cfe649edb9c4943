"""The comparison pipeline behind the proxy: outcomes stored and counted, drops recorded, marks and id pairs applied."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from diffs.exchange import Outcome
from diffs.id_pairs import IdPair, IdPairs
from diffs.storage import Store
from diffs.templating import LearnedTemplate
from proxy.analysis.comparing import QUEUE_BYTES, STORE_PENDING, ComparisonSink
from proxy.config import Settings, load_settings
from proxy.dataplane.metrics import ProxyMetrics
from tests.factories import exchange, order_body, primary, shadow


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    yield opened
    await opened.close()


def settings(**overrides: object) -> Settings:
    return load_settings(overrides=overrides, environ={})


def counted(metrics: ProxyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_each_exchange_is_compared_stored_and_counted(store: Store) -> None:
    metrics = ProxyMetrics(CollectorRegistry())
    sink = ComparisonSink(settings(), store, metrics)
    await sink.start()
    same = exchange(path="/api/orders/7")
    different = exchange(primary=primary(order_body(total="27.00")), shadow=shadow(order_body(total="28.00")))
    assert sink.submit(same) and sink.submit(different)
    await sink.aclose(5)

    stored_same = await store.get_exchange(same.id)
    stored_diff = await store.get_exchange(different.id)
    assert stored_same is not None and stored_same.summary.outcome is Outcome.MATCH
    assert stored_diff is not None and [d.path for d in stored_diff.diffs] == ["root.total"]
    labels = {"service": "orders", "endpoint": "GET /api/orders/{id}"}
    assert counted(metrics, "shadowdiff_comparisons_total", outcome="match", **labels) == 1
    assert counted(metrics, "shadowdiff_comparisons_total", outcome="diff", **labels) == 1
    assert counted(metrics, "shadowdiff_field_diffs_total", noise="false", **labels) == 1


async def test_a_full_queue_still_leaves_a_dropped_row(store: Store) -> None:
    sink = ComparisonSink(settings(queue_size=1), store, ProxyMetrics(CollectorRegistry()))
    kept, dropped = exchange(), exchange()
    assert sink.submit(kept)  # not started: the queue holds one and is full
    assert not sink.submit(dropped)
    await sink.start()
    await sink.aclose(5)
    row = await store.get_exchange(dropped.id)
    assert row is not None and row.summary.outcome is Outcome.DROPPED
    assert (await store.get_exchange(kept.id)) is not None


async def test_a_saturated_sink_drops_and_counts_instead_of_growing(store: Store) -> None:
    metrics = ProxyMetrics(CollectorRegistry())
    sink = ComparisonSink(settings(queue_size=10), store, metrics)  # not started: nothing drains it
    extra = 7
    accepted = [sink.submit(exchange()) for _ in range(10 + STORE_PENDING + extra)]
    assert sum(accepted) == 10 and sink.queue.pending == 10
    # Each exchange the queue refused became a `dropped` summary for the writer, itself bounded.
    assert sink.writer.pending == STORE_PENDING
    assert counted(metrics, "shadowdiff_dropped_total", reason="store_queue_full") == extra
    assert counted(metrics, "shadowdiff_comparison_backlog", stage="store") == STORE_PENDING
    assert counted(metrics, "shadowdiff_comparison_backlog", stage="queue") == 10
    await sink.aclose(0)


def test_the_queue_holds_a_bounded_amount_of_bodies() -> None:
    small = ComparisonSink(settings(), Store.__new__(Store), ProxyMetrics(CollectorRegistry()))
    assert small.queue.max_bytes == QUEUE_BYTES  # 8 MiB, not 64 × max_response_body
    large = ComparisonSink(
        settings(max_response_body=10 * 1024 * 1024), Store.__new__(Store), ProxyMetrics(CollectorRegistry())
    )
    assert large.queue.max_bytes == 40 * 1024 * 1024  # still room for a few of the largest exchanges


async def test_a_field_marked_as_noise_is_no_longer_a_finding(store: Store) -> None:
    await store.add_noise_mark("GET /api/orders/{id}", "root.total", "rounding differs by design")
    sink = ComparisonSink(settings(), store, ProxyMetrics(CollectorRegistry()))
    await sink.start()
    different = exchange(primary=primary(order_body(total="27.00")), shadow=shadow(order_body(total="28.00")))
    sink.submit(different)
    await sink.aclose(5)
    row = await store.get_exchange(different.id)
    assert row is not None and row.summary.outcome is Outcome.MATCH
    assert [(d.path, d.noise) for d in row.diffs] == [("root.total", True)]


async def test_an_id_the_shadow_generated_for_the_primarys_is_expected(store: Store) -> None:
    pairs = IdPairs()
    pairs.remember([IdPair("orders", "/api/orders", "v1", 7, "v2", 1007)])
    sink = ComparisonSink(settings(), store, ProxyMetrics(CollectorRegistry()), pairs=pairs)
    await sink.start()
    paired = exchange(primary=primary(order_body(id=7)), shadow=shadow(order_body(id=1007)))
    unpaired = exchange(primary=primary(order_body(id=8)), shadow=shadow(order_body(id=9)))
    # order 7's pair says nothing about customer 7: a value that merely equals a known id is still a finding
    other_resource = exchange(primary=primary(order_body(customer_id=7)), shadow=shadow(order_body(customer_id=1007)))
    for built in (paired, unpaired, other_resource):
        sink.submit(built)
    await sink.aclose(5)
    row = await store.get_exchange(paired.id)
    assert row is not None and row.summary.outcome is Outcome.MATCH
    assert [(d.path, d.noise) for d in row.diffs] == [("root.id", True)]
    for built in (unpaired, other_resource):
        other = await store.get_exchange(built.id)
        assert other is not None and other.summary.outcome is Outcome.DIFF


async def test_template_positions_learned_in_one_process_name_requests_alike_in_another(store: Store) -> None:
    one = ComparisonSink(settings(), store, ProxyMetrics(CollectorRegistry()), marks_refresh_seconds=0.05)
    other = ComparisonSink(settings(), store, ProxyMetrics(CollectorRegistry()), marks_refresh_seconds=0.05)
    await one.start()
    await other.start()
    one.submit(exchange(path="/api/orders/7"))  # ids at /api/orders/: learned, saved
    random_id = exchange(path="/api/orders/vrkjkvKpxV_")  # an id the rules alone cannot tell from a word
    for _ in range(100):
        if other.comparer.endpoint(random_id) == "GET /api/orders/{id}":
            break
        await asyncio.sleep(0.02)
    await one.aclose(5)
    await other.aclose(5)
    assert other.comparer.endpoint(random_id) == "GET /api/orders/{id}"
    assert LearnedTemplate("orders", "/api/orders/{id}", "id") in await store.load_learned_templates()
