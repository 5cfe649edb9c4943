"""Persists learned id pairs and shares them: a restarted proxy still sends `GET /posts/7` to the shadow's own post,
and with several workers, a create answered by one worker is known to the others within `interval`.

Pairs go to the store as `IdPair` values (`Store.save_id_pairs`), with the creates they settle
(`proxy.dataplane.shared_ids`), through an outbox (`diffs.storage.outbox`): kept and retried while the store is
down, and counted in `shadowdiff_id_pairs_total{outcome}` (queued, written, retried, dropped_*), so none is lost
without a number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import structlog
from prometheus_client import CollectorRegistry, Counter

from diffs.id_pairs import IdPair
from diffs.storage import Store
from diffs.storage.outbox import Outbox
from diffs.storage.store import Settled
from proxy.dataplane.correlation import IdCorrelator

log = structlog.get_logger("shadowdiff.correlation")


class CorrelationStore:
    """Loads a correlator's pairs at start-up and saves each create's new pairs in the background."""

    def __init__(self, store: Store, correlator: IdCorrelator, *, registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.correlator = correlator
        self._tasks: set[asyncio.Task[None]] = set()
        counter = (
            None
            if registry is None
            else Counter(
                "shadowdiff_id_pairs",
                "Id pairs learned from mirrored creates, by what became of them on their way to the store.",
                ("outcome",),
                registry=registry,
            )
        )
        self.outbox: Outbox[IdPair | Settled] = Outbox(
            self._write,
            name="id-pairs",
            on_count=None if counter is None else lambda outcome, n: counter.labels(outcome).inc(n),
        )
        correlator.on_pairs = self.save

    async def load(self, services: Iterable[str]) -> int:
        """Learn the newest stored pairs of these services; returns how many."""
        pairs = await self.store.load_id_pairs(services=tuple(services), limit=self.correlator.pairs.capacity)
        self.correlator.pairs.remember(pairs)
        return len(pairs)

    def share(self, services: Iterable[str], interval: float, *, newest: int = 1000) -> None:
        """With several workers: every `interval` seconds, learn the newest pairs other workers saved."""
        names = tuple(services)

        async def refresh() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    pairs = await self.store.load_id_pairs(services=names, limit=newest)
                except Exception as exc:  # keep serving with what is known; the next round tries again
                    log.warning("cannot read id pairs", error=str(exc))
                    continue
                self.correlator.pairs.remember(pairs)

        task = asyncio.get_running_loop().create_task(refresh(), name="shadowdiff-correlation-share")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def save(self, pairs: list[IdPair]) -> None:
        self.outbox.put(pairs)

    async def _write(self, items: Sequence[IdPair | Settled]) -> None:
        pairs = [item for item in items if isinstance(item, IdPair)]
        settled = [item for item in items if isinstance(item, Settled)]
        await self.store.save_id_pairs(pairs, settled=settled)

    async def aclose(self, timeout: float = 5.0) -> None:
        for task in self._tasks:
            if task.get_name() == "shadowdiff-correlation-share":
                task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.outbox.aclose(timeout)
