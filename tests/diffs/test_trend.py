"""The diff-rate trend of a service (pure): buckets, direction, sparkline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from diffs.trend import Trend, TrendBucket, bucket_edges, build_trend

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def trend(*pairs: tuple[int, int]) -> Trend:
    """(samples, findings) per bucket, one minute apart."""
    return Trend(tuple(TrendBucket(T0 + timedelta(minutes=i), s, f) for i, (s, f) in enumerate(pairs)))


@pytest.mark.parametrize(
    ("pairs", "direction"),
    [
        ([(100, 10)] * 6 + [(100, 1)] * 3, "better"),
        ([(100, 0)] * 6 + [(100, 5)] * 3, "worse"),
        ([(100, 2)] * 6 + [(100, 2)] * 3, "steady"),
        ([(1000, 20)] * 6 + [(1000, 23)] * 3, "steady"),  # 2.0% -> 2.3%: within half a point
        ([(100, 10)] * 6 + [(0, 0)] * 3, None),  # nothing compared lately: no verdict
        ([(100, 10)] * 2, None),  # too short to split
    ],
)
def test_direction_compares_the_last_third_with_what_came_before(
    pairs: list[tuple[int, int]], direction: str | None
) -> None:
    assert trend(*pairs).direction == direction


def test_spark_scales_to_the_highest_rate_and_marks_empty_buckets() -> None:
    t = trend((10, 5), (10, 0), (0, 0), (10, 10), (20, 5))
    assert t.rates == (0.5, 0.0, None, 1.0, 0.25)
    assert t.spark() == "▅▁·█▃"
    assert trend((10, 0), (10, 0)).spark() == "▁▁"  # all matching: flat, not empty
    assert Trend().spark() == "" and Trend().arrow == ""


def test_bars_leave_a_gap_where_nothing_was_compared() -> None:
    bars = trend((10, 5), (0, 0), (10, 10)).bars(width=30, height=10)
    assert [(b.x, b.height) for b in bars] == [(0.0, 5.0), (20.0, 10.0)]
    assert all(b.y + b.height == 10 for b in bars)


def test_edges_split_the_window_evenly_and_build_trend_adds_up_pairs() -> None:
    edges = bucket_edges(T0, T0 + timedelta(hours=1), 4)
    assert edges == tuple(T0 + timedelta(minutes=15 * i) for i in range(4))
    assert bucket_edges(T0, T0) == ()
    built = build_trend(edges, [(0, 5), (0, 5), (3, 2)], [(0, 1)])
    assert [(b.samples, b.findings) for b in built.buckets] == [(10, 1), (0, 0), (0, 0), (2, 0)]
