"""Path templates and the rule patterns matched against them."""

from __future__ import annotations

import pytest

from diffs.paths import PatternMap, PatternSet, ancestors, fold_path, key_segment

P = "root.items[*].price"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], "root"),
        (["items", 0, "price"], "root.items[*].price"),
        (["items", 12, "tags", 3], "root.items[*].tags[*]"),
        ([0, "id"], "root[*].id"),
        (["a.b", "c d", ""], 'root["a.b"]["c d"][""]'),
        (['quote"d'], 'root["quote\\"d"]'),
        (["snake_case", "kebab-case", "$ref", "@type", "123"], "root.snake_case.kebab-case.$ref.@type.123"),
    ],
)
def test_fold_path(parts: list[str | int], expected: str) -> None:
    assert fold_path(parts) == expected


@pytest.mark.parametrize(
    ("pattern", "template", "matches"),
    [
        ("root.items[*].price", P, True),
        ("items[*].price", P, True),  # root may be left out
        ("items[0].price", P, True),  # an index in a pattern means any index
        ("root.items.price", P, False),  # [*] is not optional
        ("root.items[*]", P, False),  # a pattern names a path, not its subtree
        ("**.price", P, True),
        ("**.price", "root.price", True),  # ** may be empty
        ("**.price", "root.unit_price", False),
        ("**.price", "root.price.amount", False),
        ("**", "root", True),
        ("**", P, True),
        ("root", "root", True),
        ("root", P, False),
        ("root.*.price", "root.items.price", True),
        ("root.*.price", P, False),  # * is one key, not an index
        ("root.*[*].price", P, True),
        ("**.*_at", "root.items[*].created_at", True),
        ("**.*_at", "root.items[*].status", False),
        ("root.items[*].*", "root.items[*].sku", True),
        ('root["a.b"].c', 'root["a.b"].c', True),
        ("root.a.b.c", 'root["a.b"].c', False),
        ("**.created_at", "root.items[*].created_at", True),
        ("items[*].updated_at", "root.items[*].updated_at", True),
        ("items[*].updated_at", "root.updated_at", False),
    ],
)
def test_pattern_matching(pattern: str, template: str, matches: bool) -> None:
    assert PatternSet([pattern]).matches(template) is matches


def test_a_set_matches_when_any_pattern_does_and_covers_descendants() -> None:
    patterns = PatternSet(["root.order_number", "**.created_at"])
    assert patterns.matches("root.order_number")
    assert patterns.matches("root.items[*].created_at")
    assert not patterns.matches("root.order_number.x")
    assert patterns.covers("root.order_number.x")
    assert not PatternSet([]).matches("root")
    assert not PatternSet([])


def test_later_entries_win_in_a_pattern_map() -> None:
    mapping = PatternMap([("**", "everywhere"), ("root.total", "total only")])
    assert mapping.lookup("root.total") == "total only"
    assert mapping.lookup("root.subtotal") == "everywhere"
    assert PatternMap[str]([]).lookup("root") is None


def test_unbalanced_brackets_fail_at_compile_time() -> None:
    with pytest.raises(ValueError, match="unbalanced bracket"):
        PatternSet(["items[.price"])


def test_ancestors_nearest_first() -> None:
    assert list(ancestors('root.a[*]["x.y"].b')) == ['root.a[*]["x.y"]', "root.a[*]", "root.a", "root"]
    assert list(ancestors("root")) == []


@pytest.mark.parametrize(("key", "segment"), [("price", ".price"), ("a b", '["a b"]'), ("é", '["é"]')])
def test_key_segment(key: str, segment: str) -> None:
    assert key_segment(key) == segment
