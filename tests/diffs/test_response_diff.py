"""compare_responses: status, headers, bodies, every rule kind, and the V1-vs-V2 cases of docs/api-contract.md."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from diffs import response_diff
from diffs.exchange import DiffKind, FieldDiff, SideResponse
from diffs.response_diff import compare_responses, compare_values, distinct_paths
from diffs.rules import CompareRules, ListKey, NumericTolerance, TextSimilarity
from tests.factories import ai_body, order_body, order_item, primary, product_body, shadow, v1_error, v2_error

C, T, A, R, RO = DiffKind.CHANGED, DiffKind.TYPE_CHANGED, DiffKind.ADDED, DiffKind.REMOVED, DiffKind.REORDERED
IA, IR = DiffKind.ITEM_ADDED, DiffKind.ITEM_REMOVED
NO_RULES = CompareRules()


def compare(a: SideResponse, b: SideResponse, rules: CompareRules = NO_RULES, **kwargs: Any) -> list[FieldDiff]:
    return compare_responses(a, b, rules, exchange_id="req-1", endpoint="GET /api/orders/{id}", **kwargs)


def kinds(a: Any, b: Any, rules: CompareRules = NO_RULES) -> list[tuple[str, DiffKind]]:
    """Path and kind of every body diff between two JSON values sent as bodies."""
    return [(d.path, d.kind) for d in compare(primary(a), shadow(b), rules)]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, []),  # key order never matters
        ({"a": 1}, {"a": 1.0}, []),  # JSON has one number type
        ({"a": 1}, {"a": 2}, [("root.a", C)]),
        ({"a": "1"}, {"a": 1}, [("root.a", T)]),
        ({"a": True}, {"a": 1}, [("root.a", T)]),  # Python says True == 1; JSON does not
        ({"a": [True, 2]}, {"a": [1, 2]}, [("root.a[*]", T)]),
        ({"a": None}, {"a": "x"}, [("root.a", T)]),
        ({"a": {}}, {"a": []}, [("root.a", T)]),
        ({"a": 1}, {"a": 1, "b": 2}, [("root.b", A)]),
        ({"a": 1, "b": 2}, {"a": 1}, [("root.b", R)]),
        (
            {"items": [{"price": 1}, {"price": 2}]},
            {"items": [{"price": 1}, {"price": 3}]},
            [("root.items[*].price", C)],
        ),
        ({"m": [[1, 2], [3]]}, {"m": [[1, 2], [4]]}, [("root.m[*][*]", C)]),
        ([1, 2, 3], [3, 2, 1], [("root", RO)]),  # a permutation is one reordered diff, not three changes
        ({"l": [1, 2, 3]}, {"l": [1, 3, 2]}, [("root.l", RO)]),
        ({"l": [1, 2, 3]}, {"l": [1, 3]}, [("root.l[*]", IR)]),  # the middle item went: aligned, not index-shifted
        ({"l": [1, 3]}, {"l": [1, 2, 3]}, [("root.l[*]", IA)]),
        (
            {"l": [{"id": 1}, {"id": 2}, {"id": 3}]},
            {"l": [{"id": 1}, {"id": 3}]},
            [("root.l[*]", IR)],
        ),
        ({"l": [1, 1, 2]}, {"l": [1, 2, 2]}, [("root.l[*]", C)]),  # not a permutation: one item changed
        (1, "1", [("root", T)]),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2, "d": 3}}}, [("root.a.b.c", C), ("root.a.b.d", A)]),
        ({"a.b": 1}, {"a.b": 2}, [('root["a.b"]', C)]),
    ],
)
def test_structural_diffs(a: Any, b: Any, expected: list[tuple[str, DiffKind]]) -> None:
    assert kinds(a, b) == expected


def test_values_are_the_concrete_ones_while_the_path_is_the_template() -> None:
    a = order_body(items=[order_item(1), order_item(2), order_item(3)])
    b = order_body(items=[order_item(1), order_item(2, quantity=3), order_item(3, quantity=5)])
    found = compare(primary(a), shadow(b))
    assert [(d.path, d.primary_value, d.shadow_value) for d in found] == [
        ("root.items[*].quantity", 2, 3),
        ("root.items[*].line_total", "22.00", "33.00"),
        ("root.items[*].quantity", 2, 5),
        ("root.items[*].line_total", "22.00", "55.00"),
    ]
    assert all(d.exchange_id == "req-1" and d.endpoint == "GET /api/orders/{id}" and not d.noise for d in found)
    assert distinct_paths(found) == {"root.items[*].quantity", "root.items[*].line_total"}


# Rules ------------------------------------------------------------------------------------------------------------

ORDER = order_body()


@pytest.mark.parametrize(
    ("rules", "b", "expected"),
    [
        (NO_RULES, order_body(created_at="x", updated_at="y"), [("root.created_at", C), ("root.updated_at", C)]),
        (CompareRules(ignore=("**.created_at", "**.updated_at")), order_body(created_at="x", updated_at="y"), []),
        (CompareRules(ignore=("root.order_number",)), order_body(order_number="ORD-00000000"), []),
        (CompareRules(ignore=("order_number",)), order_body(order_number="ORD-00000000"), []),
        (
            CompareRules(ignore=("**.order_number",)),
            order_body(order_number="ORD-00000000", total="1"),
            [("root.total", C)],
        ),
        (CompareRules(ignore=("items[*].name",)), order_body(items=[order_item(3, name="Renamed")]), []),
        (CompareRules(ignore=("root.items",)), order_body(items=[]), []),  # ignoring a path ignores what is below it
        (CompareRules(ignore=("root.coupon",)), {k: v for k, v in ORDER.items() if k != "coupon"}, []),  # removed
        (CompareRules(ignore=("root.extra",)), {**ORDER, "extra": 1}, []),  # added
        (CompareRules(ignore=("root",)), {"completely": "different"}, []),
        (CompareRules(ignore=("**",)), [1], []),
    ],
)
def test_ignore(rules: CompareRules, b: Any, expected: list[tuple[str, DiffKind]]) -> None:
    assert kinds(ORDER, b, rules) == expected


def tolerance(path: str = "**", absolute: float = 0.0, relative: float = 0.0) -> CompareRules:
    return CompareRules(numeric_tolerance=(NumericTolerance(path=path, absolute=absolute, relative=relative),))


@pytest.mark.parametrize(
    ("rules", "a", "b", "differs"),
    [
        (tolerance(absolute=0.01), 10.0, 10.01, False),  # on the line: tolerated
        (tolerance(absolute=0.01), 10.0, 10.02, True),
        (tolerance(absolute=0.01), 10.0, 9.99, False),
        (tolerance(relative=0.01), 200, 202, False),  # 1% of the primary's 200
        (tolerance(relative=0.01), 200, 202.5, True),
        (tolerance(relative=0.01), -200, -198, False),
        (tolerance(relative=0.01), 0, 0.001, True),  # relative to zero tolerates nothing
        (tolerance(absolute=0.5, relative=0.01), 0, 0.4, False),  # either bound suffices
        (tolerance("root.v", absolute=0.01), "27.00", "27.01", False),  # money strings are numbers to a tolerance
        (tolerance("root.v", absolute=0.01), "27.00", "27.02", True),
        (tolerance("root.v", absolute=1), "27.00", "twenty-seven", True),
        (tolerance("root.v", absolute=1), 27, "27", True),  # a number turned string is a type change, never tolerated
        (tolerance("root.other", absolute=1), 10, 10.5, True),  # the rule names another path
        (NO_RULES, 10.0, 10.0000001, True),  # no rule, no tolerance
        (tolerance(absolute=1), True, False, True),  # booleans are not numbers
    ],
)
def test_numeric_tolerance(rules: CompareRules, a: Any, b: Any, differs: bool) -> None:
    assert bool(kinds({"v": a}, {"v": b}, rules)) is differs


def test_the_last_matching_tolerance_wins_so_endpoint_rules_override_service_rules() -> None:
    rules = CompareRules(
        numeric_tolerance=(NumericTolerance(path="**", absolute=1.0), NumericTolerance(path="root.exact", absolute=0))
    )
    assert kinds({"loose": 1, "exact": 1}, {"loose": 1.5, "exact": 1.5}, rules) == [("root.exact", C)]


PRODUCTS = [product_body(id=1), product_body(id=2, sku="SKU-0002"), product_body(id=3, sku="SKU-0003")]


@pytest.mark.parametrize(
    ("rules", "a", "b", "expected"),
    [
        (CompareRules(unordered=("root.items",)), {"items": [1, 2, 3]}, {"items": [3, 1, 2]}, []),
        (CompareRules(unordered=("**",)), {"items": [1, 2, 3]}, {"items": [3, 1, 2]}, []),
        (CompareRules(unordered=("root.other",)), {"items": [1, 2, 3]}, {"items": [3, 1, 2]}, [("root.items", RO)]),
        (CompareRules(unordered=("**",)), {"items": PRODUCTS}, {"items": PRODUCTS[::-1]}, []),
        (
            CompareRules(unordered=("root.items",)),
            {"items": PRODUCTS},
            {"items": [PRODUCTS[2], {**PRODUCTS[0], "price": "133.00"}, PRODUCTS[1]]},
            [("root.items[*].price", C)],  # deepdiff pairs the moved item with its counterpart
        ),
        (CompareRules(unordered=("**",)), {"t": [1, 2]}, {"t": [2, 1, 3]}, [("root.t[*]", IA)]),
        (CompareRules(unordered=("**",)), {"t": [1, 2, 3]}, {"t": [3, 1]}, [("root.t[*]", IR)]),
        (CompareRules(unordered=("**",)), {"t": [1, 1, 2]}, {"t": [1, 2]}, [("root.t[*]", IR)]),  # a multiset
        (CompareRules(unordered=("**",)), {"t": [1, 2]}, {"t": [2, 1.0]}, []),
        (
            CompareRules(unordered=("**",), schema_only=("**.b",)),
            {"t": [{"id": 1, "b": 1}, {"id": 2, "b": 2}]},
            {"t": [{"id": 2, "b": 5}, {"id": 1, "b": "x"}]},
            [("root.t[*].b", T)],  # shapes inside unordered items
        ),
        (
            CompareRules(unordered=("**",), ignore=("**.updated_at",)),
            {"t": [{"id": 1, "updated_at": "a"}, {"id": 2, "updated_at": "b"}]},
            {"t": [{"id": 2, "updated_at": "c"}, {"id": 1, "updated_at": "d"}]},
            [],
        ),
    ],
)
def test_unordered_lists(rules: CompareRules, a: Any, b: Any, expected: list[tuple[str, DiffKind]]) -> None:
    assert kinds(a, b, rules) == expected


def test_several_changed_items_of_an_unordered_list_are_paired_by_deepdiff_up_to_a_bound() -> None:
    rules = CompareRules(unordered=("root.items",))
    a = [product_body(id=n, sku=f"SKU-{n:04d}") for n in range(1, 4)]
    b = [{**a[2], "stock": 1}, {**a[1], "price": "1.00"}, {**a[0], "name": "Renamed"}]
    assert sorted(kinds({"items": a}, {"items": b}, rules)) == [
        ("root.items[*].name", C),
        ("root.items[*].price", C),
        ("root.items[*].stock", C),
    ]
    many_a = [product_body(id=n, sku=f"SKU-{n:04d}") for n in range(10)]
    many_b = [{**p, "stock": 0} for p in reversed(many_a)]
    # Items with ids are aligned by them, however many changed (and order does not count in an unordered list) ...
    assert kinds({"items": many_a}, {"items": many_b}, rules) == [("root.items[*].stock", C)] * 10
    # ... without keys, past MAX_PAIRED whole items went and came.
    positional = CompareRules(unordered=("root.items",), list_key="")
    assert sorted(set(kinds({"items": many_a}, {"items": many_b}, positional))) == [
        ("root.items[*]", IA),
        ("root.items[*]", IR),
    ]
    assert len(kinds({"items": many_a}, {"items": many_b}, positional)) == 20


def test_a_reorder_hidden_by_ignored_fields_is_still_a_reorder_and_ignored_changes_alone_are_nothing() -> None:
    rules = CompareRules(ignore=("**.updated_at",))
    a = {"t": [{"id": 1, "updated_at": "a"}, {"id": 2, "updated_at": "b"}]}
    moved = {"t": [{"id": 2, "updated_at": "c"}, {"id": 1, "updated_at": "d"}]}
    touched = {"t": [{"id": 1, "updated_at": "c"}, {"id": 2, "updated_at": "d"}]}
    assert kinds(a, moved, rules) == [("root.t", RO)]
    assert kinds(a, touched, rules) == []


def similar(path: str = "root.text", threshold: float = 0.8) -> CompareRules:
    return CompareRules(text_similarity=(TextSimilarity(path=path, threshold=threshold),))


@pytest.mark.parametrize(
    ("rules", "a", "b", "differs"),
    [
        (similar(), "Generated: a walnut desk for the study", "Generated: a walnut desk for the office", False),
        (
            similar(threshold=0.95),
            "Generated: a walnut desk for the study",
            "Generated: a walnut desk for the office",
            True,
        ),
        (similar(), "Generated: a walnut desk", "An entirely different answer here", True),
        (NO_RULES, "Generated: a walnut desk.", "Generated: a walnut desk!", True),
        (similar(path="**.text"), "Generated: one two three four five", "Generated: one two three four six", False),
        (similar(threshold=0.0), "abc", "xyz", False),
        (similar(threshold=1.0), "abc", "abc ", False),  # whitespace is not a word
        (similar(threshold=1.0), "abc", "abd", True),
        (similar(), "", "", False),
    ],
)
def test_text_similarity(rules: CompareRules, a: str, b: str, differs: bool) -> None:
    assert bool(kinds(ai_body() | {"text": a}, ai_body() | {"text": b}, rules)) is differs


@pytest.mark.parametrize(
    ("rules", "a", "b", "expected"),
    [
        (CompareRules(schema_only=("root",)), product_body(), product_body(price="1.00", stock=0, id=9), []),
        (CompareRules(schema_only=("**",)), product_body(), product_body(stock="12"), [("root.stock", T)]),
        (
            CompareRules(schema_only=("root",)),
            product_body(),
            product_body(description="text"),
            [("root.description", T)],
        ),
        (CompareRules(schema_only=("root",)), {"a": 1}, {"a": 1, "b": 2}, [("root.b", A)]),
        (CompareRules(schema_only=("root",)), {"l": []}, {"l": [{"id": 1}]}, []),  # an empty list fits any shape
        (CompareRules(schema_only=("root",)), {"l": [{"id": 1}]}, {"l": [{"id": 2}, {"id": 3}]}, []),
        (CompareRules(schema_only=("root",)), {"l": [{"id": 1}]}, {"l": [{"id": "1"}]}, [("root.l[*].id", T)]),
        (
            CompareRules(schema_only=("root.items",)),
            order_body(),
            order_body(items=[order_item(9, 7)], total="1"),
            [("root.total", C)],
        ),
        (CompareRules(schema_only=("root",)), "some text", "other text", []),
    ],
)
def test_schema_only(rules: CompareRules, a: Any, b: Any, expected: list[tuple[str, DiffKind]]) -> None:
    assert kinds(a, b, rules) == expected


# Status and headers -----------------------------------------------------------------------------------------------


def test_status_is_compared_unless_the_rules_say_not() -> None:
    a, b = primary(v1_error("bad"), status=400), shadow(v1_error("bad"), status=422)
    found = compare(a, b)
    assert [(d.path, d.kind, d.primary_value, d.shadow_value) for d in found] == [("status", DiffKind.STATUS, 400, 422)]
    assert compare(a, b, CompareRules(compare_status=False)) == []


H = DiffKind.HEADER


@pytest.mark.parametrize(
    ("rules", "a", "b", "expected"),
    [
        (NO_RULES, {"content-type": "application/json"}, {"content-type": "application/json; charset=utf-8"}, []),
        (NO_RULES, {"content-type": "application/json"}, {"content-type": "Application/JSON; charset=UTF8"}, []),
        (NO_RULES, {"content-type": "application/json"}, {"content-type": "text/plain"}, ["header.content-type"]),
        (
            NO_RULES,
            {"content-type": "text/html; charset=utf-8"},
            {"content-type": "text/html; charset=latin-1"},
            ["header.content-type"],
        ),
        (NO_RULES, {"content-type": "application/json"}, {}, ["header.content-type"]),
        (
            NO_RULES,
            {"date": "Mon", "server": "uvicorn", "x-request-id": "1"},
            {"date": "Tue", "server": "nginx", "x-request-id": "2"},
            [],
        ),
        (NO_RULES, {"x-custom": "1"}, {"x-custom": "2"}, []),  # only configured headers are compared
        (CompareRules(headers=("X-Custom",)), {"x-custom": "1"}, {"x-custom": "2"}, ["header.x-custom"]),
        (CompareRules(headers=("x-custom",)), {"x-custom": "1"}, {"x-custom": " 1 "}, []),
        (
            CompareRules(headers=("server",)),
            {"server": "uvicorn"},
            {"server": "nginx"},
            ["header.server"],
        ),  # named: compared
        (
            CompareRules(headers=("*",)),
            {"cache-control": "no-store", "date": "Mon"},
            {"cache-control": "max-age=60", "date": "Tue"},
            ["header.cache-control"],
        ),
        (CompareRules(headers=("*",)), {"x-only-v1": "1"}, {}, ["header.x-only-v1"]),
        (CompareRules(headers=()), {"content-type": "application/json"}, {"content-type": "text/plain"}, []),
    ],
)
def test_headers(rules: CompareRules, a: dict[str, str], b: dict[str, str], expected: list[str]) -> None:
    left = primary({"a": 1}, content_type=None, headers=tuple(a.items()))
    right = shadow({"a": 1}, content_type=None, headers=tuple(b.items()))
    found = compare(left, right, rules)
    assert [d.path for d in found] == expected
    assert all(d.kind is H for d in found)


def test_repeated_headers_are_compared_joined() -> None:
    rules = CompareRules(headers=("vary",))
    a = primary({}, headers=(("vary", "accept"), ("vary", "origin")))
    assert compare(a, shadow({}, headers=(("vary", "accept"), ("vary", "origin"))), rules) == []
    assert [d.shadow_value for d in compare(a, shadow({}, headers=(("vary", "accept"),)), rules)] == ["accept"]


# Bodies -------------------------------------------------------------------------------------------------------------


def test_byte_equal_bodies_take_the_fast_path_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded although the bodies were byte-equal")

    monkeypatch.setattr(response_diff, "decode_body", refuse)
    body = b'{"id": 1, "total": "27.00"}' * 50
    assert compare(primary(body=body), shadow(body=body)) == []


def test_parse_equal_bodies_match() -> None:
    a = primary(body=b'{"id": 1, "tags": ["a", "b"], "total": 27.0}')
    b = shadow(body=b'{\n  "total": 27,\n  "tags": ["a", "b"],\n  "id": 1\n}\n')
    assert compare(a, b) == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (
            primary(body=b"hello", content_type="text/plain"),
            shadow(body=b"hello!", content_type="text/plain"),
            [("root", C)],
        ),
        (primary(body=b"\x89PNG\x00\x01"), shadow(body=b"\x89PNG\x00\x02"), [("root", C)]),
        (primary(body=b""), shadow({"a": 1}), [("root", A)]),
        (primary({"a": 1}), shadow(body=b""), [("root", R)]),
        (primary({"a": 1}), shadow(body=b"<html>502</html>", content_type="text/html"), [("root", T)]),
        (primary({"a": 1}), shadow(body=b"{broken", content_type="application/json"), [("root", T)]),
        (
            primary(body=b"a=1&b=2", content_type="application/x-www-form-urlencoded"),
            shadow(body=b"b=2&a=3", content_type="application/x-www-form-urlencoded"),
            [("root.a[*]", C)],
        ),
        (primary(body=b""), shadow(body=b"", content_type=None), []),
    ],
)
def test_body_kinds(a: SideResponse, b: SideResponse, expected: list[tuple[str, DiffKind]]) -> None:
    assert [(d.path, d.kind) for d in compare(a, b, CompareRules(headers=()))] == expected


def test_binary_bodies_are_shown_by_hash() -> None:
    (found,) = compare(primary(body=b"\xff\x00"), shadow(body=b"\xff\x01"))
    assert str(found.primary_value).startswith("sha256:") and found.primary_value != found.shadow_value


def test_compressed_and_plain_bodies_with_the_same_content_match() -> None:
    a = primary(body=gzip.compress(b'{"id": 1}'), headers=(("content-encoding", "gzip"),))
    assert compare(a, shadow({"id": 1})) == []
    assert [d.path for d in compare(a, shadow({"id": 2}))] == ["root.id"]


def test_values_in_field_diffs_are_clipped() -> None:
    (found,) = compare(primary({"text": "a" * 5000}), shadow({"text": "b" * 5000}), value_limit=100)
    assert isinstance(found.primary_value, str) and len(found.primary_value.encode()) < 150
    assert found.primary_value.endswith("[truncated, 5002 bytes]")


def test_a_huge_difference_stops_at_max_diffs() -> None:
    a, b = {"l": list(range(5000))}, {"l": [n + 1 for n in range(5000)]}
    assert len(compare(primary(a), shadow(b), max_diffs=50)) == 50


def test_deep_nesting_is_reported_not_raised() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    found = compare_values(deep, {"a": 2})
    assert found and found[0][0] == "root.a"
    very_deep: Any = 2
    for _ in range(300):
        very_deep = {"a": very_deep}
    (one,) = compare_values(deep, very_deep)
    assert one[0].count(".a") == 100  # below MAX_DEPTH the differing subtree is one change


# V1 against V2, as docs/api-contract.md describes them ------------------------------------------------------------


def test_not_found_error_bodies_differ_in_shape_not_status() -> None:
    found = compare(primary(v1_error(), status=404), shadow(v2_error(), status=404))
    assert [(d.path, d.kind) for d in found] == [("root.detail", R), ("root.error", A)]
    assert found[0].primary_value == "Product not found"
    assert found[1].shadow_value == v2_error()["error"]


def test_validation_failure_is_400_on_v1_and_422_on_v2() -> None:
    v2 = v2_error("VALIDATION_ERROR", "Invalid body", errors=[{"field": "items.0.quantity", "message": "must be >= 1"}])
    found = compare(primary(v1_error("quantity must be >= 1"), status=400), shadow(v2, status=422))
    assert [(d.path, d.kind) for d in found] == [("status", DiffKind.STATUS), ("root.detail", R), ("root.error", A)]


def test_illegal_transition_is_400_on_v1_and_409_on_v2() -> None:
    v1 = primary(v1_error("Cannot ship an order that is pending"), status=400)
    v2 = shadow(v2_error("INVALID_STATUS_TRANSITION", "Cannot ship", status="pending"), status=409)
    assert compare(v1, v2)[0].kind is DiffKind.STATUS


def test_cached_ai_answer_is_a_changed_field() -> None:
    found = compare(primary(ai_body(cached=False)), shadow(ai_body(cached=True)))
    assert [(d.path, d.kind, d.primary_value, d.shadow_value) for d in found] == [("root.cached", C, False, True)]


def test_generated_order_fields_differ_until_ignored() -> None:
    a = order_body()
    b = order_body(
        order_number="ORD-11AA22BB", created_at="2026-11-28T15:00:00+00:00", updated_at="2026-11-28T15:00:00+00:00"
    )
    assert {p for p, _ in kinds(a, b)} == {"root.order_number", "root.created_at", "root.updated_at"}
    recommended = CompareRules(ignore=("**.created_at", "**.updated_at", "root.order_number"))
    assert kinds(a, b, recommended) == []


# Lists aligned by key ----------------------------------------------------------------------------------------------

POSTS = [
    {"id": 1, "title": "Post 1", "views": 10},
    {"id": 3, "title": "Post 3", "views": 30},
    {"id": 5, "title": "Post 5", "views": 50},
]


def located(a: Any, b: Any, rules: CompareRules = NO_RULES) -> list[tuple[str, DiffKind, str | None, str | None]]:
    return [(d.path, d.kind, d.primary_at, d.shadow_at) for d in compare(primary(a), shadow(b), rules)]


def test_a_reordered_list_with_ids_turned_strings_is_aligned_by_id_not_compared_by_position() -> None:
    v2 = [{**p, "id": str(p["id"])} for p in reversed(POSTS)]
    found = compare(primary({"items": POSTS}), shadow({"items": v2}))
    assert [(d.path, d.kind) for d in found] == [("root.items", RO)] + [("root.items[*].id", T)] * 3
    assert (found[0].primary_value, found[0].shadow_value) == ([1, 3, 5], ["5", "3", "1"])
    # where each item is on either side: post 1 is the first on V1, the last on V2
    assert (found[1].primary_at, found[1].shadow_at) == ("root.items[0].id", "root.items[2].id")


def test_membership_changes_are_items_added_and_removed_and_only_real_changes_inside_items_show() -> None:
    v2 = [{"id": 7, "title": "Post 7", "views": 70}, {**POSTS[2], "views": 51}, POSTS[0]]
    assert located({"items": POSTS}, {"items": v2}) == [
        ("root.items", RO, None, None),  # 1 and 5 swapped places
        ("root.items[*].views", C, "root.items[2].views", "root.items[1].views"),
        ("root.items[*]", IR, "root.items[1]", None),  # post 3 is not on the shadow
        ("root.items[*]", IA, None, "root.items[0]"),  # post 7 is new
    ]


KEYED = [("root.rows", RO), ("root.rows[*].n", C)]  # row 2 moved to the front, and its n changed
POSITIONAL = [(f"root.rows[*].{k}", C) for k in ("id", "sku", "n")] * 2  # each position "changed" every field


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (NO_RULES, KEYED),
        (CompareRules(list_key=""), POSITIONAL),
        (CompareRules(list_key="", list_keys=(ListKey(path="root.rows", key="sku"),)), KEYED),
        (CompareRules(list_keys=(ListKey(path="**", key=""),)), POSITIONAL),
        (CompareRules(list_key="code"), POSITIONAL),  # the items have no "code"
    ],
)
def test_list_keys_are_configurable_per_list(rules: CompareRules, expected: list[tuple[str, DiffKind]]) -> None:
    a = {"rows": [{"id": 1, "sku": "A", "n": 1}, {"id": 2, "sku": "B", "n": 2}]}
    b = {"rows": [{"id": 2, "sku": "B", "n": 3}, {"id": 1, "sku": "A", "n": 1}]}
    assert kinds(a, b, rules) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([{"id": 1}, {"id": 1}], [{"id": 1}]),  # duplicate keys
        ([{"id": 1}, {"name": "x"}], [{"id": 1}]),  # an item without the key
        ([{"id": {"k": 1}}], [{"id": {"k": 2}}]),  # a key that is not a scalar
        ([{"id": True}], [{"id": False}]),
        ([1, 2], [2, 3]),  # not objects
    ],
)
def test_lists_that_cannot_be_keyed_are_compared_by_position(a: Any, b: Any) -> None:
    found = kinds({"l": a}, {"l": b})
    assert found and all(kind is not RO for _, kind in found)


def test_positional_diffs_carry_their_indices_too() -> None:
    assert located({"m": [[1, 2], [3]]}, {"m": [[1, 2], [4]]}) == [("root.m[*][*]", C, "root.m[1][0]", "root.m[1][0]")]
    assert located({"l": [1, 2, 3]}, {"l": [1, 3]}) == [("root.l[*]", IR, "root.l[1]", None)]
    assert located({"a": 1}, {"a": 2}) == [("root.a", C, None, None)]  # no list on the way: the path says it all


PAIRED = {3: 4, 4: 5, 6: 7}
"""V1's order 3 is V2's order 4, V1's 4 is V2's 5 (id pairs, as `diffs.id_pairs.counterpart` finds them)."""


def paired(path: str, value: Any) -> Any:
    assert path == "root.items[*].id"  # asked about the key field of the list being aligned
    return PAIRED.get(value)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([{"id": 3, "n": 1}], [{"id": 4, "n": 1}], [("root.items[*].id", C, "root.items[0].id", "root.items[0].id")]),
        # V2's 4 is V1's 3, not V1's 4: the pairs decide which items are one record, not equal values
        (
            [{"id": 4, "n": 1}, {"id": 3, "n": 2}],
            [{"id": 5, "n": 1}, {"id": 4, "n": 3}],
            [
                ("root.items[*].id", C, "root.items[0].id", "root.items[0].id"),
                ("root.items[*].id", C, "root.items[1].id", "root.items[1].id"),
                ("root.items[*].n", C, "root.items[1].n", "root.items[1].n"),
            ],
        ),
        (  # 9 has no pair: it aligns as it is; 3 is V2's 4, now second
            [{"id": 3}, {"id": 9}],
            [{"id": 9}, {"id": 4}],
            [("root.items", RO, None, None), ("root.items[*].id", C, "root.items[0].id", "root.items[1].id")],
        ),
        ([{"id": 8}], [{"id": 8}], []),
        (
            [{"id": 8}],
            [{"id": 9}],
            [("root.items[*]", IR, "root.items[0]", None), ("root.items[*]", IA, None, "root.items[0]")],
        ),
        # V1's 4 is V2's 5, which V2 did not list; V2's 3 is another record than V1's 3
        (
            [{"id": 3}, {"id": 4}],
            [{"id": 4}, {"id": 3}],
            [
                ("root.items[*].id", C, "root.items[0].id", "root.items[0].id"),
                ("root.items[*]", IR, "root.items[1]", None),
                ("root.items[*]", IA, None, "root.items[1]"),
            ],
        ),
        # a pair that would make two items one key is not used: 6 -> 7 beside an unpaired 7
        ([{"id": 6}, {"id": 7}], [{"id": 7}, {"id": 6}], [("root.items", RO, None, None)]),
    ],
)
def test_keyed_lists_align_records_through_their_id_pairs(a: Any, b: Any, expected: list[Any]) -> None:
    found = compare(primary({"items": a}), shadow({"items": b}), counterpart=paired)
    got = [(d.path, d.kind, d.primary_at, d.shadow_at) for d in found if d.kind is not RO]
    got += [(d.path, d.kind, None, None) for d in found if d.kind is RO]
    assert sorted(got, key=str) == sorted(expected, key=str)
