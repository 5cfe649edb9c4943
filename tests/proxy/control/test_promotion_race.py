"""Two admin planes (two processes, two stores) changing the same service at once, and promotions pushed to others."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from diffs.storage import PromotionRecord, Store
from proxy.config import load_settings
from proxy.control.promotion import PrimaryState
from tests.databases import sqlite_or_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    async with sqlite_or_postgres(request, tmp_path / "race.db") as found:
        yield found


class Interleaved:
    """A store whose next read of the primaries waits for the other admin plane's: both decide on the same state."""

    def __init__(self, store: Store, barrier: asyncio.Barrier) -> None:
        self.store = store
        self.barrier = barrier
        self.hold = False

    async def get_primaries(self) -> dict[str, str]:
        primaries = await self.store.get_primaries()
        if self.hold:
            self.hold = False
            await self.barrier.wait()
        return primaries

    async def record_promotion(self, *args: Any, **options: Any) -> PromotionRecord:
        return await self.store.record_promotion(*args, **options)

    async def list_promotions(self, service: str | None = None, limit: int = 100) -> list[PromotionRecord]:
        return await self.store.list_promotions(service, limit)


@contextlib.asynccontextmanager
async def two_planes(database: tuple[str, str | None]) -> AsyncIterator[tuple[Interleaved, Interleaved, Store]]:
    url, schema = database
    first, second = await Store.open(url, schema=schema), await Store.open(url, schema=schema)
    barrier = asyncio.Barrier(2)
    try:
        yield Interleaved(first, barrier), Interleaved(second, barrier), first
    finally:
        await first.close()
        await second.close()


async def test_two_admin_planes_promoting_at_once_record_one_change(database: tuple[str, str | None]) -> None:
    services = load_settings(environ={}).services
    async with two_planes(database) as (a, b, store):
        plane_a, plane_b = PrimaryState(services, a), PrimaryState(services, b)
        a.hold = b.hold = True  # both read "v1" before either records
        changes = await asyncio.gather(
            plane_a.promote("orders", "v2", reason="", actor="ada"),
            plane_b.promote("orders", "v2", reason="", actor="bob"),
        )
        assert sorted(c.changed for c in changes) == [False, True]
        assert all(c.primary == "v2" for c in changes)
        trail = await store.list_promotions("orders")
        assert [(r.from_side, r.to_side) for r in trail] == [("v1", "v2")]


async def test_two_rollbacks_racing_record_one(
    database: tuple[str, str | None],
) -> None:
    services = load_settings(environ={}).services
    async with two_planes(database) as (a, b, store):
        await store.record_promotion("orders", "v1", "v2", "", "ada")
        plane_a, plane_b = PrimaryState(services, a), PrimaryState(services, b)
        a.hold = b.hold = True
        await asyncio.gather(
            plane_a.rollback("orders", reason="", actor="ada"),
            plane_b.rollback("orders", reason="", actor="bob"),
        )
        trail = [(r.from_side, r.to_side) for r in reversed(await store.list_promotions("orders"))]
        # Both decided on "v2": one rollback is recorded, the other finds V1 back and records nothing.
        assert trail == [("v1", "v2"), ("v2", "v1")]


async def test_a_promotion_reaches_another_process_by_the_feed_without_waiting_for_its_refresh(
    database: tuple[str, str | None],
) -> None:
    url, schema = database
    admin_store, worker_store = await Store.open(url, schema=schema), await Store.open(url, schema=schema)
    services = load_settings(environ={}).services
    admin = PrimaryState(services, admin_store)
    worker = PrimaryState(services, worker_store, refresh_seconds=600)  # only the feed can tell it in time
    await worker.start()
    try:
        assert worker_store.feed.mode == ("listen" if schema else "poll")
        began = time.monotonic()
        await admin.promote("products", "v2", reason="", actor="ada")
        while worker.primary("products") != "v2" and time.monotonic() - began < 10:
            await asyncio.sleep(0.005)
        assert worker.primary("products") == "v2"  # pushed: its own re-read is 10 minutes away
    finally:
        await worker.aclose()
        await admin_store.close()
        await worker_store.close()
