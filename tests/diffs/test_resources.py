"""diffs.resources: collections and their ids in a path, and the fields that name a resource."""

from __future__ import annotations

import pytest

from diffs.resources import IdNaming, PathId, Resource, Target, by_name, endpoint_target, singular, target


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("posts", "post"),
        ("categories", "category"),
        ("addresses", "address"),
        ("boxes", "box"),
        ("statuses", "status"),
        ("sku", "sku"),
        ("news", "new"),  # English enough: the reference pattern would be new_id
        ("status", "status"),
        ("analysis", "analysis"),
    ],
)
def test_singular(word: str, expected: str) -> None:
    assert singular(word) == expected


POSTS, COMMENTS = Resource("/posts"), Resource("/posts/{}/comments")


def test_a_resource_knows_its_names_and_its_sub_collections() -> None:
    assert (COMMENTS.segments, COMMENTS.plural, COMMENTS.singular) == (
        ("posts", "{}", "comments"),
        "comments",
        "comment",
    )
    assert POSTS.below("comments") == COMMENTS
    assert Resource("/posts") == POSTS and hash(Resource("/posts")) == hash(POSTS)


@pytest.mark.parametrize(
    ("path", "template", "known", "expected"),
    [
        ("/posts", "/posts", (), Target((), POSTS, None)),
        ("/posts/5", "/posts/{id}", (), Target((PathId(1, POSTS, "5"),), POSTS, PathId(1, POSTS, "5"))),
        (
            "/posts/17.json",
            "/posts/{id}.json",
            (),
            Target((PathId(1, POSTS, "17", ".json"),), POSTS, PathId(1, POSTS, "17", ".json")),
        ),
        (
            "/posts/5/comments/9",
            "/posts/{id}/comments/{id}",
            (),
            Target(
                (PathId(1, POSTS, "5"), PathId(3, COMMENTS, "9")),
                COMMENTS,
                PathId(3, COMMENTS, "9"),
            ),
        ),
        (  # a collection below an item: about the comments of post 5
            "/posts/5/comments",
            "/posts/{id}/comments",
            (),
            Target((PathId(1, POSTS, "5"),), COMMENTS, PathId(1, POSTS, "5")),
        ),
        (  # an id the templates did not recognise, right after a known collection
            "/posts/vrkjkvKpxV_",
            "/posts/vrkjkvKpxV_",
            (POSTS,),
            Target((PathId(1, POSTS, "vrkjkvKpxV_"),), POSTS, PathId(1, POSTS, "vrkjkvKpxV_")),
        ),
        ("/posts/search", "/posts/search", (), Target((), Resource("/posts/search"), None)),
    ],
)
def test_target(path: str, template: str, known: tuple[Resource, ...], expected: Target) -> None:
    split = [s for s in path.strip("/").split("/") if s]
    assert target(split, [s for s in template.strip("/").split("/") if s], known) == expected


def test_endpoint_target() -> None:
    assert endpoint_target("GET /posts/{id}").collection == POSTS
    assert endpoint_target("GET /posts").collection == POSTS
    assert endpoint_target("POST /posts/{id}/comments").collection == COMMENTS
    assert endpoint_target("GET /posts/{id}.json").collection == POSTS


USERS = Resource("/users")
KNOWN = (POSTS, USERS, COMMENTS, Resource("/blog-posts"))


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("user_id", (USERS,)),
        ("userId", (USERS,)),
        ("post_id", (POSTS,)),
        ("comment_id", (COMMENTS,)),
        ("blogPostId", (Resource("/blog-posts"),)),
        ("id", ()),  # the own id is decided by context, not by name
        ("views", ()),
        ("customer_id", ()),  # no such resource known
    ],
)
def test_reference_fields_name_a_resource_by_its_singular(field: str, expected: tuple[Resource, ...]) -> None:
    assert IdNaming().named_by(field, KNOWN) == expected


def test_explicit_references_and_other_patterns() -> None:
    naming = IdNaming(key="uid", references=("{singular}_ref",), explicit={"author": "/users"})
    assert naming.named_by("author", KNOWN) == (USERS,)
    assert naming.named_by("post_ref", KNOWN) == (POSTS,)
    assert naming.named_by("post_id", KNOWN) == ()
    assert naming.own_fields(POSTS) == {"uid", "post_ref"}
    assert IdNaming().own_fields(POSTS) == {"id", "post_id", "postId"}


def test_a_container_names_its_items_resource() -> None:
    assert by_name("comments", KNOWN) == (COMMENTS,)
    assert by_name("post", KNOWN) == (POSTS,)
    assert by_name("items", KNOWN) == () and by_name(None, KNOWN) == ()
