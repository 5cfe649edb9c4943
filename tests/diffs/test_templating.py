"""EndpointTemplater: ids become placeholders, words stay, configured patterns win, positions are learned."""

from __future__ import annotations

import pytest

from diffs.templating import EndpointTemplater, LearnedTemplate, TemplateLearner, segment_placeholder

PATTERNS = (
    "/api/orders/{order_id}/items/{item_id}",
    "/api/products/sku/{sku}",
    "POST /api/ai/products/{product_id}/description",
)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/orders/42", "GET /api/orders/{id}"),
        ("get", "/api/orders/42", "GET /api/orders/{id}"),
        ("POST", "/api/orders/7/pay", "POST /api/orders/{id}/pay"),
        ("GET", "/api/orders/ORD-5F3A9C1B", "GET /api/orders/{id}"),
        ("GET", "/api/users/550e8400-e29b-41d4-a716-446655440000", "GET /api/users/{id}"),
        ("GET", "/api/users/550E8400E29B41D4A716446655440000", "GET /api/users/{id}"),
        ("GET", "/api/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", "GET /api/events/{id}"),
        ("GET", "/api/blobs/9f86d081884c7d659a2feaa0c55ad015", "GET /api/blobs/{id}"),
        ("GET", "/api/commits/9f86d081884c7d65", "GET /api/commits/{id}"),
        ("GET", "/api/commits/9f86d081884c7d659a2fea", "GET /api/commits/{id}"),
        ("GET", "/api/customers/cus_Nffrfe8sF3aQ2x", "GET /api/customers/{id}"),
        ("GET", "/api/products/sku/SKU-0048", "GET /api/products/sku/{id}"),  # our demo's SKUs, out of the box
        ("GET", "/shop/products/17.json", "GET /shop/products/{id}.json"),  # an id with an extension
        ("GET", "/posts/5rCadNROXW8", "GET /posts/{id}"),  # a generated id (base62)
        ("GET", "/posts/1OD76YTDHYV", "GET /posts/{id}"),
        ("GET", "/posts/5rCadNROXW8.json", "GET /posts/{id}.json"),
        ("GET", "/api/products?status=active", "GET /api/products"),
        ("GET", "/", "GET /"),
        ("GET", "", "GET /"),
        ("GET", "/api/products/", "GET /api/products/"),
    ],
)
def test_automatic_placeholders(method: str, path: str, expected: str) -> None:
    assert EndpointTemplater().template(method, path) == expected


@pytest.mark.parametrize(
    "segment",
    [
        "products",
        "sku",
        "api",
        "v2",
        "health",
        "metrics",
        "description",
        "settings2024",
        "HelloWorld2024",
        "GetUserProfile",
        "report.pdf",
        "covid-19",
        "page-2",
        "deadbeefdeadbeef",  # hex letters without a digit read as a word
        "walnut-desk",
        "utf-8",
    ],
)
def test_words_and_short_codes_stay_literal(segment: str) -> None:
    assert segment_placeholder(segment) is None
    assert EndpointTemplater().template("GET", f"/api/x/{segment}") == f"GET /api/x/{segment}"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/orders/42/items/7", "GET /api/orders/{order_id}/items/{item_id}"),
        ("GET", "/api/products/sku/SKU-0001", "GET /api/products/sku/{sku}"),
        ("GET", "/api/products/sku/walnut-desk", "GET /api/products/sku/{sku}"),
        ("GET", "/api/products/sku", "GET /api/products/sku"),  # other lengths fall through to the automatic rules
        ("POST", "/api/ai/products/3/description", "POST /api/ai/products/{product_id}/description"),
        ("GET", "/api/ai/products/3/description", "GET /api/ai/products/{id}/description"),  # pattern is POST only
        ("GET", "/api/products/42", "GET /api/products/{id}"),
    ],
)
def test_configured_patterns_win(method: str, path: str, expected: str) -> None:
    assert EndpointTemplater(PATTERNS).template(method, path) == expected


def test_more_literal_patterns_win_over_broader_ones() -> None:
    templater = EndpointTemplater(["/api/{resource}/{key}", "/api/products/{product_id}"])
    assert templater.template("GET", "/api/products/9") == "GET /api/products/{product_id}"
    assert templater.template("GET", "/api/orders/9") == "GET /api/{resource}/{key}"


def test_cardinality_is_bounded_by_templates_and_the_cache() -> None:
    templater = EndpointTemplater(cache_size=64)
    endpoints = {templater.template("GET", f"/api/orders/{n}") for n in range(10_000)}
    assert endpoints == {"GET /api/orders/{id}"}
    assert templater._cached.cache_info().currsize == 64


def learning_templater(learn_after: int = 20) -> EndpointTemplater:
    return EndpointTemplater(learner=TemplateLearner("blog", learn_after=learn_after))


def test_ids_the_rules_miss_are_ids_where_the_rules_saw_ids() -> None:
    templater = learning_templater()
    assert templater.template("GET", "/posts/vrkjkvKpxV_") == "GET /posts/vrkjkvKpxV_"  # no evidence yet
    assert templater.template("GET", "/posts/7") == "GET /posts/{id}"  # now /posts/ holds ids ...
    assert templater.template("GET", "/posts/oluY43kxems") == "GET /posts/{id}"  # ... so this is one
    assert templater.template("GET", "/posts/Z-jwxiw_SfL.json") == "GET /posts/{id}.json"
    assert templater.template("GET", "/posts/search") == "GET /posts/search"  # words stay routes
    assert templater.template("GET", "/posts/7/comments/oluY43kxems") == "GET /posts/{id}/comments/oluY43kxems"
    assert templater.learner is not None
    assert templater.learner.take() == [LearnedTemplate("blog", "/posts/{id}", "id")]
    assert templater.learner.take() == []


def test_slugs_become_a_parameter_after_enough_distinct_values() -> None:
    templater = learning_templater(learn_after=5)
    names = [templater.template("GET", f"/blog/my-post-number-{word}") for word in "abcdefg"]
    assert names[:4] == [f"GET /blog/my-post-number-{w}" for w in "abcd"]
    assert names[4:] == ["GET /blog/{id}"] * 3
    assert templater.template("GET", "/blog/my-post-number-a") == "GET /blog/{id}"  # the cache followed


def test_many_routes_that_are_single_words_are_not_taken_for_ids() -> None:
    templater = learning_templater(learn_after=5)
    routes = ["issues", "pulls", "commits", "branches", "tags", "releases", "hooks"]
    assert [templater.template("GET", f"/repos/{r}") for r in routes] == [f"GET /repos/{r}" for r in routes]


def test_facts_learned_elsewhere_name_requests_the_same_way_here() -> None:
    here, there = learning_templater(), learning_templater()
    assert there.template("GET", "/posts/12") == "GET /posts/{id}"
    assert here.template("GET", "/posts/vrkjkvKpxV_") == "GET /posts/vrkjkvKpxV_"
    assert there.learner is not None
    assert here.learn(there.learner.take())
    assert here.template("GET", "/posts/vrkjkvKpxV_") == "GET /posts/{id}"
    assert not here.learn([LearnedTemplate("blog", "/posts/{id}", "id")])  # nothing new


def test_what_a_learner_watches_is_bounded() -> None:
    learner = TemplateLearner("blog", learn_after=3, max_prefixes=2)
    templater = EndpointTemplater(learner=learner)
    for n in range(50):
        templater.template("GET", f"/a{n}/x")
    assert len(learner._seen) <= 2 and all(len(v) <= 3 for v in learner._seen.values())
