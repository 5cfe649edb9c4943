"""The analysis plane's metrics, kept in the worker that serves /metrics' registry (or its multiprocess files).

The analysis process has no registry: it reports counts in its progress frames and the worker's channel adds them
here, so one process per worker writes every metric, and `--workers N` adds them up like the data plane's. The
backlog is a gauge *set* from those reports (livesum across workers): a scrape-time function, as it was, is never
exported in prometheus_client's multiprocess mode, so with `--workers 2` it always read 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge

from proxy.dataplane.metrics import ProxyMetrics


class AnalysisMetrics:
    """Comparisons by outcome, field diffs, the backlog and restarts of the analysis process."""

    def __init__(self, metrics: ProxyMetrics) -> None:
        self.metrics = metrics
        registry = metrics.registry
        self.comparisons = Counter(
            "shadowdiff_comparisons",
            "Compared exchanges by outcome (match, diff, shadow_error, skipped, dropped).",
            ("service", "endpoint", "outcome"),
            registry=registry,
        )
        self.field_diffs = Counter(
            "shadowdiff_field_diffs",
            "Field differences found, by whether they were noise.",
            ("service", "endpoint", "noise"),
            registry=registry,
        )
        self.backlog = Gauge(
            "shadowdiff_comparison_backlog",
            "Exchanges handed to the analysis process and not yet compared (queue), comparisons not yet stored "
            "(store).",
            ("stage",),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.store_failing = Gauge(
            "shadowdiff_store_failing_since_seconds",
            "Unix time since which this worker's store writes fail; 0 while they succeed (/ready judges the oldest).",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.store_failing.set(0)
        self.restarts = Counter(
            "shadowdiff_analysis_restarts",
            "Analysis processes that exited unexpectedly and were replaced (what they held: dropped{analysis_lost}).",
            registry=registry,
        )
        self._queue = self.backlog.labels("queue")
        self._store = self.backlog.labels("store")
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}

    def _child(self, metric: Counter, key: tuple[str, ...]) -> Any:
        # `labels()` costs a few µs; the children are as bounded as their labels (templated endpoints).
        child = self._children.get((metric, key))
        if child is None:
            child = self._children[(metric, key)] = metric.labels(*key)
        return child

    def apply(
        self,
        outcomes: Iterable[list[Any]],
        field_diffs: Iterable[list[Any]],
        drops: Iterable[list[Any]],
    ) -> None:
        """Add the counts of one progress report."""
        for service, endpoint, outcome, count in outcomes:
            self.metrics.count(self._child(self.comparisons, (service, endpoint, outcome)), count)
        for service, endpoint, noise, count in field_diffs:
            self.metrics.count(self._child(self.field_diffs, (service, endpoint, noise)), count)
        for reason, count in drops:
            self.dropped(reason, count)

    def dropped(self, reason: str, count: int = 1) -> None:
        self.metrics.dropped.labels(reason).inc(count)

    def set_store_failing(self, since: float | None) -> None:
        self.store_failing.set(since or 0)

    def set_backlog(self, queue: int, store: int) -> None:
        self._queue.set(queue)
        self._store.set(store)
