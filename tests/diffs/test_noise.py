"""Noise: secondary flags, marks, and NoiseTracker's thresholds on both sides of the line."""

from __future__ import annotations

import pytest

from diffs.exchange import DiffKind, FieldDiff
from diffs.noise import Marks, NoiseMark, NoiseTracker, flag_noise, is_noisy
from proxy.config import NoiseConfig

EP = "POST /api/orders"


def diff(path: str, noise: bool = False) -> FieldDiff:
    return FieldDiff("req-1", EP, path, DiffKind.CHANGED, 1, 2, noise)


@pytest.mark.parametrize(
    ("path", "noisy", "expected"),
    [
        ("root.order_number", {"root.order_number"}, True),
        ("root.items[*].price", {"root.items[*]"}, True),  # below a noisy path
        ("root.items", {"root.items[*].price"}, False),  # above it: the shape changed, not only the noisy field
        ("root.total", {"root.order_number"}, False),
        ("status", {"status"}, True),
        ("root.x", set(), False),
    ],
)
def test_is_noisy(path: str, noisy: set[str], expected: bool) -> None:
    assert is_noisy(path, frozenset(noisy)) is expected


MARKS = Marks(
    [
        NoiseMark(EP, "root.order_number"),
        NoiseMark(EP, "**.created_at"),
        ("*", "root.request_id"),  # plain pairs from the store work too
        (EP, "status"),
        ("GET /health", "header.x-version"),
    ]
)


@pytest.mark.parametrize(
    ("endpoint", "path", "expected"),
    [
        (EP, "root.order_number", True),
        (EP, "root.items[*].created_at", True),
        ("GET /api/orders/{id}", "root.order_number", False),  # marked for another endpoint
        ("GET /anything", "root.request_id", True),  # "*" marks every endpoint
        (EP, "status", True),
        (EP, "root.status", False),  # "status" is the HTTP status, not the body field
        ("GET /health", "header.x-version", True),
        ("GET /health", "header.server", False),
    ],
)
def test_marks(endpoint: str, path: str, expected: bool) -> None:
    assert MARKS.is_marked(endpoint, path) is expected
    assert len(MARKS) == 5


def test_flag_noise_from_the_secondary_and_marks() -> None:
    diffs = [diff("root.order_number"), diff("root.total"), diff("root.created_at"), diff("root.cached", noise=True)]
    flagged = flag_noise(diffs, frozenset({"root.order_number"}), Marks([(EP, "**.created_at")]), EP)
    assert [(d.path, d.noise) for d in flagged] == [
        ("root.order_number", True),
        ("root.total", False),
        ("root.created_at", True),
        ("root.cached", True),
    ]
    assert flag_noise(diffs, frozenset(), Marks(), EP) == diffs


def tracker_with(measured: int, raw: int, noise: int, config: NoiseConfig | None = None) -> NoiseTracker:
    """`measured` exchanges with a secondary; the path differs raw in `raw` of them and on the secondary in `noise`."""
    tracker = NoiseTracker(config)
    for n in range(measured):
        tracker.record(EP, ["root.f"] if n < raw else [], ["root.f"] if n < noise else [])
    return tracker


@pytest.mark.parametrize(
    ("measured", "raw", "noise", "signal"),
    [
        (10_000, 3, 0, False),  # 0.03% raw, no noise: not above the absolute threshold
        (10_000, 4, 0, True),  # 0.04%: above it
        (1, 1, 0, True),  # a field that always differs and never on the secondary
        (1000, 600, 500, False),  # 60% vs 50%: excess 10% is not above 20% of 50%
        (1000, 601, 500, True),  # 60.1% vs 50%: it is
        (1000, 500, 500, False),  # equal rates are never a finding
        (1000, 100, 500, False),  # the secondary differs more than the shadow
        (1000, 1000, 1000, False),  # always differs, also on the secondary: pure noise (order_number)
        (1000, 0, 0, False),
    ],
)
def test_signal_thresholds_with_defaults(measured: int, raw: int, noise: int, signal: bool) -> None:
    assert tracker_with(measured, raw, noise).is_signal(EP, "root.f") is signal


@pytest.mark.parametrize(
    ("config", "signal"),
    [
        (NoiseConfig(relative_threshold=0.0, absolute_threshold=0.0), True),
        (NoiseConfig(relative_threshold=0.5, absolute_threshold=0.0), False),  # needs raw > 1.5 × noise = 75%
        (NoiseConfig(relative_threshold=0.0, absolute_threshold=0.2), False),  # needs an excess above 20 points
    ],
)
def test_thresholds_come_from_noise_config(config: NoiseConfig, signal: bool) -> None:
    assert tracker_with(100, 70, 50, config).is_signal(EP, "root.f") is signal


def test_without_any_secondary_the_raw_rate_is_over_all_exchanges_and_noise_is_zero() -> None:
    tracker = NoiseTracker()
    for n in range(10):
        tracker.record(EP, ["root.total"] if n < 2 else [], None)
    assert tracker.rates(EP, "root.total") == (0.2, 0.0)
    assert tracker.is_signal(EP, "root.total")


def test_rates_use_only_exchanges_measured_with_a_secondary_once_there_are_any() -> None:
    tracker = NoiseTracker()
    tracker.record(EP, ["root.f"], None)  # unmeasured: counted raw, not in the rates
    tracker.record(EP, ["root.f"], ["root.f"])
    tracker.record(EP, [], [])
    counts = tracker.endpoint_counts(EP)
    assert counts is not None and (counts.exchanges, counts.measured) == (3, 2)
    assert (counts.fields["root.f"].raw, counts.fields["root.f"].raw_measured) == (2, 1)
    assert tracker.rates(EP, "root.f") == (0.5, 0.5)
    assert not tracker.is_signal(EP, "root.f")


def test_a_path_counts_once_per_exchange() -> None:
    tracker = NoiseTracker()
    tracker.record(EP, ["root.items[*].price"] * 5, [])
    assert tracker.rates(EP, "root.items[*].price") == (1.0, 0.0)


def test_unknown_fields_and_endpoints_are_not_findings() -> None:
    tracker = tracker_with(10, 10, 0)
    assert not tracker.is_signal(EP, "root.never")
    assert not tracker.is_signal("GET /elsewhere", "root.f")
    assert tracker.rates("GET /elsewhere", "root.f") == (0.0, 0.0)


def test_paths_per_endpoint_are_bounded() -> None:
    tracker = NoiseTracker(max_paths=3)
    tracker.record(EP, [f"root.k{n}" for n in range(10)], None)
    counts = tracker.endpoint_counts(EP)
    assert counts is not None and len(counts.fields) == 3 and counts.untracked_paths == 7


def test_field_rates_report_every_tracked_path() -> None:
    tracker = NoiseTracker()
    tracker.record(EP, ["root.order_number", "root.total"], ["root.order_number"])
    rates = tracker.field_rates(EP)
    assert {p: r.signal for p, r in rates.items()} == {"root.order_number": False, "root.total": True}
    assert rates["root.total"].raw_rate == 1.0
    assert tracker.endpoints() == [EP] and tracker.field_rates("GET /none") == {}
