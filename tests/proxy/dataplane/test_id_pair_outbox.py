"""Id pairs learned while the store is down reach it when it is back, and are counted on the way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from diffs.id_pairs import IdPair
from diffs.storage import Store, StoreUnavailable
from diffs.storage.store import Settled
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.correlation_store import CorrelationStore


class DownThenUp(Store):
    down = True

    async def save_id_pairs(self, pairs: Sequence[IdPair], *, settled: Sequence[Settled] = ()) -> None:
        if self.down:
            raise StoreUnavailable("database unavailable: the database system is shutting down")
        await super().save_id_pairs(pairs, settled=settled)


async def test_pairs_learned_during_an_outage_are_kept_retried_and_counted(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    store.__class__ = DownThenUp
    registry = CollectorRegistry()
    pairs = CorrelationStore(store, IdCorrelator(1000), registry=registry)
    pairs.outbox.max_backoff = 0.02
    try:
        for n in range(200):
            pairs.save([IdPair("orders", "/orders", "v1", n, "v2", 1000 + n)])
        await asyncio.sleep(0.1)
        assert registry.get_sample_value("shadowdiff_id_pairs_total", {"outcome": "retried"}) > 0
        assert pairs.outbox.pending == 200
        DownThenUp.down = False
        await asyncio.wait_for(pairs.outbox.flush(), 5)
        assert len(await store.load_id_pairs(services=["orders"])) == 200
        assert registry.get_sample_value("shadowdiff_id_pairs_total", {"outcome": "written"}) == 200
        assert registry.get_sample_value("shadowdiff_id_pairs_total", {"outcome": "dropped_full"}) is None
    finally:
        await pairs.aclose()
        await store.close()
