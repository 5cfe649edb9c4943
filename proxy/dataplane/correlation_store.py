"""Persists learned id pairs so a restarted proxy still sends `GET /api/orders/7` to the shadow's own order.

New pairs go through an outbox (`diffs.storage.outbox`): kept and retried while the store is down, and counted in
`shadowdiff_id_pairs_total{outcome}` (queued, written, retried, dropped_*), so none is lost without a number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter

from diffs.storage import Store
from diffs.storage.outbox import Outbox
from proxy.dataplane.correlation import IdCorrelator, IdValue, Pairs

log = structlog.get_logger("shadowdiff.correlation")


def _encode(value: IdValue) -> str:
    # JSON text keeps the type: an int id must come back an int, or rewritten JSON bodies would change type.
    return orjson.dumps(value).decode()


def _decode(text: str) -> IdValue:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, int | str) and not isinstance(value, bool) else text


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
        self.outbox: Outbox[tuple[str, str, str]] = Outbox(
            self._write,
            name="id-pairs",
            on_count=None if counter is None else lambda outcome, n: counter.labels(outcome).inc(n),
        )
        correlator.on_pairs = self.save

    async def load(self, services: Iterable[str]) -> int:
        loaded = 0
        for service in services:
            rows = await self.store.load_correlations(service, limit=self.correlator.capacity)
            self.correlator.remember(service, [(_decode(p), _decode(s)) for p, s in rows])
            loaded += len(rows)
        return loaded

    def share(self, services: Iterable[str], interval: float, *, newest: int = 1000) -> None:
        """With several workers: every `interval` seconds, learn the newest pairs other workers saved."""
        names = tuple(services)

        async def refresh() -> None:
            while True:
                await asyncio.sleep(interval)
                for service in names:
                    try:
                        rows = await self.store.load_correlations(service, limit=newest)
                    except Exception as exc:  # keep serving with what is known; the next round tries again
                        log.warning("cannot read id correlations", service=service, error=str(exc))
                        break
                    self.correlator.remember(service, [(_decode(p), _decode(s)) for p, s in rows])

        task = asyncio.get_running_loop().create_task(refresh(), name="shadowdiff-correlation-share")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def save(self, service: str, pairs: Pairs) -> None:
        self.outbox.put((service, _encode(p), _encode(s)) for p, s in pairs)

    async def _write(self, items: Sequence[tuple[str, str, str]]) -> None:
        by_service: dict[str, list[tuple[str, str]]] = {}
        for service, primary_id, shadow_id in items:
            by_service.setdefault(service, []).append((primary_id, shadow_id))
        for service, pairs in by_service.items():
            await self.store.save_correlations(service, pairs)

    async def aclose(self, timeout: float = 5.0) -> None:
        for task in self._tasks:
            if task.get_name() == "shadowdiff-correlation-share":
                task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.outbox.aclose(timeout)
