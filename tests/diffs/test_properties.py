"""Properties over arbitrary JSON and arbitrary bytes (hypothesis)."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from diffs.exchange import DiffKind
from diffs.paths import PatternSet
from diffs.response_diff import compare_responses, compare_values
from diffs.rules import CompareRules, NumericTolerance
from diffs.values import same
from tests.factories import primary, shadow

SETTINGS = settings(max_examples=200, deadline=None)

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
RULE_SETS = [
    CompareRules(),
    CompareRules(unordered=("**",)),
    CompareRules(schema_only=("**",)),
    CompareRules(ignore=("**.a",), numeric_tolerance=(NumericTolerance(absolute=0.5),)),
]


@SETTINGS
@given(value=json_values, rules=st.sampled_from(RULE_SETS))
def test_any_json_value_compared_with_a_copy_of_itself_has_no_diff(value: Any, rules: CompareRules) -> None:
    assert compare_values(value, copy.deepcopy(value), rules) == []


@SETTINGS
@given(value=json_values)
def test_the_same_document_written_differently_has_no_diff(value: Any) -> None:
    compact = json.dumps(value, separators=(",", ":")).encode()
    pretty = json.dumps(value, indent=2, sort_keys=True).encode()
    assert (
        compare_responses(primary(body=compact), shadow(body=pretty), CompareRules(), exchange_id="x", endpoint="e")
        == []
    )


@SETTINGS
@given(a=json_values, b=json_values)
def test_a_difference_is_seen_from_both_sides(a: Any, b: Any) -> None:
    forward, backward = compare_values(a, b), compare_values(b, a)
    assert bool(forward) == bool(backward)
    diffs = compare_responses(
        primary(body=json.dumps(a).encode()),
        shadow(body=json.dumps(b).encode()),
        CompareRules(),
        exchange_id="x",
        endpoint="e",
    )
    assert bool(diffs) == bool(forward)
    orjson.dumps([(d.primary_value, d.shadow_value) for d in diffs])
    if same(a, b):
        assert not forward


@settings(max_examples=100, deadline=None)
@given(value=st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=6), data=st.data())
def test_changing_one_field_is_reported_at_that_field(value: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(value)))
    replacement = data.draw(json_values.filter(lambda v: not same(v, value[key])))
    changed = {**value, key: replacement}
    found = compare_values(value, changed)
    assert found
    target = PatternSet([f"root[{json.dumps(key)}]"])
    assert all(target.covers(path) for path, *_ in found)


header_pairs = st.lists(
    st.tuples(
        st.sampled_from(["content-type", "content-encoding", "x-a", "date", "etag"]),
        st.sampled_from(
            ["application/json", "text/plain; charset=latin-1", "gzip", "br", "deflate", "gzip, br", "", ";;=", "x/y"]
        ),
    ),
    max_size=4,
).map(tuple)


@SETTINGS
@given(
    body_a=st.binary(max_size=200),
    body_b=st.binary(max_size=200),
    headers_a=header_pairs,
    headers_b=header_pairs,
    status=st.sampled_from([200, 404, None]),
    rules=st.sampled_from([*RULE_SETS, CompareRules(headers=("*",))]),
)
def test_comparison_never_raises_on_arbitrary_bytes_and_headers(
    body_a: bytes, body_b: bytes, headers_a: Any, headers_b: Any, status: int | None, rules: CompareRules
) -> None:
    a = primary(body=body_a, content_type=None, headers=headers_a)
    b = shadow(body=body_b, content_type=None, headers=headers_b, status=status)
    found = compare_responses(a, b, rules, exchange_id="x", endpoint="e", value_limit=64)
    assert all(isinstance(d.kind, DiffKind) for d in found)
    orjson.dumps([(d.primary_value, d.shadow_value) for d in found])  # the store can always encode the values
    if body_a == body_b and headers_a == headers_b and status == 200:
        assert found == []
