"""diffs.values: strict JSON equality, shapes, tolerance, text similarity and clipping, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from diffs.rules import NumericTolerance
from diffs.values import clip, json_type, same, skeleton, text_similarity, within_tolerance


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (0, 0.0, True),
        ({"a": [1, True]}, {"a": [1, True]}, True),
        ({"a": [1, True]}, {"a": [1, 1]}, False),  # == says equal; the canonical bytes do not
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ([1, 2], [2, 1], False),
        ({"n": 2**70}, {"n": 2**70}, False),  # not provably equal without a walk: the walker looks deeper
        (None, None, True),
        ("1", 1, False),
    ],
)
def test_same(a: Any, b: Any, expected: bool) -> None:
    assert same(a, b) is expected


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        (
            {"id": 1, "name": "x", "tags": ["a", "b"], "price": None},
            {"id": "number", "name": "string", "tags": ["string"], "price": "null"},
        ),
        ([{"id": 1}, {"id": 2}, {"id": "3"}], [{"id": "number"}, {"id": "string"}]),
        ([], []),
        (True, "boolean"),
    ],
)
def test_skeleton(value: Any, shape: Any) -> None:
    assert skeleton(value) == shape
    assert skeleton(skeleton(value)) == shape  # idempotent
    assert json_type(value) in ("object", "array", "boolean")


@pytest.mark.parametrize(
    ("a", "b", "absolute", "relative", "within"),
    [
        (27.00, 27.01, 0.01, 0, True),
        ("27.00", "27.01", 0.01, 0, True),
        ("27.00", "27.011", 0.01, 0, False),
        (100, 110, 0, 0.1, True),
        (100, 110.01, 0, 0.1, False),
        ("abc", "abd", 1, 1, False),
    ],
)
def test_within_tolerance(a: Any, b: Any, absolute: float, relative: float, within: bool) -> None:
    assert within_tolerance(a, b, NumericTolerance(absolute=absolute, relative=relative)) is within


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [
        ("a b c d", "a b c d", 1.0),
        ("a b c d", "a b c e", 0.75),
        ("a b", "c d", 0.0),
        ("ab", "ac", 0.0),
        ("a, b", "a b", 0.8),
    ],
)
def test_text_similarity_ratio_is_over_words_and_punctuation(a: str, b: str, ratio: float) -> None:
    assert text_similarity(a, b) == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("short", 1024, "short"),
        (12345, 4, 12345),
        (None, 1, None),
        ({"a": 1}, 1024, {"a": 1}),
        ("x" * 2000, 10, '"xxxxxxxxx…[truncated, 2002 bytes]'),
        ({"a": "y" * 100}, 8, '{"a":"yy…[truncated, 108 bytes]'),
        ("é" * 10, 4, '"é…[truncated, 22 bytes]'),  # never cut inside a character
        (2**70, 1024, "1180591620717411303424"),  # past 64 bits: text, so that every value serializes with orjson
        ([2**70], 10, "[118059162…[truncated, 24 bytes]"),
    ],
)
def test_clip(value: Any, limit: int, expected: Any) -> None:
    assert clip(value, limit) == expected
