"""The comparison pipeline behind the proxy: bounded queue → `Comparer` → `BatchWriter` → store, with its metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import structlog
from prometheus_client import Counter, Gauge

from diffs.comparer import Comparer
from diffs.exchange import Comparison, Exchange, Outcome
from diffs.id_pairs import IdPairs, correlated
from diffs.resources import IdNaming
from diffs.storage import Store
from diffs.storage.writer import BatchWriter
from diffs.templating import LearnedTemplate
from proxy.config import Settings
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.sink import QueueSink

log = structlog.get_logger("shadowdiff.comparing")

# Bounds on what waits in memory, per worker. A saturated loop or a slow store then drops (and counts) instead of
# growing: the writer keeps up with a few hundred rows pending, so these are headroom for bursts, not a buffer.
QUEUE_BYTES = 8 * 1024 * 1024
"""Bodies held by exchanges waiting to be compared (at least four of the largest, 4 × max_response_body)."""
STORE_PENDING = 5_000
"""Comparisons (each with its exchange's bodies) waiting to be stored."""
STORE_BATCH = 2_000
"""Rows per transaction at most. A batch's time under load is mostly round trips to SQLite's thread, each waiting
for a busy event loop to give up the GIL (measured, 1 worker at saturation: ~145 ms for 500 rows), so batches of 500
capped the writer near 3,400 rows/s and its backlog grew; batches that take whatever is pending keep it near 1,000."""
STORE_DELAY = 0.02
"""Seconds a row waits for more to share its batch, below saturation. A batch's rows are prepared on the loop that
serves requests (~13 µs a row), so one batch every 0.2 s at 2,600 req/s held the loop ~10 ms at a time and was most
of the p99 at concurrency 1 (6 ms; measured with a loop-lag probe). Every 20 ms: p99 ~1.8 ms, same CPU per request
within this machine's run-to-run spread."""


class ComparisonSink:
    """Compares each exchange off the request path and stores the verdict; every drop is counted and, where it can
    be, written as a `dropped` row so reports never silently undercount."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: ProxyMetrics,
        *,
        pairs: IdPairs | None = None,
        marks_refresh_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.pairs = pairs
        """The id pairs that say which differing values are one record's ids on both sides."""
        self._namings: dict[str, IdNaming] = {}
        self.store = store
        self.metrics = metrics
        self.marks_refresh_seconds = marks_refresh_seconds or settings.state_refresh_seconds
        """How often noise marks and learned templates are re-read (so workers agree within it)."""
        self.comparer = Comparer(
            settings.services, learn_after=settings.learn_templates_after, max_endpoints=settings.max_endpoints
        )
        self.writer = BatchWriter(
            store, max_batch=STORE_BATCH, max_delay=STORE_DELAY, max_pending=STORE_PENDING, on_drop=self._store_dropped
        )
        self.queue = QueueSink(
            self._handle,
            maxsize=settings.queue_size,
            max_bytes=max(QUEUE_BYTES, 4 * settings.max_response_body),
        )
        self.comparisons = Counter(
            "shadowdiff_comparisons",
            "Compared exchanges by outcome (match, diff, shadow_error, skipped, dropped).",
            ("service", "endpoint", "outcome"),
            registry=metrics.registry,
        )
        self.field_diffs = Counter(
            "shadowdiff_field_diffs",
            "Field differences found, by whether they were noise.",
            ("service", "endpoint", "noise"),
            registry=metrics.registry,
        )
        backlog = Gauge(
            "shadowdiff_comparison_backlog",
            "Exchanges waiting to be compared (queue) and comparisons waiting to be stored (store).",
            ("stage",),
            registry=metrics.registry,
        )
        backlog.labels("queue").set_function(lambda: self.queue.pending)
        backlog.labels("store").set_function(lambda: self.writer.pending)
        self._counters: dict[tuple[str, str, str], Counter] = {}
        self._marks_task: asyncio.Task[None] | None = None
        self._saving: set[asyncio.Task[None]] = set()

    def submit(self, exchange: Exchange) -> bool:
        if self.queue.submit(exchange):
            return True
        # The queue is full: keep a summary row of what was not compared (the writer has its own bound).
        self._record(Comparison(exchange, self.comparer.endpoint(exchange), Outcome.DROPPED))
        return False

    def _handle(self, exchange: Exchange) -> None:
        self._record(self._discount_correlated_ids(self.comparer.compare(exchange)))
        learned = self.comparer.learned()
        if learned:
            self._save_learned(learned)

    def _save_learned(self, learned: list[LearnedTemplate]) -> None:
        """Share new template positions (rare: once per position) so every process names requests alike."""

        async def save() -> None:
            try:
                await self.store.save_learned_templates(learned)
            except Exception as exc:  # known here either way; another process learns them from its own traffic
                log.warning("cannot save learned templates", count=len(learned), error=str(exc))

        task = asyncio.get_running_loop().create_task(save())
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    def _discount_correlated_ids(self, comparison: Comparison) -> Comparison:
        """An id the shadow generated for the primary's (post 7 here is post 1007 there) is expected, not a finding."""
        pairs, exchange = self.pairs, comparison.exchange
        if pairs is None or comparison.outcome is not Outcome.DIFF or exchange.shadow is None:
            return comparison
        service = exchange.service
        naming = self._namings.get(service)
        if naming is None:
            config = self.settings.services.get(service) or self.settings.services["default"]
            naming = self._namings[service] = config.naming()
        sides = {"service": service, "primary_side": exchange.primary.app, "shadow_side": exchange.shadow.app}
        diffs = tuple(
            dataclasses.replace(d, noise=True)
            if not d.noise and correlated(d, pairs=pairs, naming=naming, **sides)
            else d
            for d in comparison.diffs
        )
        outcome = Outcome.DIFF if any(not d.noise for d in diffs) else Outcome.MATCH
        return dataclasses.replace(comparison, diffs=diffs, outcome=outcome)

    def _record(self, comparison: Comparison) -> None:
        service, endpoint = comparison.exchange.service, comparison.endpoint
        key = (service, endpoint, comparison.outcome.value)
        counter = self._counters.get(key)
        if counter is None:
            # `labels()` costs a few µs an exchange; the children are as bounded as the labels (templated endpoints).
            counter = self._counters[key] = self.comparisons.labels(*key)
        self.metrics.count(counter)
        if comparison.diffs:
            noise = sum(1 for d in comparison.diffs if d.noise)
            if noise:
                self.field_diffs.labels(service, endpoint, "true").inc(noise)
            if len(comparison.diffs) > noise:
                self.field_diffs.labels(service, endpoint, "false").inc(len(comparison.diffs) - noise)
        self.writer.submit(comparison)

    def _store_dropped(self, count: int, reason: str) -> None:
        self.metrics.dropped.labels(f"store_{reason}").inc(count)

    async def start(self) -> None:
        await self._refresh_marks()
        self.writer.start()
        await self.queue.start()
        self._marks_task = asyncio.get_running_loop().create_task(self._marks_loop(), name="shadowdiff-noise-marks")

    async def _refresh_marks(self) -> None:
        """Noise marks and the template positions other processes learned, from the store."""
        try:
            marks = await self.store.list_noise_marks()
            learned = await self.store.load_learned_templates()
        except Exception as exc:  # the store being down must not stop comparisons; the last marks stay
            log.warning("cannot read noise marks or learned templates", error=str(exc))
            return
        self.comparer.set_marks((mark.endpoint, mark.path) for mark in marks)
        self.comparer.learn(learned)

    async def _marks_loop(self) -> None:
        while True:
            await asyncio.sleep(self.marks_refresh_seconds)
            await self._refresh_marks()

    async def aclose(self, timeout: float) -> None:
        if self._marks_task is not None:
            self._marks_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._marks_task
        await self.queue.aclose(timeout)
        await self.writer.aclose(timeout)
        if self._saving:
            await asyncio.gather(*list(self._saving), return_exceptions=True)
