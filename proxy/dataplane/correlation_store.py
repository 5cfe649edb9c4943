"""Persists learned id pairs and shares them: a restarted proxy still sends `GET /posts/7` to the shadow's own post,
and with several workers, a create answered by one worker is known to the others within `interval`.

Pairs go to the store as `IdPair` values (`Store.save_id_pairs`), the same unit a push channel would carry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

from diffs.id_pairs import IdPair
from diffs.storage import Store
from proxy.dataplane.correlation import IdCorrelator

log = structlog.get_logger("shadowdiff.correlation")


class CorrelationStore:
    """Loads a correlator's pairs at start-up and saves each create's new pairs in the background."""

    def __init__(self, store: Store, correlator: IdCorrelator) -> None:
        self.store = store
        self.correlator = correlator
        self._tasks: set[asyncio.Task[None]] = set()
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
        task = asyncio.get_running_loop().create_task(self._save(pairs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save(self, pairs: list[IdPair]) -> None:
        try:
            await self.store.save_id_pairs(pairs)
        except Exception as exc:  # the in-memory map still has them; only a restart would forget
            log.warning("cannot persist id pairs", count=len(pairs), error=str(exc))

    async def aclose(self) -> None:
        for task in self._tasks:
            if task.get_name() == "shadowdiff-correlation-share":
                task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
