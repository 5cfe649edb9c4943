"""Promotions: persisted, audited, shared between processes that open the same database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from store_fixtures import Database

from diffs.storage import PromotionRecord, Store


async def test_no_promotions_means_no_overrides(store: Store) -> None:
    assert await store.get_primaries() == {}
    assert await store.list_promotions() == []


async def test_record_promotion_returns_the_audited_record(store: Store) -> None:
    before = datetime.now(UTC)
    record = await store.record_promotion("orders", "v1", "v2", "diff rate below 0.1%", "alice")
    assert isinstance(record, PromotionRecord)
    assert (record.service, record.from_side, record.to_side, record.reason, record.actor) == (
        "orders",
        "v1",
        "v2",
        "diff rate below 0.1%",
        "alice",
    )
    assert record.at.tzinfo is not None and before - timedelta(seconds=1) <= record.at <= datetime.now(UTC)
    assert await store.list_promotions() == [record]


async def test_latest_promotion_per_service_wins(store: Store) -> None:
    await store.record_promotion("orders", "v1", "v2", "promote", "alice")
    await store.record_promotion("products", "v1", "v2", "promote", "bob")
    await store.record_promotion("orders", "v2", "v1", "roll back: 500s", "carol")
    assert await store.get_primaries() == {"orders": "v1", "products": "v2"}


async def test_list_promotions_newest_first_filtered_and_limited(store: Store) -> None:
    first = await store.record_promotion("orders", "v1", "v2", "one", "a")
    second = await store.record_promotion("ai", "v1", "v2", "two", "b")
    third = await store.record_promotion("orders", "v2", "v1", "three", "c")
    assert [r.id for r in await store.list_promotions()] == [third.id, second.id, first.id]
    assert [r.reason for r in await store.list_promotions("orders")] == ["three", "one"]
    assert [r.reason for r in await store.list_promotions(limit=1)] == ["three"]
    stored = (await store.list_promotions("ai"))[0]
    assert stored == second and stored.at.tzinfo is not None


async def test_bad_side_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="to_side"):
        await store.record_promotion("orders", "v1", "v3", "typo", "alice")
    assert await store.list_promotions() == []


async def test_two_stores_on_one_database_share_promotions(database: Database) -> None:
    worker_a = await database.open()
    worker_b = await database.open()
    try:
        await worker_a.record_promotion("orders", "v1", "v2", "promote", "alice")
        assert await worker_b.get_primaries() == {"orders": "v2"}
        await worker_b.record_promotion("orders", "v2", "v1", "roll back", "bob")
        assert await worker_a.get_primaries() == {"orders": "v1"}
        assert [r.actor for r in await worker_a.list_promotions()] == ["bob", "alice"]
    finally:
        await worker_a.close()
        await worker_b.close()


async def test_persisted_across_reopen(database: Database) -> None:
    first = await database.open()
    await first.record_promotion("ai", "v1", "v2", "cheaper provider", "alice")
    await first.close()
    again = await database.open()
    try:
        assert await again.get_primaries() == {"ai": "v2"}
    finally:
        await again.close()


async def test_workers_starting_together_both_migrate_and_agree(database: Database) -> None:
    stores = await asyncio.gather(database.open(), database.open(), database.open())
    try:
        await stores[0].record_promotion("products", "v1", "v2", "promote", "alice")
        assert [await s.get_primaries() for s in stores] == [{"products": "v2"}] * 3
    finally:
        for opened in stores:
            await opened.close()
