"""proxy.dataplane.correlation_store: learned id pairs survive a restart and reach the other workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from diffs.storage import Store
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.correlation_store import CorrelationStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    yield opened
    await opened.close()


async def test_learned_id_pairs_survive_a_restart_with_their_types(store: Store) -> None:
    first = IdCorrelator(100, 0.1)
    saver = CorrelationStore(store, first)
    saver.save("orders", [(7, 1007), ("ORD-1", "ORD-9")])
    await saver.aclose()

    second = IdCorrelator(100, 0.1)
    assert await CorrelationStore(store, second).load(["orders", "products"]) == 2
    assert second.lookup("orders", 7) == 1007  # an int again, so rewritten JSON bodies keep their types
    assert second.lookup("orders", "ORD-1") == "ORD-9"
    assert second.lookup("products", 7) is None


async def test_workers_learn_each_others_pairs(store: Store) -> None:
    one, other = IdCorrelator(100, 0.1), IdCorrelator(100, 0.1)
    writer, reader = CorrelationStore(store, one), CorrelationStore(store, other)
    reader.share(["orders"], 0.05)
    writer.save("orders", [(7, 1007)])
    await writer.aclose()
    for _ in range(100):
        if other.lookup("orders", 7) is not None:
            break
        await asyncio.sleep(0.02)
    await reader.aclose()
    assert other.lookup("orders", 7) == 1007
