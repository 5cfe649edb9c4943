"""EndpointTemplater: ids become placeholders, words stay, configured patterns win."""

from __future__ import annotations

import pytest

from diffs.templating import EndpointTemplater, segment_placeholder

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
        ("GET", "/api/orders/ORD-5F3A9C1B", "GET /api/orders/{token}"),
        ("GET", "/api/users/550e8400-e29b-41d4-a716-446655440000", "GET /api/users/{uuid}"),
        ("GET", "/api/users/550E8400E29B41D4A716446655440000", "GET /api/users/{uuid}"),
        ("GET", "/api/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", "GET /api/events/{ulid}"),
        ("GET", "/api/blobs/9f86d081884c7d659a2feaa0c55ad015", "GET /api/blobs/{uuid}"),  # 32 hex = a UUID's width
        ("GET", "/api/commits/9f86d081884c7d65", "GET /api/commits/{hex}"),
        ("GET", "/api/commits/9f86d081884c7d659a2fea", "GET /api/commits/{hex}"),
        ("GET", "/api/customers/cus_Nffrfe8sF3aQ2x", "GET /api/customers/{token}"),
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
        "SKU-0001",  # a short code: stays unless a pattern says otherwise
        "settings2024",
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
