"""Products through the HTTP API: the contract's body, price derivation, CRUD, list filters and refusals."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from tests.v2_app.support import MakeProduct, Snapshot, assert_error

PRODUCT_KEYS = {
    "id",
    "sku",
    "name",
    "description",
    "cost_price",
    "margin_rate",
    "price",
    "status",
    "stock",
    "created_at",
    "updated_at",
}


async def test_seeded_product_has_the_contract_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/products/1")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PRODUCT_KEYS
    assert {k: body[k] for k in PRODUCT_KEYS - {"created_at", "updated_at"}} == {
        "id": 1,
        "sku": "SKU-0001",
        "name": "Oak Chair 1",
        "description": None,
        "cost_price": "12.01",
        "margin_rate": "15.0",
        "price": "13.81",
        "status": "active",
        "stock": 33,
    }
    assert body["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("cost_price", "margin_rate", "price"),
    [
        ("19.99", "25.5", "25.09"),
        ("120.00", "10.0", "132.00"),
        ("0.05", "10", "0.06"),  # 0.055 rounds half up
        ("33.33", "15.0", "38.33"),
        ("10", "0", "10.00"),
        ("1.005", "10", "1.11"),  # cost rounds half up to 1.01 first, as V1 does
        ("10.00", "12.34", "11.23"),  # margin rounds to 12.3
    ],
)
async def test_price_is_derived_from_cost_and_margin(
    make_product: MakeProduct, cost_price: str, margin_rate: str, price: str
) -> None:
    product = await make_product(cost_price=cost_price, margin_rate=margin_rate)

    assert product["price"] == price
    assert product["cost_price"] == str(Decimal(cost_price).quantize(Decimal("0.01"), ROUND_HALF_UP))


async def test_json_numbers_are_read_exactly(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/products", content=b'{"sku": "NUM-1", "name": "Numbers", "cost_price": 19.99, "margin_rate": 25.5}'
    )

    assert response.status_code == 201
    assert (response.json()["cost_price"], response.json()["price"]) == ("19.99", "25.09")


async def test_create_applies_defaults_and_reads_back(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/products", json={"sku": "NEW-1", "name": "Lamp", "cost_price": "120.00"})

    assert created.status_code == 201
    body = created.json()
    assert (body["margin_rate"], body["price"], body["status"], body["stock"], body["description"]) == (
        "10.0",
        "132.00",
        "active",
        0,
        None,
    )
    assert body["id"] == 61
    assert (await client.get("/api/products/61")).json() == body
    assert (await client.get("/api/products/sku/NEW-1")).json() == body


async def test_duplicate_sku_is_refused_and_nothing_is_created(client: httpx.AsyncClient, snapshot: Snapshot) -> None:
    before = await snapshot()

    response = await client.post("/api/products", json={"sku": "SKU-0001", "name": "Again", "cost_price": "1.00"})

    error = assert_error(response, 409, "ALREADY_EXISTS")
    assert error["details"]["sku"] == "SKU-0001"
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No sku", "cost_price": "1.00"}, "sku"),
        ({"sku": "X-1", "cost_price": "1.00"}, "name"),
        ({"sku": "X-1", "name": "No cost"}, "cost_price"),
        ({"sku": "X-1", "name": "Negative", "cost_price": "-1.00"}, "cost_price"),
        ({"sku": "X-1", "name": "Too dear", "cost_price": "1000000000.01"}, "cost_price"),
        ({"sku": "X-1", "name": "   ", "cost_price": "1.00"}, "name"),
        ({"sku": "X-1", "name": "Bad status", "cost_price": "1.00", "status": "sold"}, "status"),
        ({"sku": "X-1", "name": "Bad stock", "cost_price": "1.00", "stock": -1}, "stock"),
        ({"sku": "X-1", "name": "Bad margin", "cost_price": "1.00", "margin_rate": "abc"}, "margin_rate"),
        ({"sku": "", "name": "Empty sku", "cost_price": "1.00"}, "sku"),
    ],
)
async def test_invalid_product_is_a_validation_error_with_the_field(
    client: httpx.AsyncClient, snapshot: Snapshot, body: dict[str, Any], field: str
) -> None:
    before = await snapshot()

    error = assert_error(await client.post("/api/products", json=body), 422, "VALIDATION_ERROR")

    assert field in [e["field"] for e in error["details"]["errors"]]
    assert await snapshot() == before


async def test_unknown_product_is_not_found_with_details(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.get("/api/products/999"), 404, "NOT_FOUND")

    assert error["message"] == "Product 999 not found"
    assert error["details"] == {"resource": "Product", "id": "999"}
    assert_error(await client.get("/api/products/sku/NOPE"), 404, "NOT_FOUND")
    assert_error(await client.get("/api/products/99999999999999999999999"), 404, "NOT_FOUND")


async def test_list_is_an_envelope_ordered_by_id(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/products")).json()

    assert (body["total"], body["limit"], body["offset"]) == (60, 50, 0)
    assert [p["id"] for p in body["items"]] == list(range(1, 51))

    page = (await client.get("/api/products", params={"limit": 5, "offset": 58})).json()
    assert [p["id"] for p in page["items"]] == [59, 60]
    assert (page["total"], page["limit"], page["offset"]) == (60, 5, 58)


async def test_list_limit_is_capped_at_200(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    body = (await client.get("/api/products", params={"limit": 1000})).json()

    assert body["limit"] == 200
    assert len(body["items"]) == 60


@pytest.mark.parametrize(
    ("params", "expected_ids"),
    [
        ({"status": "inactive"}, [4, 11, 18, 25, 32, 39, 46, 53, 60]),
        ({"q": "walnut"}, [7, 14, 21, 28, 35, 42, 49, 56]),
        ({"q": "SKU-000"}, list(range(1, 10))),
        ({"q": "walnut", "status": "discontinued"}, []),
        ({"q": "%"}, []),  # LIKE wildcards are matched literally
        ({"status": "sold"}, []),  # a filter no product can match, as in V1
        ({"status": "", "q": "", "offset": "", "limit": "", "x": "1"}, list(range(1, 61))),  # empty means absent
        ({"q": "CHAIR 1"}, [1, 11]),
    ],
)
async def test_list_filters(client: httpx.AsyncClient, params: dict[str, str], expected_ids: list[int]) -> None:
    body = (await client.get("/api/products", params=params)).json()

    assert [p["id"] for p in body["items"]] == expected_ids[:50]
    assert body["total"] == len(expected_ids)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
async def test_bad_list_query_is_a_validation_error(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    error = assert_error(await client.get("/api/products", params=params), 422, "VALIDATION_ERROR")

    assert [e["field"] for e in error["details"]["errors"]] == [field]


async def test_patch_recomputes_price_and_keeps_the_rest(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/api/products/1", json={"cost_price": "19.99", "margin_rate": "25.5", "description": "Sturdy"}
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["cost_price"], body["margin_rate"], body["price"], body["description"]) == (
        "19.99",
        "25.5",
        "25.09",
        "Sturdy",
    )
    assert (body["name"], body["stock"], body["sku"]) == ("Oak Chair 1", 33, "SKU-0001")
    assert (await client.get("/api/products/1")).json() == body

    cleared = await client.patch("/api/products/1", json={"description": None, "status": "inactive", "stock": 3})
    assert (cleared.json()["description"], cleared.json()["status"], cleared.json()["stock"]) == (None, "inactive", 3)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"stock": -1}, "stock"),
        ({"cost_price": "x"}, "cost_price"),
        ({"status": "x"}, "status"),
    ],
)
async def test_invalid_patch_changes_nothing(
    client: httpx.AsyncClient, snapshot: Snapshot, body: dict[str, Any], field: str
) -> None:
    before = await snapshot()

    error = assert_error(await client.patch("/api/products/1", json=body), 422, "VALIDATION_ERROR")

    assert [e["field"] for e in error["details"]["errors"]] == [field]
    assert await snapshot() == before


async def test_patch_unknown_product_is_not_found(client: httpx.AsyncClient) -> None:
    assert_error(await client.patch("/api/products/999", json={"name": "Ghost"}), 404, "NOT_FOUND")


async def test_delete_removes_the_product(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product()

    response = await client.delete(f"/api/products/{product['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_error(await client.get(f"/api/products/{product['id']}"), 404, "NOT_FOUND")
    assert_error(await client.get(f"/api/products/sku/{product['sku']}"), 404, "NOT_FOUND")
    assert_error(await client.delete(f"/api/products/{product['id']}"), 404, "NOT_FOUND")


async def test_delete_of_an_ordered_product_is_a_conflict(client: httpx.AsyncClient, snapshot: Snapshot) -> None:
    order = await client.post("/api/orders", json={"customer_id": 1, "items": [{"product_id": 2, "quantity": 1}]})
    assert order.status_code == 201
    before = await snapshot()

    assert_error(await client.delete("/api/products/2"), 409, "PRODUCT_IN_USE")

    assert await snapshot() == before
