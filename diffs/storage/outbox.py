"""An outbox: writes that must not be lost (id pairs) queued in memory and retried until the store takes them.

`put` never waits. One task writes what is queued, `max_batch` at a time; while the store is unavailable it keeps
the items and retries with backoff. Items are lost only past `max_items` waiting (the oldest go) or when the store
refuses them outright, and then counted (`counts`, `on_count`) and logged, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, TypeVar

from diffs.storage.engine import StoreUnavailable
from diffs.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")
OUTCOMES = ("queued", "written", "retried", "dropped_full", "dropped_rejected", "dropped_shutdown")


class Outbox(Generic[T]):
    """A bounded, retrying queue in front of `write(items)`."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[None]],
        *,
        name: str,
        max_items: int = 100_000,
        max_batch: int = 1_000,
        max_backoff: float = 2.0,
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        self._write = write
        self.name = name
        self.max_items = max_items
        self.max_batch = max_batch
        self.max_backoff = max_backoff
        self.on_count = on_count
        self.counts: Counter[str] = Counter()
        self._items: deque[T] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._inflight = 0
        self._task: asyncio.Task[None] | None = None
        self.failing = False

    @property
    def pending(self) -> int:
        return len(self._items) + self._inflight

    def put(self, items: Iterable[T]) -> None:
        added = 0
        for item in items:
            if len(self._items) >= self.max_items:
                self._items.popleft()
                self._count("dropped_full", 1)
            self._items.append(item)
            added += 1
        if added:
            self._count("queued", added)
            self._idle.clear()
            self._wakeup.set()
            self.start()

    def start(self) -> None:
        if self._task is None:
            with contextlib.suppress(RuntimeError):  # no running loop: started by the next put or flush
                self._task = asyncio.get_running_loop().create_task(self._run(), name=f"shadowdiff-outbox-{self.name}")

    async def flush(self) -> None:
        """Until everything queued so far is written (or dropped)."""
        self.start()
        self._wakeup.set()
        await self._idle.wait()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Write what can be written within `timeout` seconds; count the rest as dropped."""
        if self._task is not None and self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._idle.wait()), timeout)
        task, self._task = self._task, None
        await cancel_and_wait(task)
        left = self.pending
        self._items.clear()
        self._inflight = 0
        self._idle.set()
        if left:
            self._count("dropped_shutdown", left)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._items:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._items.popleft() for _ in range(min(self.max_batch, len(self._items)))]
            self._inflight = len(batch)
            try:
                await self._write(batch)
            except StoreUnavailable as exc:
                self._items.extendleft(reversed(batch))
                self._count("retried", len(batch))
                if not self.failing:
                    log.warning("%s: store unavailable, keeping %d to retry: %s", self.name, self.pending, exc)
                self.failing = True
                self._inflight = 0
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            except Exception:
                self._count("dropped_rejected", len(batch))
                log.exception("%s: the store refused %d items", self.name, len(batch))
            else:
                self._count("written", len(batch))
                if self.failing:
                    log.warning("%s: written again", self.name)
                self.failing = False
            self._inflight = 0
            backoff = 0.05

    def _count(self, outcome: str, n: int) -> None:
        self.counts[outcome] += n
        if outcome.startswith("dropped") and (self.counts[outcome] == n or self.counts[outcome] % 1000 < n):
            log.warning("%s: %d items %s (%d in all)", self.name, n, outcome, self.counts[outcome])
        if self.on_count is not None:
            try:
                self.on_count(outcome, n)
            except Exception:
                log.exception("on_count hook failed")
