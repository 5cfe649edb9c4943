"""The batch writer: every comparison is counted into in-memory rollups at once, and written in the background.

`submit` never waits. It adds the comparison to a `RollupBuffer` (per key and minute, so its memory grows with
endpoints and minutes, not with traffic) and, when retention keeps it as an example, queues it. One task writes the
rollups every `rollup_every` seconds and the examples in batches (`max_batch` at a time, or after `max_delay`).

Faults: while the database is unavailable (`StoreUnavailable`: down, locked, full, shutting down), rollups stay in
the buffer and are retried with backoff for as long as it takes, so an outage loses no count; only a buffer past
`max_rollup_keys` keys refuses new ones. Examples are retried until the oldest has waited `retry_for` seconds, then
dropped (the exchanges stay counted in the rollups). A write the database refuses outright is isolated: examples
by halves down to the bad row, rollups as a whole. Every exchange that is not counted is counted as dropped
(`dropped_rows`, `drops[reason]`, `on_drop(n, reason)`) and logged — never lost silently. Reasons: "buffer_full",
"rejected", "shutdown" (not written by the end of `aclose`'s timeout). `failing_since` says since when writes fail
(`on_health` hears every change), which the readiness endpoint judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from diffs.exchange import Comparison
from diffs.rollups import Cell, RollupBuffer, RollupKey
from diffs.storage.engine import StoreUnavailable
from diffs.storage.retention import ExampleKey

log = logging.getLogger(__name__)

OnDrop = Callable[[int, str], None]
OnHealth = Callable[[float | None], None]
Example = tuple[Comparison, tuple[ExampleKey, ...]]


class BatchSink(Protocol):
    """What the writer needs from `Store`."""

    def choose_examples(self, comparison: Comparison) -> tuple[ExampleKey, ...]: ...

    async def write(self, examples: Sequence[Example] = (), cells: Mapping[RollupKey, Cell] | None = None) -> None: ...

    async def recover(self) -> None: ...


class BatchWriter:
    """Counts comparisons into rollups at once and writes rollups and examples in the background."""

    def __init__(
        self,
        store: BatchSink,
        *,
        max_batch: int = 500,
        max_delay: float = 0.2,
        max_pending: int = 5_000,
        retry_for: float = 30.0,
        max_backoff: float = 2.0,
        rollup_every: float = 1.0,
        max_rollup_keys: int = 100_000,
        on_drop: OnDrop | None = None,
        on_health: OnHealth | None = None,
        on_example_drop: OnDrop | None = None,
    ) -> None:
        if max_batch < 1 or max_pending < 1 or max_rollup_keys < 1:
            raise ValueError("max_batch, max_pending and max_rollup_keys must be at least 1")
        self._store = store
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_pending = max_pending
        self.retry_for = retry_for
        self.max_backoff = max_backoff
        self.rollup_every = rollup_every
        self.on_drop = on_drop
        self.on_health = on_health
        self.on_example_drop = on_example_drop
        self.written_rows = 0
        """Exchanges whose counts are in the database."""
        self.written_examples = 0
        self.dropped_rows = 0
        self.drops: Counter[str] = Counter()
        self.example_drops: Counter[str] = Counter()
        """Examples not stored (their exchanges are still counted): "queue_full", "unavailable", "rejected"."""
        self._drop_events: Counter[str] = Counter()
        self.retries = 0
        self.failing_since: float | None = None
        """Wall-clock time of the first failed write since the last one that succeeded; None while writes succeed."""
        self._rollups = RollupBuffer(max_rollup_keys)
        self._rollups_since: float | None = None
        self._inflight_rollups = 0
        self._pending: deque[tuple[float, Example]] = deque()
        self._inflight = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flushing = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Exchanges accepted whose counts are not in the database yet (each is settled once they are; the writer
        settles them oldest first). Examples waiting are `examples_pending`."""
        return self._rollups.exchanges + self._inflight_rollups

    @property
    def examples_pending(self) -> int:
        return len(self._pending) + self._inflight

    def submit(self, comparison: Comparison) -> bool:
        """Count one comparison (and queue it when it is an example) without waiting; False when it was dropped."""
        if self._closing:
            self._drop(1, "shutdown")
            return False
        if not self._rollups.add(comparison):
            self._drop(1, "buffer_full", detail=f"more than {self._rollups.max_keys} rollup keys waiting")
            return False
        if self._rollups_since is None:
            self._rollups_since = time.monotonic()
            self._wakeup.set()  # an idle writer sleeps until told: the counts are due in `rollup_every`
        self._idle.clear()
        keys = self._store.choose_examples(comparison)
        if keys:
            if len(self._pending) >= self.max_pending:
                self._drop_example(1, "queue_full")
            else:
                self._pending.append((time.monotonic(), (comparison, keys)))
                if len(self._pending) == 1 or len(self._pending) >= self.max_batch:
                    self._wakeup.set()
        return True

    def start(self) -> None:
        """Start the writing task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shadowdiff-batch-writer")

    async def flush(self) -> None:
        """Write everything counted or queued so far (examples past `retry_for` are dropped), without waiting for
        the usual delays. While the database is down this waits for it."""
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
        lost = self._rollups.exchanges + self._inflight_rollups
        self._rollups.take()
        self._inflight_rollups = 0
        examples = len(self._pending) + self._inflight
        self._pending.clear()
        self._inflight = 0
        self._idle.set()
        if lost:
            self._drop(lost, "shutdown")
        if examples:
            self._drop_example(examples, "shutdown")

    # -- the writing task -------------------------------------------------------------------------------------------

    def _due(self, now: float) -> tuple[bool, bool, float]:
        """(examples due, rollups due, seconds until the next is due)."""
        urgent = self._closing or bool(self._flushing)
        wait = float("inf")
        examples = False
        if self._pending:
            due = self._pending[0][0] + self.max_delay - now
            examples = urgent or len(self._pending) >= self.max_batch or due <= 0
            wait = min(wait, due)
        rollups = False
        if self._rollups_since is not None:
            due = self._rollups_since + self.rollup_every - now
            rollups = urgent or due <= 0
            wait = min(wait, due)
        return examples, rollups, max(wait, 0.0)

    async def _run(self) -> None:
        backoff = min(0.05, self.max_backoff)
        while True:
            if not self._pending and self._rollups_since is None:
                self._healthy()  # nothing waits: whatever failed was written since, or let go (and counted)
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            examples_due, rollups_due, wait = self._due(time.monotonic())
            if not (examples_due or rollups_due):
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wakeup.wait()
                continue
            ok = await self._write_rollups() if rollups_due else True
            if ok and examples_due:
                ok = await self._write_examples()
            if ok:
                self._healthy()
                backoff = min(0.05, self.max_backoff)
            else:
                self._expire()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _expire(self) -> None:
        """While the store is down, drop the examples that waited past `retry_for` (bounded memory)."""
        deadline = time.monotonic() - self.retry_for
        expired = 0
        while self._pending and self._pending[0][0] < deadline:
            self._pending.popleft()
            expired += 1
        if expired:
            self._drop_example(expired, "unavailable", detail=f"not written within {self.retry_for:g}s")

    async def _write_rollups(self) -> bool:
        """One write of every buffered count; False when the store was unavailable (the counts are kept)."""
        cells = self._rollups.take()
        self._rollups_since = None
        exchanges = sum(cell.exchanges for cell in cells.values())
        self._inflight_rollups = exchanges
        try:
            await self._store.write(cells=cells)
        except asyncio.CancelledError:
            self._rollups.restore(cells)  # `_abandon` counts them
            raise
        except StoreUnavailable as exc:
            self._rollups.restore(cells)
            self._inflight_rollups = 0  # back in the buffer: counted once in `pending`, also while we recover
            self._rollups_since = time.monotonic()
            await self._failed(exc, f"{exchanges} exchanges' counts kept, retrying")
            return False
        except Exception:
            self._drop(exchanges, "rejected", detail=f"{len(cells)} rollup rows refused")
            return True
        finally:
            self._inflight_rollups = 0
        self.written_rows += exchanges
        return True

    async def _write_examples(self) -> bool:
        count = min(self.max_batch, len(self._pending))
        batch = [self._pending.popleft() for _ in range(count)]
        self._inflight = count
        try:
            return await self._deliver(batch)
        except asyncio.CancelledError:
            self._pending.extendleft(reversed(batch))  # `_abandon` counts them
            raise
        finally:
            self._inflight = 0

    async def _deliver(self, batch: list[tuple[float, Example]]) -> bool:
        try:
            await self._store.write([example for _, example in batch])
        except StoreUnavailable as exc:
            if time.monotonic() > batch[0][0] + self.retry_for:
                self._drop_example(len(batch), "unavailable", detail=f"not written within {self.retry_for:g}s: {exc}")
            else:
                self._pending.extendleft(reversed(batch))
            self._inflight = 0  # dropped or queued again: not in flight while we recover
            await self._failed(exc, f"{len(batch)} examples")
            return False
        except Exception:
            await self._isolate(batch)
            return True
        self.written_examples += len(batch)
        return True

    async def _isolate(self, batch: list[tuple[float, Example]]) -> None:
        """Examples the database refused (not merely unavailable): write halves apart, drop only the bad rows."""
        if len(batch) == 1:
            self._drop_example(1, "rejected", detail=f"exchange {batch[0][1][0].exchange.id}")
            return
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            try:
                await self._store.write([example for _, example in half])
            except StoreUnavailable:
                self._pending.extendleft(reversed(half))
            except Exception:
                await self._isolate(half)
            else:
                self.written_examples += len(half)

    async def _failed(self, exc: Exception, what: str) -> None:
        if self.failing_since is None:
            self.failing_since = time.time()
            log.warning("store unavailable (%s): %s", what, exc)
            if self.on_health is not None:
                self.on_health(self.failing_since)
        self.retries += 1
        with contextlib.suppress(Exception):
            await self._store.recover()  # SQLite: checkpoint, so space freed on a full disk is usable again

    def _healthy(self) -> None:
        if self.failing_since is not None:
            log.warning("store writable again after %.1fs", time.time() - self.failing_since)
            self.failing_since = None
            if self.on_health is not None:
                self.on_health(None)

    # -- counting what is lost --------------------------------------------------------------------------------------

    def _drop(self, count: int, reason: str, detail: str = "") -> None:
        self.dropped_rows += count
        self.drops[reason] += count
        self._log_drop("exchanges", count, reason, detail, self.drops[reason], self.dropped_rows)
        if self.on_drop is not None:
            try:
                self.on_drop(count, reason)
            except Exception:
                log.exception("on_drop hook failed")

    def _drop_example(self, count: int, reason: str, detail: str = "") -> None:
        self.example_drops[reason] += count
        total = sum(self.example_drops.values())
        self._log_drop("examples (still counted)", count, reason, detail, self.example_drops[reason], total)
        if self.on_example_drop is not None:
            try:
                self.on_example_drop(count, reason)
            except Exception:
                log.exception("on_example_drop hook failed")

    def _log_drop(self, what: str, count: int, reason: str, detail: str, for_reason: int, total: int) -> None:
        key = f"{what}:{reason}"
        self._drop_events[key] += 1
        events = self._drop_events[key]
        # A full queue can refuse thousands of rows a second: log each reason's 1st, 2nd, 4th, 8th... time only.
        if events & (events - 1) == 0:
            log.warning(
                "batch writer dropped %d %s (%s%s); %d dropped for this reason, %d in all",
                count,
                what,
                reason,
                f": {detail}" if detail else "",
                for_reason,
                total,
                exc_info=reason == "rejected",
            )
