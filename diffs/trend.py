"""A service's diff rate over its report window, in equal time buckets: is V2 converging? (pure)

The store counts, per bucket, the compared exchanges and those with a finding; here they become rates, a direction
and the geometry of a sparkline, so the terminal and the web page draw the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

TREND_BUCKETS = 12
STEADY_BAND = 0.005
"""Recent and earlier diff rates closer than this (half a percentage point) are "steady"."""
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"

Direction = Literal["better", "worse", "steady"]


@dataclass(frozen=True, slots=True)
class TrendBucket:
    start: datetime
    samples: int = 0
    """Compared exchanges (match, diff, shadow error) that started in this bucket."""
    findings: int = 0
    """Of those, exchanges with a diff in a finding field (noise excluded): the readiness gate's diff rate."""

    @property
    def rate(self) -> float | None:
        return self.findings / self.samples if self.samples else None


@dataclass(frozen=True, slots=True)
class Trend:
    """Oldest bucket first; empty when the window holds no exchange."""

    buckets: tuple[TrendBucket, ...] = ()

    def merged(self, count: int) -> Trend:
        """The same window in at most `count` buckets, adjacent ones added up (a terminal has less room)."""
        if len(self.buckets) <= count:
            return self
        size = -(-len(self.buckets) // count)
        groups = [self.buckets[i : i + size] for i in range(0, len(self.buckets), size)]
        return Trend(
            tuple(TrendBucket(g[0].start, sum(b.samples for b in g), sum(b.findings for b in g)) for g in groups)
        )

    @property
    def rates(self) -> tuple[float | None, ...]:
        return tuple(b.rate for b in self.buckets)

    @property
    def direction(self) -> Direction | None:
        """The last third of the window against the two thirds before it; None without samples in both."""
        if len(self.buckets) < 3:
            return None
        cut = len(self.buckets) - len(self.buckets) // 3
        earlier, recent = _pooled(self.buckets[:cut]), _pooled(self.buckets[cut:])
        if earlier is None or recent is None:
            return None
        if abs(recent - earlier) < STEADY_BAND:
            return "steady"
        return "worse" if recent > earlier else "better"

    @property
    def arrow(self) -> str:
        return {"better": "↘", "worse": "↗", "steady": "→", None: ""}[self.direction]

    def spark(self) -> str:
        """One block character per bucket, scaled to the highest rate ("·" where nothing was compared)."""
        peak = max((r for r in self.rates if r is not None), default=None)
        out = []
        for rate in self.rates:
            if rate is None:
                out.append("·")
            elif not peak:
                out.append(SPARK_BLOCKS[0])
            else:
                out.append(SPARK_BLOCKS[min(len(SPARK_BLOCKS) - 1, int(rate / peak * (len(SPARK_BLOCKS) - 1) + 0.5))])
        return "".join(out)

    def bars(self, width: float = 72, height: float = 18) -> tuple[SparkBar, ...]:
        """SVG bars (x, y, width, height) for the web overview; a bucket without samples gets none."""
        if not self.buckets:
            return ()
        peak = max((r for r in self.rates if r is not None), default=None)
        step = width / len(self.buckets)
        out = []
        for i, b in enumerate(self.buckets):
            if b.rate is None:
                continue
            h = max(1.0, height * b.rate / peak) if peak else 1.0
            out.append(SparkBar(round(i * step, 1), round(height - h, 1), round(step * 0.8, 1), round(h, 1), b))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class SparkBar:
    x: float
    y: float
    width: float
    height: float
    bucket: TrendBucket


def _pooled(buckets: Sequence[TrendBucket]) -> float | None:
    samples = sum(b.samples for b in buckets)
    return sum(b.findings for b in buckets) / samples if samples else None


def bucket_edges(since: datetime, until: datetime, count: int = TREND_BUCKETS) -> tuple[datetime, ...]:
    """The `count` bucket starts splitting [since, until) evenly; () when the span is empty."""
    if until <= since or count < 1:
        return ()
    step = (until - since) / count
    return tuple(since + step * i for i in range(count))


def build_trend(
    edges: Sequence[datetime], samples: Iterable[tuple[int, int]], findings: Iterable[tuple[int, int]]
) -> Trend:
    """A trend from bucket starts and (bucket index, count) pairs of compared exchanges and of finding exchanges."""
    compared = [0] * len(edges)
    found = [0] * len(edges)
    for index, count in samples:
        compared[index] += count
    for index, count in findings:
        found[index] += count
    return Trend(tuple(TrendBucket(edges[i], compared[i], found[i]) for i in range(len(edges))))


def bucket_width(edges: Sequence[datetime]) -> timedelta | None:
    return edges[1] - edges[0] if len(edges) > 1 else None
