"""Bad input gets a clear 4xx `{"detail": ...}` and changes nothing; an unexpected failure is a JSON 500."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from tests.legacy_app.support import MakeProduct, Snapshot


@pytest.mark.parametrize("path", ["/api/orders", "/api/products", "/api/ai/generate", "/api/products/1"])
@pytest.mark.parametrize("content", [b"{", b"", b"not json", b'{"a": 1,}', b"\xff\xfe\x00", b"[" * 100_000])
async def test_malformed_json_is_400(client: httpx.AsyncClient, snapshot: Snapshot, path: str, content: bytes) -> None:
    before = await snapshot()
    method = "PATCH" if path == "/api/products/1" else "POST"
    response = await client.request(method, path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid JSON body"}
    assert await snapshot() == before


@pytest.mark.parametrize("content", [b"[]", b'"text"', b"3", b"null"])
async def test_body_must_be_an_object(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post("/api/orders", content=content)
    assert response.status_code == 400
    assert response.json() == {"detail": "Request body must be a JSON object"}


def _with(item: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"customer_id": 1, "items": [{"product_id": 1, "quantity": 1} | (item or {})]}
    return {k: v for k, v in (base | body).items() if v != "<drop>"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (_with(customer_id="<drop>"), "Field 'customer_id' is required"),
        (_with(customer_id="1"), "customer_id must be an integer"),
        (_with(customer_id=1.5), "customer_id must be an integer"),
        (_with(items="<drop>"), "Field 'items' is required"),
        (_with(items=[]), "items must be a non-empty list"),
        (_with(items={"product_id": 1, "quantity": 1}), "items must be a non-empty list"),
        (_with(items=[5]), "items[0] must be an object with product_id and quantity"),
        (_with({"product_id": None}), "items[0].product_id must be an integer"),
        (_with({"product_id": "1"}), "items[0].product_id must be an integer"),
        (_with({"quantity": 0}), "items[0].quantity must be an integer >= 1"),
        (_with({"quantity": -2}), "items[0].quantity must be an integer >= 1"),
        (_with({"quantity": 1.5}), "items[0].quantity must be an integer >= 1"),
        (_with({"quantity": 2.0}), "items[0].quantity must be an integer >= 1"),
        (_with({"quantity": "2"}), "items[0].quantity must be an integer >= 1"),
        (_with({"quantity": True}), "items[0].quantity must be an integer >= 1"),
        (_with({"quantity": None}), "items[0].quantity must be an integer >= 1"),
        (_with(coupon="BOGUS"), "Unknown coupon: BOGUS"),
        (_with(coupon="welcome10"), "Unknown coupon: welcome10"),
        (_with(coupon=""), "Unknown coupon: "),
    ],
)
async def test_order_validation_failures_are_400_with_nothing_changed(
    client: httpx.AsyncClient, snapshot: Snapshot, body: dict[str, Any], detail: str
) -> None:
    before = await snapshot()
    response = await client.post("/api/orders", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert await snapshot() == before


async def test_a_bad_second_line_rejects_the_whole_order(
    client: httpx.AsyncClient, make_product: MakeProduct, snapshot: Snapshot
) -> None:
    product = await make_product(stock=5)
    before = await snapshot()
    body = {"customer_id": 1, "items": [{"product_id": product["id"], "quantity": 1}, {"product_id": 1, "quantity": 0}]}
    assert (await client.post("/api/orders", json=body)).status_code == 400
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("second_line", "status", "detail"),
    [
        ({"product_id": 999, "quantity": 1}, 404, "Product 999 not found"),
        ({"product_id": 2**70, "quantity": 1}, 404, f"Product {2**70} not found"),
        ({"product_id": 5, "quantity": 1}, 409, "Product 5 is not active"),  # demo product 5 is inactive
        ({"product_id": 6, "quantity": 1}, 409, "Product 6 is not active"),  # discontinued
        ({"product_id": 1, "quantity": 10_000}, 409, "Insufficient stock for product 1: requested 10000, available 33"),
    ],
)
async def test_a_failing_second_line_takes_no_stock_from_the_first(
    client: httpx.AsyncClient,
    make_product: MakeProduct,
    snapshot: Snapshot,
    second_line: dict[str, int],
    status: int,
    detail: str,
) -> None:
    product = await make_product(stock=5)
    before = await snapshot()
    body = {"customer_id": 1, "items": [{"product_id": product["id"], "quantity": 5}, second_line]}
    response = await client.post("/api/orders", json=body)
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert await snapshot() == before
    assert (await client.get(f"/api/products/{product['id']}")).json()["stock"] == 5


@pytest.mark.parametrize("customer_id", [99, 0, -1, 2**70])
async def test_unknown_customer_is_404(client: httpx.AsyncClient, snapshot: Snapshot, customer_id: int) -> None:
    before = await snapshot()
    response = await client.post("/api/orders", json=_with(customer_id=customer_id))
    assert response.status_code == 404
    assert response.json() == {"detail": "Customer not found"}
    assert await snapshot() == before


def _product(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sku": "NEW", "name": "x", "cost_price": "1"}
    return {k: v for k, v in (base | fields).items() if v != "<drop>"}


STOCK_RANGE = "stock must be an integer between 0 and 2147483647"
COST_RANGE = "cost_price must be a number between 0 and 1000000000"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (_product(sku="<drop>"), "Field 'sku' is required"),
        (_product(sku="  "), "Field 'sku' must be a non-empty string"),
        (_product(sku=12), "Field 'sku' must be a non-empty string"),
        (_product(name="<drop>"), "Field 'name' is required"),
        (_product(cost_price="<drop>"), "Field 'cost_price' is required"),
        (_product(cost_price="abc"), "cost_price must be a number"),
        (_product(cost_price=True), "cost_price must be a number"),
        (_product(cost_price="NaN"), COST_RANGE),
        (_product(cost_price="-1"), COST_RANGE),
        (_product(cost_price=1e300), COST_RANGE),
        (_product(margin_rate=-1), "margin_rate must be a number between 0 and 10000"),
        (_product(status="sold"), "status must be one of active, inactive, out_of_stock, discontinued"),
        (_product(stock=-1), STOCK_RANGE),
        (_product(stock=1.5), STOCK_RANGE),
        (_product(stock=2**70), STOCK_RANGE),
        (_product(description=5), "Field 'description' must be a string or null"),
    ],
)
async def test_product_validation_failures_are_400_with_nothing_created(
    client: httpx.AsyncClient, snapshot: Snapshot, body: dict[str, Any], detail: str
) -> None:
    before = await snapshot()
    response = await client.post("/api/products", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert await snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"name": ""},
        {"stock": None},
        {"stock": -3},
        {"cost_price": "x"},
        {"status": "gone"},
        {"cost_price": 5, "stock": "many"},  # a valid change next to a bad one applies neither
    ],
)
async def test_patch_validation_failures_change_nothing(
    client: httpx.AsyncClient, snapshot: Snapshot, body: dict[str, Any]
) -> None:
    before = await snapshot()
    response = await client.patch("/api/products/1", json=body)
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [
        ("GET", "/api/nothing-here", 404, "Not Found"),
        ("GET", "/api/products/abc", 404, "Not Found"),
        ("PUT", "/api/products/1", 405, "Method Not Allowed"),
        ("DELETE", "/api/orders/1", 405, "Method Not Allowed"),
    ],
)
async def test_routing_errors_are_json(
    client: httpx.AsyncClient, method: str, path: str, status: int, detail: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.json() == {"detail": detail}


async def test_an_unexpected_error_is_a_json_500(client: httpx.AsyncClient, db_url: str) -> None:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        conn.execute("ALTER TABLE orders RENAME TO orders_gone")
    response = await client.get("/api/orders")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert (await client.get("/health")).status_code == 200  # the app keeps serving
