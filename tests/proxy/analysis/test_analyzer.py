"""proxy.analysis.analyzer: outcomes stored and tallied, drops recorded, marks and id pairs applied, settling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from diffs.exchange import Outcome
from diffs.storage import Store
from proxy.analysis.analyzer import Analyzer
from proxy.config import Settings, load_settings
from tests.factories import exchange, order_body, primary, shadow


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    yield opened
    await opened.close()


def settings(**overrides: object) -> Settings:
    return load_settings(overrides=overrides, environ={})


async def test_each_exchange_is_compared_stored_and_tallied(store: Store) -> None:
    analyzer = Analyzer(settings(), store)
    await analyzer.start()
    same = exchange(path="/api/orders/7")
    different = exchange(primary=primary(order_body(total="27.00")), shadow=shadow(order_body(total="28.00")))
    analyzer.exchange(same)
    analyzer.exchange(different)
    report = analyzer.progress()
    await analyzer.aclose(5)

    stored_same = await store.get_exchange(same.id)
    stored_diff = await store.get_exchange(different.id)
    assert stored_same is not None and stored_same.summary.outcome is Outcome.MATCH
    assert stored_diff is not None and [d.path for d in stored_diff.diffs] == ["root.total"]
    endpoint = "GET /api/orders/{id}"
    assert sorted(report["outcomes"]) == [["orders", endpoint, "diff", 1], ["orders", endpoint, "match", 1]]
    assert report["field_diffs"] == [["orders", endpoint, "false", 1]]
    assert analyzer.progress()["outcomes"] == []  # each report has what happened since the last one


async def test_a_drop_record_becomes_a_dropped_row(store: Store) -> None:
    analyzer = Analyzer(settings(), store)
    await analyzer.start()
    dropped = exchange(skip_reason="queue_full")
    analyzer.dropped(dropped)
    await analyzer.aclose(5)
    row = await store.get_exchange(dropped.id)
    assert row is not None and row.summary.outcome is Outcome.DROPPED and row.summary.skip_reason == "queue_full"


async def test_settled_is_a_watermark_over_everything_handed_in_order(store: Store) -> None:
    analyzer = Analyzer(settings(), store)  # not started: the writer holds what it takes
    for _ in range(3):
        analyzer.exchange(exchange())
    analyzer.learned("orders", [(7, 1007)])  # settles at once, but not before the rows ahead of it
    assert (analyzer.handled, analyzer.settled) == (4, 0)
    analyzer.writer.start()
    await analyzer.writer.flush()
    assert analyzer.settled == 4
    await analyzer.aclose(5)


async def test_exchanges_the_writer_refuses_are_settled_and_counted(store: Store) -> None:
    analyzer = Analyzer(settings(), store)  # not started: the writer's counts wait in its buffer
    analyzer.writer._rollups.max_keys = 1  # room for one key (service, endpoint, direction, minute) only
    analyzer.exchange(exchange())
    analyzer.exchange(exchange(path="/api/products/1", service="products"))  # a second key: refused
    analyzer.exchange(exchange())
    assert analyzer.progress()["drops"] == [["store_buffer_full", 1]]
    assert analyzer.settled == 0  # the refused one is settled, but the one ahead of it is not yet
    analyzer.writer.start()
    await analyzer.writer.flush()
    assert analyzer.settled == 3
    await analyzer.aclose(5)


async def test_a_field_marked_as_noise_is_no_longer_a_finding(store: Store) -> None:
    await store.add_noise_mark("GET /api/orders/{id}", "root.total", "rounding differs by design")
    analyzer = Analyzer(settings(), store)
    await analyzer.start()
    different = exchange(primary=primary(order_body(total="27.00")), shadow=shadow(order_body(total="28.00")))
    analyzer.exchange(different)
    await analyzer.aclose(5)
    row = await store.get_exchange(different.id)
    assert row is not None and row.summary.outcome is Outcome.MATCH
    assert [(d.path, d.noise) for d in row.diffs] == [("root.total", True)]


async def test_an_id_the_shadow_generated_for_the_primarys_is_expected(store: Store) -> None:
    analyzer = Analyzer(settings(), store)
    await analyzer.start()
    analyzer.learned("orders", [(7, 1007)])  # forwarded by the data plane, ahead of the exchange
    paired = exchange(primary=primary(order_body(id=7)), shadow=shadow(order_body(id=1007)))
    unpaired = exchange(primary=primary(order_body(id=8)), shadow=shadow(order_body(id=9)))
    analyzer.exchange(paired)
    analyzer.exchange(unpaired)
    await analyzer.aclose(5)
    row = await store.get_exchange(paired.id)
    assert row is not None and row.summary.outcome is Outcome.MATCH
    other = await store.get_exchange(unpaired.id)
    assert other is not None and other.summary.outcome is Outcome.DIFF


async def test_pairs_persisted_by_any_worker_are_read_from_the_store(store: Store) -> None:
    await store.save_correlations("orders", [("7", "1007"), ('"ORD-1"', '"ORD-9"')])
    analyzer = Analyzer(settings(), store, pairs_refresh_seconds=0.05)
    await analyzer.start()
    assert analyzer.pairs.lookup("orders", 7) == "1007" and analyzer.pairs.lookup("orders", "ORD-1") == "ORD-9"
    await store.save_correlations("orders", [("8", "1008")])  # another worker's create, after start-up
    for _ in range(100):
        if analyzer.pairs.lookup("orders", 8) is not None:
            break
        await asyncio.sleep(0.02)
    await analyzer.aclose(5)
    assert analyzer.pairs.lookup("orders", 8) == "1008"


async def test_a_comparison_that_fails_is_stored_as_dropped_and_counted(store: Store) -> None:
    analyzer = Analyzer(settings(), store)
    await analyzer.start()

    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    analyzer.comparer.compare = broken  # type: ignore[method-assign]
    item = exchange()
    analyzer.exchange(item)
    await analyzer.aclose(5)
    assert analyzer.progress()["drops"] == [["compare_failed", 1]]
    row = await store.get_exchange(item.id)
    assert row is not None and row.summary.outcome is Outcome.DROPPED
