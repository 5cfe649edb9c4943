"""Id pairs and pending creates shared with every process (workers and replicas) through the store's state feed.

Causal order (`ordering`) makes a mirrored request wait for the creates *this* process sent; across processes:

- **Pending creates are announced before the client sees them.** When the primary answers a mirrored create, its
  new ids are published (`Store.announce_creates`, a feed event) before the response goes to the client, bounded by
  `announce_seconds`: a client that reads the new record at once, through any worker of any replica, reaches a
  process that can know of it. Past the bound the response goes anyway (`outcome="announce_late"`).
- **A request naming an id with no pair asks before guessing.** The process first hears every event committed
  before the request arrived (`Feed.sync`: nothing to do when a read started since has been delivered, else one
  shared read), then waits (bounded by `wait_seconds`, the causal-order bound) for any create of that id still
  pending elsewhere: also the very first create of a resource this process had never heard of.
- **Pairs and settled creates are pushed.** When the shadow answers a create, its pairs (maybe none: the same id on
  both sides, or a failed create) go through the outbox to the store with the create marked settled, and every
  process learns them from the feed at once.

Counted in `shadowdiff_id_sharing_total{outcome}`: announced, announce_late, announce_failed, synced, sync_late,
waited, wait_timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from diffs.id_pairs import IdPair, id_text
from diffs.resources import Resource
from diffs.storage import Store
from diffs.storage.feed import ID_PAIRS, ID_PENDING, Event
from diffs.storage.store import Settled, id_from_event
from proxy.dataplane.correlation import Created, IdCorrelator
from proxy.dataplane.correlation_store import CorrelationStore

log = structlog.get_logger("shadowdiff.correlation")
_Key = tuple[str, str, str, str]
"""(service, resource collection, from side, id text)."""


class SharedIds:
    """One process's side of the sharing: announces its creates, settles them, and waits for the others'."""

    def __init__(
        self,
        store: Store,
        correlations: CorrelationStore,
        *,
        wait_seconds: float,
        announce_seconds: float = 0.25,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.correlations = correlations
        self.correlator: IdCorrelator = correlations.correlator
        self.wait_seconds = wait_seconds
        self.announce_seconds = announce_seconds
        self._pending: dict[_Key, tuple[float, asyncio.Event]] = {}
        self._counter = (
            None
            if registry is None
            else Counter(
                "shadowdiff_id_sharing",
                "Id pairs and pending creates shared between processes, by outcome.",
                ("outcome",),
                registry=registry,
            )
        )
        self.counts: dict[str, int] = {}
        self.correlator.on_settled = self.settled

    async def start(self) -> None:
        """Follow the feed (before the pairs are loaded, so nothing committed in between is missed)."""
        await self.store.follow(ID_PENDING, self._pending_event)
        await self.store.follow(ID_PAIRS, self._pairs_event)

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self._counter is not None:
            self._counter.labels(outcome).inc()

    # -- this process's creates ---------------------------------------------------------------------------------------

    async def announce(self, service: str, from_side: str, created: Created) -> None:
        """Before the client sees a create's ids: tell every process they are pending (bounded, never raises)."""
        entries = [Settled(service, r.collection, from_side, value) for r, value in created.values()]
        try:
            async with asyncio.timeout(self.announce_seconds):
                await self.store.announce_creates(entries)
        except TimeoutError:
            self._count("announce_late")  # it still lands: the client just was not held for it
        except Exception as exc:
            self._count("announce_failed")
            log.warning("cannot announce a create to the other processes", error=str(exc))
        else:
            self._count("announced")

    def settled(self, service: str, from_side: str, created: Created, pairs: list[IdPair]) -> None:
        """The shadow answered one of this process's creates: release local waiters, tell the others."""
        entries = [Settled(service, r.collection, from_side, value) for r, value in created.values()]
        for entry in entries:
            self._release(entry.service, entry.resource, entry.from_side, entry.from_id)
        self.correlations.outbox.put(entries)

    # -- the others' creates ------------------------------------------------------------------------------------------

    async def resolve(
        self, service: str, from_side: str, misses: Sequence[tuple[Resource, object]], arrived: float
    ) -> bool:
        """Before rewriting a request that names ids with no known pair: hear every create committed before the
        request `arrived` (monotonic), and wait (bounded) for those still pending elsewhere.

        Whatever the resource: the first create of a resource this process never heard of was announced before its
        client saw the new id too, so it may be pending although nothing here knows the resource yet. Hearing the
        feed is free when a read that started after the request arrived has already been delivered; otherwise it
        is one shared read of the feed, on the mirrored path only.

        False when the bound ran out first (the feed was not heard in time, or a create was still pending): the
        request then names ids this process could not resolve, and its comparison may show a race."""
        feed = self.store.feed
        if not misses:
            return True
        in_time = True
        deadline = time.monotonic() + self.wait_seconds
        if feed.heard_from < arrived:
            if await feed.sync(after=arrived, timeout=self.wait_seconds):
                self._count("synced")
            else:
                self._count("sync_late")
                in_time = False
        for resource, value in misses:
            text = id_text(value)
            pending = None if text is None else self._pending.get((service, resource.collection, from_side, text))
            if pending is None:
                continue
            expires, event = pending
            try:
                async with asyncio.timeout(max(0.0, min(deadline, expires) - time.monotonic())):
                    await event.wait()
            except TimeoutError:
                self._count("wait_timeout")
                in_time = False
            else:
                self._count("waited")
        return in_time

    async def _pending_event(self, event: Event) -> None:
        expires = time.monotonic() + self.wait_seconds
        for service, resource, from_side, value in event.payload.get("pending", ()):
            text = id_text(id_from_event(value))
            if text is None:
                continue
            self.correlator.pairs.add_resource(service, Resource(resource))
            key = (service, resource, from_side, text)
            if key not in self._pending:
                self._pending[key] = (expires, asyncio.Event())
        self._expire()

    async def _pairs_event(self, event: Event) -> None:
        payload: dict[str, Any] = dict(event.payload)
        pairs = [
            IdPair(service, resource, a, id_from_event(x), b, id_from_event(y))
            for service, resource, a, x, b, y in payload.get("pairs", ())
        ]
        if pairs:
            self.correlator.pairs.remember(pairs)
        for service, resource, from_side, value in payload.get("settled", ()):
            self._release(service, resource, from_side, id_from_event(value))

    def _release(self, service: str, resource: str, from_side: str, value: object) -> None:
        text = id_text(value)
        found = None if text is None else self._pending.pop((service, resource, from_side, text), None)
        if found is not None:
            found[1].set()

    def _expire(self) -> None:
        if len(self._pending) < 1024:
            return
        now = time.monotonic()
        for key, (expires, event) in list(self._pending.items()):
            if expires < now:
                event.set()
                del self._pending[key]
