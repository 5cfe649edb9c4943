"""proxy.dataplane.correlation_store: id pairs persisted with their resources and types, and shared by workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from diffs.id_pairs import IdPair
from diffs.resources import Resource
from diffs.storage import Store
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.correlation_store import CorrelationStore

ORDERS = Resource("/api/orders")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    yield opened
    await opened.close()


async def test_learned_pairs_survive_a_restart_with_their_resources_and_types(store: Store) -> None:
    first = IdCorrelator(100)
    saver = CorrelationStore(store, first)
    saver.save([IdPair("orders", "/api/orders", "v1", 7, "v2", 1007), IdPair("orders", "/c", "v1", 7, "v2", "x9")])
    await saver.aclose()

    second = IdCorrelator(100)
    assert await CorrelationStore(store, second).load(["orders", "products"]) == 2
    assert second.pairs.lookup("orders", "/api/orders", "v1", "v2", 7) == 1007  # an int again
    assert second.pairs.lookup("orders", "/c", "v1", "v2", "7") == "x9"  # each pair with its own resource
    assert second.pairs.lookup("orders", "/api/orders", "v2", "v1", 1007) == 7
    assert await CorrelationStore(store, IdCorrelator(100)).load(["products"]) == 0


async def test_workers_learn_each_others_pairs(store: Store) -> None:
    one, other = IdCorrelator(100), IdCorrelator(100)
    writer, reader = CorrelationStore(store, one), CorrelationStore(store, other)
    reader.share(["orders"], 0.05)
    one.learn("orders", {"id": (ORDERS, 7)}, "v1", {"id": (ORDERS, 1007)}, "v2")  # saves through the hook
    await writer.aclose()
    for _ in range(100):
        if other.pairs.lookup("orders", "/api/orders", "v1", "v2", 7) is not None:
            break
        await asyncio.sleep(0.02)
    await reader.aclose()
    assert other.pairs.lookup("orders", "/api/orders", "v1", "v2", 7) == 1007
