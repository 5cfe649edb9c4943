"""Inside the analysis process: exchange → `Comparer` → id pairs → `BatchWriter` → store, and the tallies the data
plane turns into metrics.

Id pairs (`diffs.id_pairs.IdPairs`) come from the data plane over the channel, ahead of the exchanges that show them
(this worker's creates), and from the store at start-up and every `state_refresh_seconds` (other workers' creates);
`diffs.id_pairs.correlated` decides which differing values are one record's ids on both sides. Template positions
the comparer learns are saved to the store, and those other processes learned are read back at the same pace, so
every process names requests alike.

Everything here runs in the analysis process, never on a loop that serves clients. What it has *settled* (written,
or dropped and counted) is reported as a watermark over the items it was handed, so that the data plane knows what
a process that dies took with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

import structlog

from diffs.comparer import Comparer
from diffs.exchange import Comparison, Exchange, Outcome
from diffs.id_pairs import IdPair, IdPairs, correlated
from diffs.resources import IdNaming
from diffs.storage import Store
from diffs.storage.feed import ID_PAIRS, LEARNED_TEMPLATES, NOISE_MARKS, Event
from diffs.storage.store import id_from_event
from diffs.storage.writer import BatchWriter
from diffs.templating import LearnedTemplate
from proxy.config import Settings

log = structlog.get_logger("shadowdiff.analysis")

STORE_PENDING = 5_000
"""Comparisons (each with its exchange's bodies) waiting to be stored."""
STORE_BATCH = 2_000
"""Rows per transaction at most. A batch's time under load is mostly round trips to SQLite's thread, so batches
that take whatever is pending keep the writer's backlog near 1,000 rows at saturation (500-row batches capped it
near 3,400 rows/s and let it grow)."""
STORE_DELAY = 0.02
"""Seconds a row waits for more to share its batch, below saturation: rows reach the store (and the data plane
learns they are settled) within ~20 ms."""


ROLLUP_EVERY = 0.05
"""Seconds between two writes of the counts (minute rows): an exchange is settled once its count is written, and
the data plane holds its bodies until then, so this bounds what a busy worker holds (~50 ms of traffic)."""


class Analyzer:
    """Compares what it is handed and stores the verdicts; every item it was handed is settled exactly once."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        marks_refresh_seconds: float | None = None,
        pairs_refresh_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.comparer = Comparer(
            settings.services, learn_after=settings.learn_templates_after, max_endpoints=settings.max_endpoints
        )
        self.writer = BatchWriter(
            store,
            max_batch=STORE_BATCH,
            max_delay=STORE_DELAY,
            max_pending=STORE_PENDING,
            rollup_every=ROLLUP_EVERY,
            on_drop=self._store_dropped,
            on_example_drop=self._example_dropped,
        )
        self.pairs = IdPairs(settings.correlation_capacity)
        """The id pairs that say which differing values are one record's ids on both sides."""
        self._namings: dict[str, IdNaming] = {}
        refresh = settings.state_refresh_seconds
        self.marks_refresh_seconds = refresh if marks_refresh_seconds is None else marks_refresh_seconds
        """How often noise marks and learned templates are re-read (so processes agree within it)."""
        self.pairs_refresh_seconds = refresh if pairs_refresh_seconds is None else pairs_refresh_seconds
        self.handled = 0
        """Items handed to `exchange`, `dropped` or `learned`."""
        self._accepted = 0
        self._released = 0
        self._in_writer: deque[int] = deque()
        """Item numbers whose row the writer took and may not have written yet, oldest first."""
        self.outcomes: Counter[tuple[str, str, str]] = Counter()
        self.field_diffs: Counter[tuple[str, str, str]] = Counter()
        self.drops: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._saving: set[asyncio.Task[None]] = set()

    # -- the items ----------------------------------------------------------------------------------------------------

    def exchange(self, exchange: Exchange) -> None:
        """Compare one exchange and queue its verdict for the store."""
        self.handled += 1
        try:
            naming = self._naming(exchange.service)
            comparison = self.comparer.compare(exchange, pairs=self.pairs, naming=naming)
            comparison = self._discount_correlated_ids(comparison, naming)
        except Exception:
            # A bug must cost this exchange, not the process: it is stored as dropped and counted.
            log.exception("comparison failed", exchange_id=exchange.id)
            self.drops["compare_failed"] += 1
            comparison = Comparison(exchange, self._endpoint(exchange), Outcome.DROPPED)
        self._record(comparison)
        learned = self.comparer.learned()
        if learned:
            self._save_learned(learned)

    def dropped(self, exchange: Exchange) -> None:
        """A `dropped` row for an exchange that was not compared (its skip reason says why)."""
        self.handled += 1
        self._record(Comparison(exchange, self._endpoint(exchange), Outcome.DROPPED))

    def learned(self, pairs: Sequence[IdPair]) -> None:
        """Id pairs the data plane learned from a mirrored create."""
        self.handled += 1
        self.pairs.remember(pairs)

    def _naming(self, service: str) -> IdNaming:
        """How the service's fields name resources (its `id_key`, `id_fields`, `id_references`)."""
        naming = self._namings.get(service)
        if naming is None:
            config = self.settings.services.get(service) or self.settings.services.get("default")
            naming = self._namings[service] = config.naming() if config is not None else IdNaming()
        return naming

    def _discount_correlated_ids(self, comparison: Comparison, naming: IdNaming) -> Comparison:
        """An id the shadow generated for the primary's (post 7 here is post 1007 there) is expected, not a finding;
        an exchange left with no finding is a match."""
        exchange = comparison.exchange
        if comparison.outcome is not Outcome.DIFF or exchange.shadow is None or not self.pairs.active(exchange.service):
            return comparison
        service = exchange.service
        sides = {"service": service, "primary_side": exchange.primary.app, "shadow_side": exchange.shadow.app}
        diffs = tuple(
            dataclasses.replace(d, noise=True)
            if not d.noise and correlated(d, pairs=self.pairs, naming=naming, **sides)
            else d
            for d in comparison.diffs
        )
        outcome = Outcome.DIFF if any(not d.noise for d in diffs) else Outcome.MATCH
        return dataclasses.replace(comparison, diffs=diffs, outcome=outcome)

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

    def _endpoint(self, exchange: Exchange) -> str:
        try:
            return self.comparer.endpoint(exchange)
        except Exception:
            log.exception("cannot template the endpoint", exchange_id=exchange.id)
            return f"{exchange.request.method} (unknown)"

    def _record(self, comparison: Comparison) -> None:
        service, endpoint = comparison.exchange.service, comparison.endpoint
        self.outcomes[(service, endpoint, comparison.outcome.value)] += 1
        if comparison.diffs:
            noise = sum(1 for d in comparison.diffs if d.noise)
            if noise:
                self.field_diffs[(service, endpoint, "true")] += noise
            if len(comparison.diffs) > noise:
                self.field_diffs[(service, endpoint, "false")] += len(comparison.diffs) - noise
        if self.writer.submit(comparison):
            self._accepted += 1
            self._in_writer.append(self.handled)

    def _store_dropped(self, count: int, reason: str) -> None:
        self.drops[f"store_{reason}"] += count

    def _example_dropped(self, count: int, reason: str) -> None:
        # Only the stored example (headers, bodies, field diffs) is let go: the exchange is counted in the rollups.
        self.drops[f"example_{reason}"] += count

    # -- what the data plane is told ----------------------------------------------------------------------------------

    @property
    def settled(self) -> int:
        """The highest n such that items 1..n are all written or dropped (and counted)."""
        finished = self._accepted - self.writer.pending  # the writer settles its rows oldest first
        while self._released < finished:
            self._in_writer.popleft()
            self._released += 1
        return self._in_writer[0] - 1 if self._in_writer else self.handled

    def progress(self) -> dict[str, Any]:
        """What happened since the last call: the settled watermark, backlogs and the counts to add to metrics."""
        report = {
            "settled": self.settled,
            "handled": self.handled,
            "store": self.writer.pending,
            "failing_since": self.writer.failing_since,
            "outcomes": [[*key, n] for key, n in self.outcomes.items()],
            "field_diffs": [[*key, n] for key, n in self.field_diffs.items()],
            "drops": [[reason, n] for reason, n in self.drops.items()],
        }
        self.outcomes.clear()
        self.field_diffs.clear()
        self.drops.clear()
        return report

    # -- life cycle ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        follow = getattr(self.store, "follow", None)
        if follow is not None:  # marks and templates learned anywhere arrive through the state feed; the loop only
            await follow(NOISE_MARKS, self._marks_pushed)  # catches what a lost connection missed
            await follow(LEARNED_TEMPLATES, self._marks_pushed)
            await follow(ID_PAIRS, self._pairs_pushed)  # other workers' and replicas' creates, as they settle
            self.marks_refresh_seconds *= 12
            self.pairs_refresh_seconds *= 12
        await self._refresh_marks()
        await self._refresh_pairs(newest=None)
        self.writer.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.marks_refresh_seconds, self._refresh_marks), name="shadowdiff-marks"),
            loop.create_task(self._every(self.pairs_refresh_seconds, self._refresh_pairs), name="shadowdiff-pairs"),
        ]

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

    async def _marks_pushed(self, event: Event) -> None:
        await self._refresh_marks()

    async def _pairs_pushed(self, event: Event) -> None:
        self.pairs.remember(
            IdPair(service, resource, a, id_from_event(x), b, id_from_event(y))
            for service, resource, a, x, b, y in event.payload.get("pairs", ())
        )

    async def _refresh_pairs(self, newest: int | None = 1000) -> None:
        """Pairs other workers saved (this worker's own arrive over the channel, ahead of their exchanges): at
        start-up up to `correlation_capacity`, then the newest."""
        try:
            pairs = await self.store.load_id_pairs(
                services=tuple(self.settings.services), limit=newest or self.pairs.capacity
            )
        except Exception as exc:
            log.warning("cannot read id pairs", error=str(exc))
            return
        self.pairs.remember(pairs)

    @staticmethod
    async def _every(seconds: float, refresh: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            await refresh()

    async def aclose(self, timeout: float) -> None:
        """Stop refreshing; write what is queued within `timeout` seconds, count the rest as dropped."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.writer.aclose(timeout)
        if self._saving:
            await asyncio.gather(*list(self._saving), return_exceptions=True)
