"""The data plane's Prometheus metrics, on a registry of its own or the default one.

Labels are bounded: service names from configuration and fixed enums, never raw paths.

The latency delta (shadow − primary) is one histogram whose buckets span negative values, so
`histogram_quantile` answers "how much slower is the shadow" directly, sign included. Its `_sum` can fall,
so use `_bucket` and `_count`, not `rate(_sum)`.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_DELTA_STEPS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DELTA_BUCKETS = tuple(-step for step in reversed(_DELTA_STEPS)) + (0.0,) + _DELTA_STEPS
INF = math.inf
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}


def status_class(status: int) -> str:
    return _STATUS_CLASSES.get(status // 100, "other")


class ProxyMetrics:
    """Counters, histograms and the in-flight gauge; children are cached so the hot path skips `labels()`.

    `deferred` (for `--workers N`): the per-request updates add up in this process and reach prometheus-client at
    each `flush()` (`flush_every` runs it). In multiprocess mode every update is a getpid() system call and an mmap
    write, about ten a request; deferred, a flush writes each child once. Scrapes then lag by up to one interval.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, deferred: bool = False) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self.deferred = deferred
        self._pending: defaultdict[Any, float] = defaultdict(float)
        """Counter and gauge children → amount not yet applied."""
        self._observed: dict[Any, tuple[tuple[float, ...], list[float]]] = {}
        """Histogram children → (their upper bounds, observations not yet applied)."""
        r = self.registry
        self.requests = Counter(
            "shadowdiff_requests",
            "Client requests answered by the proxy.",
            ("service", "method", "status_class"),
            registry=r,
        )
        self.upstream_latency = Histogram(
            "shadowdiff_upstream_latency_seconds",
            "From sending to an upstream to its last body byte (or failure).",
            ("service", "role", "app"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency_delta = Histogram(
            "shadowdiff_latency_delta_seconds",
            "Shadow latency minus primary latency, per exchange where both answered; negative: shadow faster.",
            ("service",),
            buckets=DELTA_BUCKETS,
            registry=r,
        )
        self.shadow_errors = Counter(
            "shadowdiff_shadow_errors",
            "Mirrored requests (shadow or secondary) that got no usable response, by error kind.",
            ("service", "kind"),
            registry=r,
        )
        self.primary_errors = Counter(
            "shadowdiff_primary_errors",
            "Primary requests that got no usable response (the client got 502/504), by error kind.",
            ("service", "kind"),
            registry=r,
        )
        self.dropped = Counter(
            "shadowdiff_dropped",
            "Work dropped at a bound: inflight_cap (mirror not sent), queue_full (exchange not compared).",
            ("reason",),
            registry=r,
        )
        self.skipped = Counter(
            "shadowdiff_skipped",
            "Requests not mirrored, by reason (sampled_out, request_too_large, mirror_off, method, loop_guard, "
            "unsafe_rewrite, upgrade).",
            ("service", "reason"),
            registry=r,
        )
        self.truncated = Counter(
            "shadowdiff_response_too_large",
            "Responses above max_response_body: streamed to the client, not compared.",
            ("service", "role"),
            registry=r,
        )
        self.causal_waits = Counter(
            "shadowdiff_causal_waits",
            "Mirrored requests that waited for earlier mirrored writes to the same resource: waited (in time) or "
            "timeout (sent anyway once causal_wait_seconds ran out; the comparison may show a race).",
            ("service", "outcome"),
            registry=r,
        )
        self.shadow_inflight = Gauge(
            "shadowdiff_shadow_inflight",
            "Mirrored requests in flight now (bounded by max_inflight_shadow per worker).",
            registry=r,
            multiprocess_mode="livesum",  # with --workers N, the sum over live workers
        )
        self._upper_bounds = {
            self.upstream_latency: (*LATENCY_BUCKETS, INF),
            self.latency_delta: (*DELTA_BUCKETS, INF),
        }
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[tuple[str, str, str], Histogram] = {}
        self._delta_children: dict[str, Histogram] = {}

    def request(self, service: str, method: str, status: int) -> None:
        # Normalise first: the cache key must stay as bounded as the labels (clients send any method).
        key = (service, method if method in KNOWN_METHODS else "OTHER", status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(key[0], key[1], status_class(status))
        self.count(child)

    def upstream(self, service: str, role: str, app: str, seconds: float) -> None:
        key = (service, role, app)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.upstream_latency.labels(service, role, app)
        self._observe(self.upstream_latency, child, seconds)

    def delta(self, service: str, seconds: float) -> None:
        child = self._delta_children.get(service)
        if child is None:
            child = self._delta_children[service] = self.latency_delta.labels(service)
        self._observe(self.latency_delta, child, seconds)

    def inflight(self, change: int) -> None:
        """Mirrored requests started (positive) or finished (negative)."""
        self.count(self.shadow_inflight, change)

    def count(self, child: Any, amount: float = 1.0) -> None:
        """`child.inc(amount)`, now or at the next flush."""
        if self.deferred:
            self._pending[child] += amount
        else:
            child.inc(amount)

    def _observe(self, histogram: Histogram, child: Any, value: float) -> None:
        if self.deferred:
            observed = self._observed.get(child)
            if observed is None:
                self._observed[child] = (self._upper_bounds[histogram], [value])
            else:
                observed[1].append(value)
        else:
            child.observe(value)

    def flush(self) -> None:
        """Apply what deferred updates have added up."""
        pending, self._pending = self._pending, defaultdict(float)
        for child, amount in pending.items():
            if amount:
                child.inc(amount)
        observed, self._observed = self._observed, {}
        for child, (bounds, values) in observed.items():
            _observe_all(child, bounds, values)

    async def flush_every(self, seconds: float) -> None:
        """Flush every `seconds` until cancelled, and once more then."""
        try:
            while True:
                await asyncio.sleep(seconds)
                self.flush()
        finally:
            self.flush()

    def shadow_error(self, service: str, kind: str) -> None:
        self.shadow_errors.labels(service, kind).inc()

    def primary_error(self, service: str, kind: str) -> None:
        self.primary_errors.labels(service, kind).inc()

    def drop(self, reason: str) -> None:
        self.dropped.labels(reason).inc()

    def skip(self, service: str, reason: str) -> None:
        self.skipped.labels(service, reason).inc()

    def too_large(self, service: str, role: str) -> None:
        self.truncated.labels(service, role).inc()

    def causal_wait(self, service: str, outcome: str) -> None:
        self.causal_waits.labels(service, outcome).inc()


def _observe_all(child: Any, bounds: Sequence[float], values: Sequence[float]) -> None:
    """`child.observe(v)` for every value, with one write per bucket touched and one for the sum.

    prometheus_client has no public way to add many observations at once, so this writes the child's per-bucket
    values (`_buckets`: one per upper bound in `bounds`, not cumulative) and `_sum` directly. They are private: the
    lock pins the version, and tests/proxy/dataplane/test_metrics.py checks these two names and their meaning, so an
    upgrade that changes them fails there first. Were they missing, each value is observed on its own.
    """
    buckets, total = getattr(child, "_buckets", None), getattr(child, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(bounds):
        for value in values:
            child.observe(value)
        return
    per_bucket: defaultdict[int, int] = defaultdict(int)
    for value in values:
        per_bucket[bisect.bisect_left(bounds, value)] += 1  # the first bound >= value, as observe() picks it
    for index, count in per_bucket.items():
        buckets[index].inc(count)
    total.inc(sum(values))
