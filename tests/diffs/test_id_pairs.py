"""diffs.id_pairs: pairs per resource and direction, and the one decision the analysis makes with them."""

from __future__ import annotations

from typing import Any

import pytest

from diffs.exchange import DiffKind, FieldDiff
from diffs.id_pairs import IdPair, IdPairs, correlated, counterpart, id_text
from diffs.resources import IdNaming


def pairs_of(*pairs: IdPair, capacity: int = 100) -> IdPairs:
    built = IdPairs(capacity)
    built.remember(pairs)
    return built


POST = IdPair("blog", "/posts", "v1", 6, "v2", "5rCadNROXW8")
COMMENT = IdPair("blog", "/comments", "v1", 5, "v2", "oluY43kxems")


def test_pairs_are_kept_per_resource_both_ways_and_typed() -> None:
    pairs = pairs_of(POST, COMMENT)
    assert pairs.lookup("blog", "/posts", "v1", "v2", 6) == "5rCadNROXW8"
    assert pairs.lookup("blog", "/posts", "v1", "v2", "6") == "5rCadNROXW8"  # 6 and "6" are one id
    assert pairs.lookup("blog", "/posts", "v2", "v1", "5rCadNROXW8") == 6  # back again, an int as V1 gave it
    assert pairs.lookup("blog", "/posts", "v1", "v2", 5) is None  # 5 is a comment, not a post
    assert pairs.lookup("blog", "/comments", "v1", "v2", 5) == "oluY43kxems"
    assert pairs.lookup("shop", "/posts", "v1", "v2", 6) is None
    assert {r.collection for r in pairs.resources("blog")} == {"/posts", "/comments"}
    assert pairs.active("blog") and not pairs.active("shop")


def test_a_side_is_reached_through_the_third_one() -> None:
    # Created while V1 was primary: V1 -> V2 and V1 -> secondary. After a promotion, V2's id finds the secondary's.
    pairs = pairs_of(IdPair("blog", "/posts", "v1", 6, "v2", "abc"), IdPair("blog", "/posts", "v1", 6, "secondary", 9))
    assert pairs.lookup("blog", "/posts", "v2", "secondary", "abc") == 9


def test_each_map_is_a_bounded_lru() -> None:
    pairs = pairs_of(*(IdPair("blog", "/posts", "v1", n, "v2", 100 + n) for n in (1, 2, 3)), capacity=3)
    assert pairs.lookup("blog", "/posts", "v1", "v2", 1) == 101  # used: now the newest
    pairs.remember([IdPair("blog", "/posts", "v1", 4, "v2", 104)])
    assert [pairs.lookup("blog", "/posts", "v1", "v2", n) for n in (1, 2, 3, 4)] == [101, None, 103, 104]


@pytest.mark.parametrize(("value", "text"), [(7, "7"), ("7", "7"), (True, None), (1.5, None), ("", None), (None, None)])
def test_id_text(value: Any, text: str | None) -> None:
    assert id_text(value) == text


def diff(endpoint: str, path: str, a: Any, b: Any, kind: DiffKind = DiffKind.CHANGED) -> FieldDiff:
    return FieldDiff("x", endpoint, path, kind, a, b)


def decide(d: FieldDiff, pairs: IdPairs, naming: IdNaming | None = None) -> bool:
    return correlated(d, service="blog", primary_side="v1", shadow_side="v2", pairs=pairs, naming=naming or IdNaming())


PAIRS = pairs_of(
    IdPair("blog", "/posts", "v1", 6, "v2", 1006),
    IdPair("blog", "/users", "v1", 3, "v2", 1003),
    IdPair("blog", "/posts/{}/comments", "v1", 9, "v2", 1009),
)


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (diff("GET /posts/{id}", "root.id", 6, 1006), True),  # the post's own id
        (diff("GET /posts", "root.items[*].id", 6, 1006), True),  # the items of the posts list
        (diff("GET /comments/{id}", "root.post_id", 6, 1006), True),  # a reference names its resource
        (diff("GET /comments/{id}", "root.postId", 6, 1006), True),
        (diff("GET /posts/{id}", "root.comments[*].id", 9, 1009), True),  # the container names the resource
        (diff("GET /users/{id}", "root.id", 6, 1006), False),  # user 6 merely equals a known post id
        (diff("GET /posts/{id}", "root.user_id", 6, 1006), False),  # a user field with a post's pair
        (diff("GET /posts/{id}", "root.views", 6, 1006), False),  # not an id field at all
        (diff("GET /posts/{id}", "root.id", 6, 1007), False),  # not the pair's value
        (diff("GET /posts/{id}", "root.id", 6, "1006"), False),  # the type changed: a finding of its own
        (diff("GET /posts/{id}", "root.id", 6, 1006, DiffKind.TYPE_CHANGED), False),
        (diff("GET /posts/{id}", "root.user_id", 3, 1003), True),
    ],
)
def test_correlated_only_where_the_field_names_the_pairs_resource(d: FieldDiff, expected: bool) -> None:
    assert decide(d, PAIRS) is expected


def test_explicit_references_name_their_resource() -> None:
    d = diff("GET /posts/{id}", "root.author", 3, 1003)
    assert not decide(d, PAIRS)
    assert decide(d, PAIRS, IdNaming(explicit={"author": "/users"}))


def test_without_pairs_for_the_service_nothing_is_correlated() -> None:
    assert not decide(diff("GET /posts/{id}", "root.id", 6, 1006), IdPairs())


def test_the_counterpart_of_a_field_is_looked_up_in_the_resource_it_names() -> None:
    sides: dict[str, Any] = {"service": "blog", "from_side": "v1", "to_side": "v2", "pairs": pairs_of(POST, COMMENT)}
    sides["naming"] = IdNaming()
    assert counterpart("root.items[*].id", 6, endpoint="GET /posts", **sides) == "5rCadNROXW8"
    assert counterpart("root.comments[*].id", 5, endpoint="GET /posts/{id}", **sides) == "oluY43kxems"
    assert counterpart("root.comments[*].id", 6, endpoint="GET /posts/{id}", **sides) is None  # 6 is a post
    assert counterpart("root.items[*].id", 5, endpoint="GET /posts", **sides) is None  # 5 is a comment
    assert counterpart("root.items[*].id", True, endpoint="GET /posts", **sides) is None
    assert counterpart("root.items[*].id", 6, endpoint="GET /posts", **{**sides, "service": "shop"}) is None
