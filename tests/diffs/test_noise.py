"""Noise: secondary flags matched by path and kind, marks, and the one rule on both sides of its thresholds."""

from __future__ import annotations

import pytest

from diffs.exchange import DiffKind, FieldDiff
from diffs.noise import Marks, NoiseMark, flag_noise, is_finding, is_noisy
from diffs.rules import NoiseConfig

EP = "POST /api/orders"


def diff(path: str, noise: bool = False, kind: DiffKind = DiffKind.CHANGED) -> FieldDiff:
    return FieldDiff("req-1", EP, path, kind, 1, 2, noise)


C, R, T = DiffKind.CHANGED, DiffKind.REMOVED, DiffKind.TYPE_CHANGED


@pytest.mark.parametrize(
    ("path", "kind", "noisy", "expected"),
    [
        ("root.order_number", C, {("root.order_number", C)}, True),
        ("root.items[*].price", C, {("root.items[*]", C)}, True),  # inside a value that varies as a whole
        ("root.items", C, {("root.items[*].price", C)}, False),  # above it: the shape changed, not only the field
        ("root.total", C, {("root.order_number", C)}, False),
        ("status", DiffKind.STATUS, {("status", DiffKind.STATUS)}, True),
        ("root.x", C, set(), False),
        # by kind: a value varying between two V1 runs excuses a changed value, not a removed field or a new type
        ("root.took_ms", R, {("root.took_ms", C)}, False),
        ("root.took_ms", T, {("root.took_ms", C)}, False),
        ("root.items[*].price", R, {("root.items[*]", C)}, False),
        ("root.took_ms", R, {("root.took_ms", R)}, True),  # V1 itself sometimes leaves it out
        ("root.items", DiffKind.REORDERED, {("root.items", DiffKind.REORDERED)}, True),
    ],
)
def test_is_noisy(path: str, kind: DiffKind, noisy: set[tuple[str, DiffKind]], expected: bool) -> None:
    assert is_noisy(path, kind, frozenset(noisy)) is expected


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
    diffs = [
        diff("root.order_number"),
        diff("root.total"),
        diff("root.created_at"),
        diff("root.cached", noise=True),
        diff("root.took_ms", kind=R),
    ]
    noisy = frozenset({("root.order_number", C), ("root.took_ms", C)})
    flagged = flag_noise(diffs, noisy, Marks([(EP, "**.created_at")]), EP)
    assert [(d.path, d.noise) for d in flagged] == [
        ("root.order_number", True),
        ("root.total", False),
        ("root.created_at", True),
        ("root.cached", True),
        ("root.took_ms", False),  # removed on the shadow; only its value varied on the secondary
    ]
    assert flag_noise(diffs, frozenset(), Marks(), EP) == diffs


@pytest.mark.parametrize(
    ("raw", "noise", "samples", "finding"),
    [
        # the relative test: raw − noise > 0.2 × (raw + noise), i.e. raw > 1.5 × noise
        (75, 50, 100, False),  # 25 > 0.2 × 125 = 25: exactly on the line, noise
        (76, 50, 100, True),  # 26 > 25.2
        (74, 50, 100, False),
        (150, 100, 1000, False),  # 50 > 50: on the line
        (151, 100, 1000, True),
        (10, 10, 100, False),  # differs exactly as often on the secondary: pure noise (order_number)
        (100, 100, 100, False),
        (10, 0, 100, True),  # never on the secondary
        (1, 0, 1, True),
        # the absolute test: raw − noise > 0.0003 × samples
        (3, 0, 10_000, False),  # 3 > 3: on the line
        (4, 0, 10_000, True),
        (2, 0, 10_000, False),
        (33, 0, 100_000, True),  # 33 > 30
        (30, 0, 100_000, False),
        (0, 0, 100, False),
        (5, 7, 100, False),  # the secondary differs more than the shadow: nothing unexplained
    ],
)
def test_the_one_rule_at_and_around_its_thresholds(raw: int, noise: int, samples: int, finding: bool) -> None:
    assert is_finding(raw, noise, samples, NoiseConfig()) is finding


@pytest.mark.parametrize(
    ("config", "finding"),
    [
        (NoiseConfig(relative_threshold=0.0, absolute_threshold=0.0), True),
        (NoiseConfig(relative_threshold=0.5, absolute_threshold=0.0), False),  # needs raw > 3 × noise
        (NoiseConfig(relative_threshold=0.2, absolute_threshold=0.0), False),  # 20 is not above 0.2 × 120 = 24
        (NoiseConfig(relative_threshold=0.16, absolute_threshold=0.0), True),  # 20 > 19.2
        (NoiseConfig(relative_threshold=0.0, absolute_threshold=0.2), False),  # needs an excess above 20 of 100
        (NoiseConfig(relative_threshold=0.0, absolute_threshold=0.19), True),
    ],
)
def test_thresholds_come_from_noise_config(config: NoiseConfig, finding: bool) -> None:
    assert is_finding(70, 50, 100, config) is finding
