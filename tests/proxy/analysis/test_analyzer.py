"""proxy.analysis.analyzer: outcomes stored and tallied, drops recorded, marks and id pairs applied, settling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from diffs.exchange import Outcome
from diffs.id_pairs import IdPair
from diffs.storage import Store
from diffs.templating import LearnedTemplate
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
    analyzer.learned([IdPair("orders", "/api/orders", "v1", 7, "v2", 1007)])  # settles at once, after the rows
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
    # forwarded by the data plane, ahead of the exchange
    analyzer.learned([IdPair("orders", "/api/orders", "v1", 7, "v2", 1007)])
    paired = exchange(primary=primary(order_body(id=7)), shadow=shadow(order_body(id=1007)))
    unpaired = exchange(primary=primary(order_body(id=8)), shadow=shadow(order_body(id=9)))
    # order 7's pair says nothing about customer 7: a value that merely equals a known id is still a finding
    other_resource = exchange(primary=primary(order_body(customer_id=7)), shadow=shadow(order_body(customer_id=1007)))
    for built in (paired, unpaired, other_resource):
        analyzer.exchange(built)
    await analyzer.aclose(5)
    row = await store.get_exchange(paired.id)
    assert row is not None and row.summary.outcome is Outcome.MATCH
    assert [(d.path, d.noise) for d in row.diffs] == [("root.id", True)]
    for built in (unpaired, other_resource):
        other = await store.get_exchange(built.id)
        assert other is not None and other.summary.outcome is Outcome.DIFF


async def test_pairs_persisted_by_any_worker_are_read_from_the_store(store: Store) -> None:
    orders = "/api/orders"
    await store.save_id_pairs(
        [IdPair("orders", orders, "v1", 7, "v2", 1007), IdPair("orders", orders, "v1", "A", "v2", "B")]
    )
    analyzer = Analyzer(settings(), store, pairs_refresh_seconds=0.05)
    await analyzer.start()
    lookup = analyzer.pairs.lookup
    # typed as stored: an int stays an int, so "7" on the shadow would still be a type change
    assert lookup("orders", "/api/orders", "v1", "v2", 7) == 1007
    assert lookup("orders", "/api/orders", "v1", "v2", "A") == "B"
    await store.save_id_pairs([IdPair("orders", "/api/orders", "v1", 8, "v2", 1008)])  # another worker's create
    for _ in range(100):
        if lookup("orders", "/api/orders", "v1", "v2", 8) is not None:
            break
        await asyncio.sleep(0.02)
    await analyzer.aclose(5)
    assert lookup("orders", "/api/orders", "v1", "v2", 8) == 1008


async def test_template_positions_learned_in_one_process_name_requests_alike_in_another(store: Store) -> None:
    one = Analyzer(settings(), store, marks_refresh_seconds=0.05)
    other = Analyzer(settings(), store, marks_refresh_seconds=0.05)
    await one.start()
    await other.start()
    one.exchange(exchange(path="/api/orders/7"))  # ids at /api/orders/: learned, saved
    random_id = exchange(path="/api/orders/vrkjkvKpxV_")  # an id the rules alone cannot tell from a word
    for _ in range(100):
        if other.comparer.endpoint(random_id) == "GET /api/orders/{id}":
            break
        await asyncio.sleep(0.02)
    await one.aclose(5)
    await other.aclose(5)
    assert other.comparer.endpoint(random_id) == "GET /api/orders/{id}"
    assert LearnedTemplate("orders", "/api/orders/{id}", "id") in await store.load_learned_templates()


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


async def test_a_list_of_paired_records_is_aligned_through_the_pairs(store: Store) -> None:
    """Seen on the demo after a create whose ids diverged (V1's order 3 is V2's order 4): `GET /api/orders` read
    item_removed {id: 3} + item_added {id: 4}, a finding, because lists are aligned by `id` before the pairs are
    consulted. Aligned through the pairs, the record is one item whose id differs as paired: a match."""
    analyzer = Analyzer(settings(), store)
    await analyzer.start()
    analyzer.learned(
        [IdPair("orders", "/api/orders", "v1", 3, "v2", 4), IdPair("orders", "/api/orders", "v1", 4, "v2", 5)]
    )
    one = exchange(
        path="/api/orders",
        primary=primary({"items": [order_body(id=3, total="5.00")]}),
        shadow=shadow({"items": [order_body(id=4, total="5.00")]}),
    )
    # V1's 4 is V2's 5, and V2's 4 is another record (V1's 3): the pairs decide, not equal values
    two = exchange(
        path="/api/orders",
        primary=primary({"items": [order_body(id=4, total="1.00"), order_body(id=3, total="2.00")]}),
        shadow=shadow({"items": [order_body(id=5, total="1.00"), order_body(id=4, total="2.50")]}),
    )
    unpaired = exchange(
        path="/api/orders",
        primary=primary({"items": [order_body(id=8)]}),
        shadow=shadow({"items": [order_body(id=9)]}),
    )
    for built in (one, two, unpaired):
        analyzer.exchange(built)
    await analyzer.aclose(5)
    first, second, third = [await store.get_exchange(built.id) for built in (one, two, unpaired)]
    assert first is not None and first.summary.outcome is Outcome.MATCH
    assert [(d.path, d.kind.value, d.noise) for d in first.diffs] == [("root.items[*].id", "changed", True)]
    assert second is not None
    found = [(d.path, d.kind.value, d.primary_value, d.shadow_value, d.noise) for d in second.diffs]
    assert ("root.items[*].total", "changed", "2.00", "2.50", False) in found  # the real change, in the right record
    assert all(kind not in ("item_added", "item_removed", "reordered") for _, kind, *_ in found)
    assert third is not None and {d.kind.value for d in third.diffs} == {"item_added", "item_removed"}
