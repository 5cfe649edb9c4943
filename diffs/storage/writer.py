"""The batch writer: callers hand comparisons over without waiting; one task writes them in batched transactions.

While the database is unavailable, a batch is retried with backoff until its oldest row has waited `retry_for`
seconds; then it is dropped. Every row that is not written is counted (`dropped_rows`, `drops[reason]`), reported to
`on_drop(n, reason)` and logged — never lost silently. Reasons: "queue_full" (submit refused), "unavailable"
(database down past `retry_for`), "rejected" (the database refused the row itself), "shutdown" (not written by the
end of `aclose`'s timeout; a row whose transaction was committing at that instant may be counted although written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Protocol

from diffs.exchange import Comparison
from diffs.storage.engine import StoreUnavailable

log = logging.getLogger(__name__)

OnDrop = Callable[[int, str], None]


class BatchSink(Protocol):
    """What the writer needs from `Store`."""

    async def write_batch(self, comparisons: Sequence[Comparison]) -> None: ...


class BatchWriter:
    """Buffers comparisons and writes them `max_batch` at a time, or after `max_delay` seconds, whichever is first."""

    def __init__(
        self,
        store: BatchSink,
        *,
        max_batch: int = 500,
        max_delay: float = 0.2,
        max_pending: int = 5_000,
        retry_for: float = 30.0,
        max_backoff: float = 2.0,
        on_drop: OnDrop | None = None,
    ) -> None:
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self._store = store
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_pending = max_pending
        self.retry_for = retry_for
        self.max_backoff = max_backoff
        self.on_drop = on_drop
        self.written_rows = 0
        self.dropped_rows = 0
        self.drops: Counter[str] = Counter()
        self._drop_events: Counter[str] = Counter()
        self.retries = 0
        self._pending: deque[tuple[float, Comparison]] = deque()
        self._inflight = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flushing = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Rows accepted and not yet written or dropped."""
        return len(self._pending) + self._inflight

    def submit(self, comparison: Comparison) -> bool:
        """Queue one comparison without waiting; False (and counted as "queue_full") when the queue is full."""
        if self._closing:
            self._drop(1, "shutdown")
            return False
        if len(self._pending) >= self.max_pending:
            self._drop(1, "queue_full")
            return False
        self._pending.append((time.monotonic(), comparison))
        self._idle.clear()
        if len(self._pending) == 1 or len(self._pending) >= self.max_batch:
            self._wakeup.set()
        return True

    def start(self) -> None:
        """Start the writing task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shadowdiff-batch-writer")

    async def flush(self) -> None:
        """Write (or drop) everything queued so far, without waiting for `max_delay`."""
        self._flushing += 1
        self._wakeup.set()
        try:
            await self._idle.wait()
        finally:
            self._flushing -= 1

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop accepting, write what can be written within `timeout` seconds, count the rest as dropped."""
        self._closing = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is None:
            self._abandon()
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._abandon()

    def _abandon(self) -> None:
        left = self.pending
        self._pending.clear()
        self._inflight = 0
        self._idle.set()
        if left:
            self._drop(left, "shutdown")

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            due = self._pending[0][0] + self.max_delay - time.monotonic()
            if len(self._pending) < self.max_batch and due > 0 and not (self._closing or self._flushing):
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due):
                        await self._wakeup.wait()
                continue
            count = min(self.max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(count)]
            self._inflight = count
            await self._deliver(batch)  # never raises but CancelledError, after which `_abandon` counts the batch
            self._inflight = 0

    async def _deliver(self, batch: list[tuple[float, Comparison]]) -> None:
        deadline = batch[0][0] + self.retry_for
        backoff = min(0.05, self.max_backoff)
        while True:
            try:
                await self._store.write_batch([c for _, c in batch])
            except StoreUnavailable as exc:
                now = time.monotonic()
                if now + backoff > deadline:
                    self._drop(len(batch), "unavailable", detail=f"not written within {self.retry_for:g}s: {exc}")
                    return
                if self.retries == 0 or backoff >= self.max_backoff:
                    log.warning("store unavailable, retrying a batch of %d rows: %s", len(batch), exc)
                self.retries += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception:
                await self._isolate(batch)
                return
            else:
                self.written_rows += len(batch)
                return

    async def _isolate(self, batch: list[tuple[float, Comparison]]) -> None:
        """A batch the database refused (not merely unavailable): write its halves apart, drop only the bad rows."""
        if len(batch) == 1:
            self._drop(1, "rejected", detail=f"exchange {batch[0][1].exchange.id}")
            return
        middle = len(batch) // 2
        await self._deliver(batch[:middle])
        await self._deliver(batch[middle:])

    def _drop(self, count: int, reason: str, detail: str = "") -> None:
        self.dropped_rows += count
        self.drops[reason] += count
        self._drop_events[reason] += 1
        events = self._drop_events[reason]
        # A full queue can refuse thousands of rows a second: log each reason's 1st, 2nd, 4th, 8th... time only.
        if events & (events - 1) == 0:
            log.warning(
                "batch writer dropped %d rows (%s%s); %d dropped for this reason, %d in all",
                count,
                reason,
                f": {detail}" if detail else "",
                self.drops[reason],
                self.dropped_rows,
                exc_info=reason == "rejected",
            )
        if self.on_drop is not None:
            try:
                self.on_drop(count, reason)
            except Exception:
                log.exception("on_drop hook failed")
