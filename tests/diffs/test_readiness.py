"""The readiness gate: each criterion, its message, and adjustable thresholds."""

from __future__ import annotations

import pytest

from diffs.counts import Counts
from diffs.percentiles import Latency, Percentiles
from diffs.readiness import Criteria, assess


def lat(p50: float, p99: float, s50: float, s99: float, count: int = 100) -> Latency:
    return Latency(Percentiles(count, p50, p50, p99), Percentiles(count, s50, s50, s99))


def counts(samples: int = 200, findings: int = 0, errors: int = 0) -> Counts:
    return Counts(match=samples - errors - findings, diff=findings, shadow_error=errors, findings=findings)


@pytest.mark.parametrize(
    ("c", "latency", "failing"),
    [
        (counts(), lat(20, 40, 15, 30), []),
        (counts(samples=99), lat(20, 40, 15, 30), ["min_samples"]),
        (counts(findings=3), lat(20, 40, 15, 30), ["max_diff_rate"]),  # 1.5% > 1%
        (counts(findings=2), lat(20, 40, 15, 30), []),  # exactly 1% passes
        (counts(errors=3), lat(20, 40, 15, 30), ["max_error_rate"]),
        (counts(), lat(20, 40, 15, 49), ["max_p99_ratio"]),  # 1.225x
        (counts(), lat(20, 40, 15, 48), []),  # exactly 1.2x passes
        (counts(), Latency(), ["max_p99_ratio"]),  # compared but no latencies: cannot tell
        (Counts(), Latency(), ["min_samples"]),
        (counts(samples=50, findings=5, errors=5), lat(20, 40, 30, 90), list(Criteria.model_fields)),
    ],
)
def test_readiness_lists_exactly_the_failing_criteria(c: Counts, latency: Latency, failing: list[str]) -> None:
    readiness = assess(c, latency, Criteria())
    assert [f.criterion for f in readiness.failures] == failing
    assert readiness.ready is (not failing)


def test_failures_say_what_and_by_how_much() -> None:
    failures = assess(counts(findings=20, errors=4), lat(20, 40, 30, 60), Criteria()).failures
    assert [f.message for f in failures] == [
        "diff rate 10.00% > 1.00%",
        "shadow error rate 2.00% > 1.00%",
        "shadow p99 is 1.50x the primary's > 1.20x",
    ]
    assert failures[0].actual == 0.10 and failures[0].limit == 0.01


def test_criteria_are_adjustable() -> None:
    strict = Criteria(min_samples=1000, max_diff_rate=0.0, max_error_rate=0.0, max_p99_ratio=0.8)
    assert [f.criterion for f in assess(counts(findings=1), lat(20, 40, 15, 35), strict).failures] == [
        "min_samples",
        "max_diff_rate",
        "max_p99_ratio",
    ]


@pytest.mark.parametrize(("samples", "message"), [(1, "only 1 sample, need 100"), (5, "only 5 samples, need 100")])
def test_the_sample_count_reads_as_english(samples: int, message: str) -> None:
    [failure] = assess(counts(samples=samples), lat(20, 40, 15, 30), Criteria()).failures
    assert failure.message == message
