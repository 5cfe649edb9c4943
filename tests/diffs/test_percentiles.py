"""Latency percentiles from the store's log-bucketed histograms: tables of cases."""

from __future__ import annotations

import pytest

from diffs.percentiles import (
    HistogramBucket,
    Latency,
    LatencyHistogram,
    Percentiles,
    build_latency,
    latency_bucket,
    merge_buckets,
    percentiles,
)


def histogram(*latencies: float) -> tuple[HistogramBucket, ...]:
    """What the store's histogram query returns for these latencies."""
    grouped: dict[int, list[float]] = {}
    for value in latencies:
        grouped.setdefault(latency_bucket(value), []).append(value)
    return tuple(HistogramBucket(b, len(v), sum(v) / len(v)) for b, v in sorted(grouped.items()))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([10.0] * 100, (10.0, 10.0, 10.0)),
        ([float(n) for n in range(1, 101)], (50.0, 90.0, 99.0)),
        ([5.0] * 98 + [500.0, 900.0], (5.0, 5.0, 500.0)),
        ([7.0], (7.0, 7.0, 7.0)),
    ],
)
def test_nearest_rank_percentiles_from_a_histogram(values: list[float], expected: tuple[float, ...]) -> None:
    p = percentiles(histogram(*values))
    assert p.count == len(values)
    assert (p.p50, p.p90, p.p99) == pytest.approx(expected, rel=0.01)


def test_no_latencies_means_no_percentiles() -> None:
    assert percentiles(()) == Percentiles(0, None, None, None)


def test_buckets_are_one_percent_wide_so_percentiles_stay_within_one_percent() -> None:
    values = [1.0 + n * 0.37 for n in range(1000)]
    exact = sorted(values)[989]  # nearest-rank p99 of 1000 values
    assert percentiles(histogram(*values)).p99 == pytest.approx(exact, rel=0.01)


def test_merging_histograms_equals_one_histogram_of_everything() -> None:
    a, b = [3.0, 4.0, 50.0], [3.0, 7.0, 7.0, 90.0]
    assert percentiles(merge_buckets([histogram(*a), histogram(*b)])) == percentiles(histogram(*a, *b))


def test_latency_per_role_and_ratio() -> None:
    latency = build_latency(
        [
            LatencyHistogram("orders", "GET /a", "primary", histogram(*[20.0] * 100)),
            LatencyHistogram("orders", "GET /b", "primary", histogram(*[40.0] * 100)),
            LatencyHistogram("orders", "GET /a", "shadow", histogram(*[15.0] * 200)),
        ]
    )
    assert latency.primary.count == 200 and latency.shadow.count == 200
    assert latency.primary.p99 == 40.0
    assert latency.ratio("p99") == pytest.approx(15.0 / 40.0, abs=0.001)
    assert Latency().ratio("p99") is None


def test_merged_percentiles_are_those_of_the_merged_histogram_to_the_bit() -> None:
    """`build_latency` ranks without merging every bucket: the numbers must be exactly the merge's."""
    import random

    from diffs.percentiles import merged_percentiles

    rng = random.Random(7)
    for _ in range(300):
        histograms = [
            tuple(
                HistogramBucket(b, rng.choice([0, 1, 2, 3, 97, 1001]), rng.lognormvariate(3.0, 1.0))
                for b in sorted(rng.sample(range(-50, 900), rng.randrange(0, 40)))
            )
            for _ in range(rng.randrange(0, 5))
        ]
        assert merged_percentiles(histograms) == percentiles(merge_buckets(histograms))
        jumbled = [b for h in histograms for b in h]  # one histogram out of order, with repeated buckets
        rng.shuffle(jumbled)
        assert merged_percentiles([tuple(jumbled)]) == percentiles(merge_buckets([jumbled]))
    assert merged_percentiles([]) == percentiles(()) and merged_percentiles([(), ()]).count == 0
