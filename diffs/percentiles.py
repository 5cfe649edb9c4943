"""Latency percentiles from log-bucketed histograms: what the store's SQL groups, merged and ranked here (pure)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import lt

LATENCY_BUCKETS_PER_E = 100
"""Latency histogram resolution: bucket = floor(ln(ms) * this), so a bucket is 1% wide."""
MIN_LATENCY_MS = 0.001


def latency_bucket(latency_ms: float) -> int:
    """The histogram bucket the store's queries put `latency_ms` in."""
    return math.floor(math.log(max(latency_ms, MIN_LATENCY_MS)) * LATENCY_BUCKETS_PER_E)


@dataclass(frozen=True, slots=True)
class HistogramBucket:
    bucket: int
    count: int
    mean_ms: float
    """Mean of the latencies in the bucket: exact when they are all equal, within 1% otherwise."""


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    service: str
    endpoint: str
    role: str
    """"primary" or "shadow"."""
    buckets: tuple[HistogramBucket, ...]
    app: str = ""
    """Which app answered in that role: "v1" or "v2" (both roles can hold either across a promotion)."""
    direction: str = ""
    """ "v1>v2" (primary's app, then the shadow's); "" when the caller does not split by direction."""


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    p50: float | None
    p90: float | None
    p99: float | None


NO_LATENCY = Percentiles(0, None, None, None)


def merge_buckets(histograms: Iterable[Iterable[HistogramBucket]]) -> tuple[HistogramBucket, ...]:
    """One histogram from several (an endpoint's into its service's)."""
    totals: dict[int, tuple[int, float]] = {}
    for buckets in histograms:
        for b in buckets:
            count, weighted = totals.get(b.bucket, (0, 0.0))
            totals[b.bucket] = (count + b.count, weighted + b.mean_ms * b.count)
    return tuple(HistogramBucket(k, c, w / c) for k, (c, w) in sorted(totals.items()) if c)


def merged_percentiles(histograms: Sequence[Iterable[HistogramBucket]]) -> Percentiles:
    """`percentiles(merge_buckets(histograms))`, to the bit, without building the merged histogram.

    Only counts are merged for every bucket; the mean is added up (in `merge_buckets`' order of operations) for the
    three buckets the ranks land in. A report takes four of these per endpoint and per service: merging every
    bucket into new objects was most of a report's CPU.
    """
    if len(histograms) == 1:
        return _one_percentiles(tuple(histograms[0]))
    counts: dict[int, int] = {}
    for buckets in histograms:
        for b in buckets:
            counts[b.bucket] = counts.get(b.bucket, 0) + b.count
    keys = sorted(k for k, c in counts.items() if c)
    if not keys:
        return NO_LATENCY
    running = list(accumulate(counts[k] for k in keys))
    total = running[-1]
    if total == 0:
        return NO_LATENCY
    ranked = {q: keys[min(bisect.bisect_left(running, max(1, math.ceil(q * total))), len(keys) - 1)] for q in _RANKS}
    weighted = dict.fromkeys(ranked.values(), 0.0)
    for buckets in histograms:
        for b in buckets:
            if b.bucket in weighted:
                weighted[b.bucket] = weighted[b.bucket] + b.mean_ms * b.count
    means = {k: round(w / counts[k], 3) for k, w in weighted.items()}
    return Percentiles(total, *(means[ranked[q]] for q in _RANKS))


_RANKS = (0.50, 0.90, 0.99)


def _one_percentiles(buckets: tuple[HistogramBucket, ...]) -> Percentiles:
    """`merged_percentiles` of one histogram: when its buckets are in order without repeats (as the store's are),
    a ranked bucket is found by index; otherwise merged like several."""
    keys = [b.bucket for b in buckets]
    if not all(map(lt, keys, keys[1:])):
        return merged_percentiles([buckets, ()])
    running = list(accumulate(b.count for b in buckets))
    total = running[-1] if running else 0
    if total == 0:
        return NO_LATENCY
    last = len(buckets) - 1
    # bisect_left lands on a bucket with a count: the running count only reaches `wanted` by rising there.
    ranked = [buckets[min(bisect.bisect_left(running, max(1, math.ceil(q * total))), last)] for q in _RANKS]
    # As merging does: 0.0 plus mean times count, over the merged count.
    means = [round((0.0 + b.mean_ms * b.count) / b.count, 3) for b in ranked]
    return Percentiles(total, *means)


def percentiles(buckets: Iterable[HistogramBucket]) -> Percentiles:
    """Nearest-rank p50, p90 and p99 of a latency histogram."""
    ordered = sorted(buckets, key=lambda b: b.bucket)
    total = sum(b.count for b in ordered)
    if total == 0:
        return NO_LATENCY

    def rank(q: float) -> float:
        wanted = max(1, math.ceil(q * total))
        seen = 0
        for b in ordered:
            seen += b.count
            if seen >= wanted:
                return round(b.mean_ms, 3)
        return round(ordered[-1].mean_ms, 3)

    return Percentiles(total, rank(0.50), rank(0.90), rank(0.99))


@dataclass(frozen=True, slots=True)
class Latency:
    """Primary and shadow percentiles over the same exchanges (both sides are sent at the same instant)."""

    primary: Percentiles = NO_LATENCY
    shadow: Percentiles = NO_LATENCY
    v1: Percentiles = NO_LATENCY
    """V1's answers in whichever role it had; with `v2`, what the migration guide's "20% faster" compares."""
    v2: Percentiles = NO_LATENCY

    def ratio(self, which: str) -> float | None:
        """shadow / primary at "p50", "p90" or "p99"; None without data."""
        return _ratio(getattr(self.shadow, which), getattr(self.primary, which))

    def speedup(self, which: str) -> float | None:
        """1 − V2 / V1 at "p50", "p90" or "p99": positive when V2 is faster."""
        ratio = _ratio(getattr(self.v2, which), getattr(self.v1, which))
        return None if ratio is None else round(1 - ratio, 3)

    @property
    def v2_speedup(self) -> float | None:
        """1 − V2 p50 / V1 p50: the migration guide expects at least 0.20 (V2 20% faster)."""
        return self.speedup("p50")

    @property
    def v2_speedup_p99(self) -> float | None:
        """1 − V2 p99 / V1 p99: the tail, stated beside the median so one cannot hide the other."""
        return self.speedup("p99")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(float(numerator) / float(denominator), 3)


def build_latency(histograms: Iterable[LatencyHistogram]) -> Latency:
    """Percentiles per role and per app from any number of histograms (one endpoint's, or a whole service's)."""
    by_key: dict[str, list[tuple[HistogramBucket, ...]]] = {}
    for h in histograms:
        by_key.setdefault(h.role, []).append(h.buckets)
        by_key.setdefault(h.app, []).append(h.buckets)

    done: dict[tuple[int, ...], Percentiles] = {}

    def of(key: str) -> Percentiles:
        # A role and an app hold the very same histograms (primary and v1 until a promotion): rank them once.
        chosen = by_key.get(key, [])
        same = tuple(map(id, chosen))
        found = done.get(same)
        if found is None:
            found = done[same] = merged_percentiles(chosen)
        return found

    return Latency(primary=of("primary"), shadow=of("shadow"), v1=of("v1"), v2=of("v2"))
