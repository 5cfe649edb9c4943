"""Product endpoints through HTTP: create, read, update, delete, list filters and pagination."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.legacy_app.support import MakeProduct


async def test_create_derives_price_from_cost_and_margin(client: httpx.AsyncClient) -> None:
    body = {"sku": "NEW-1", "name": "Walnut Desk", "cost_price": 19.99, "margin_rate": 25.5, "stock": 3}
    response = await client.post("/api/products", json=body)
    assert response.status_code == 201
    product = response.json()
    assert product["cost_price"] == "19.99"
    assert product["margin_rate"] == "25.5"
    assert product["price"] == "25.09"
    assert product["status"] == "active"
    assert product["description"] is None
    assert product["stock"] == 3
    assert set(product) == {
        "id", "sku", "name", "description", "cost_price", "margin_rate", "price",
        "status", "stock", "created_at", "updated_at",
    }  # fmt: skip
    assert datetime.fromisoformat(product["created_at"]).utcoffset() is not None
    assert (await client.get(f"/api/products/{product['id']}")).json() == product


async def test_create_defaults_margin_status_and_stock(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/products", json={"sku": "NEW-2", "name": "Mug", "cost_price": "120"})
    assert response.status_code == 201
    product = response.json()
    assert (product["cost_price"], product["margin_rate"], product["price"]) == ("120.00", "10.0", "132.00")
    assert (product["status"], product["stock"]) == ("active", 0)


async def test_duplicate_sku_is_a_conflict_and_creates_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/products", json={"sku": "SKU-0001", "name": "Again", "cost_price": "1"})
    assert response.status_code == 409
    assert "SKU-0001" in response.json()["detail"]
    assert (await client.get("/api/products", params={"q": "SKU-0001"})).json()["total"] == 1


async def test_get_by_id_and_sku_and_404(client: httpx.AsyncClient) -> None:
    by_id = await client.get("/api/products/7")
    by_sku = await client.get("/api/products/sku/SKU-0007")
    assert by_id.status_code == by_sku.status_code == 200
    assert by_id.json() == by_sku.json()
    assert by_id.json()["sku"] == "SKU-0007"
    for path in ("/api/products/999", "/api/products/sku/NOPE", "/api/products/99999999999999999999999"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Product not found"}


async def test_patch_recomputes_price(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product(cost_price="100.00", margin_rate="10")
    assert product["price"] == "110.00"
    response = await client.patch(f"/api/products/{product['id']}", json={"cost_price": "19.99", "margin_rate": 25.5})
    assert response.status_code == 200
    assert (response.json()["price"], response.json()["margin_rate"]) == ("25.09", "25.5")
    response = await client.patch(
        f"/api/products/{product['id']}",
        json={"name": "Renamed", "description": "Nice", "status": "inactive", "stock": 4},
    )
    updated = response.json()
    assert (updated["name"], updated["description"], updated["status"], updated["stock"]) == (
        "Renamed", "Nice", "inactive", 4,
    )  # fmt: skip
    assert updated["price"] == "25.09"
    assert updated["updated_at"] > product["updated_at"]
    assert updated["created_at"] == product["created_at"]
    assert (await client.get(f"/api/products/{product['id']}")).json() == updated


async def test_patch_missing_product_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/products/999", json={"stock": 1})
    assert response.status_code == 404
    assert response.json() == {"detail": "Product not found"}


async def test_delete(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product()
    response = await client.delete(f"/api/products/{product['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/api/products/{product['id']}")).status_code == 404
    again = await client.delete(f"/api/products/{product['id']}")
    assert again.status_code == 404
    assert again.json() == {"detail": "Product not found"}


async def test_delete_referenced_by_an_order_is_a_conflict(
    client: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    product = await make_product()
    order = await client.post(
        "/api/orders", json={"customer_id": 1, "items": [{"product_id": product["id"], "quantity": 1}]}
    )
    assert order.status_code == 201
    response = await client.delete(f"/api/products/{product['id']}")
    assert response.status_code == 409
    assert "referenced by orders" in response.json()["detail"]
    assert (await client.get(f"/api/products/{product['id']}")).status_code == 200


async def test_list_default_page_is_ordered_by_id(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/products")).json()
    assert (page["total"], page["limit"], page["offset"]) == (60, 50, 0)
    assert [p["id"] for p in page["items"]] == list(range(1, 51))


async def test_list_pagination(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/products", params={"limit": 7, "offset": 55})).json()
    assert (page["total"], page["limit"], page["offset"]) == (60, 7, 55)
    assert [p["id"] for p in page["items"]] == [56, 57, 58, 59, 60]
    beyond = (await client.get("/api/products", params={"offset": 100})).json()
    assert (beyond["items"], beyond["total"]) == ([], 60)


async def test_list_limit_is_capped_at_200(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/products", params={"limit": 1000})).json()
    assert page["limit"] == 200
    assert len(page["items"]) == 60


async def test_list_filters_by_status(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/products", params={"status": "discontinued", "limit": 200})).json()
    assert page["total"] == len(page["items"]) > 0
    assert {p["status"] for p in page["items"]} == {"discontinued"}
    # The demo catalogue cycles through seven statuses by id; the first discontinued product is id 6.
    assert page["items"][0]["id"] == 6


async def test_list_q_matches_name_or_sku_case_insensitively(
    client: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    await make_product(sku="ZZ-100", name="Quirky Teapot")
    await make_product(sku="zz-200", name="Plain Cup")
    by_name = (await client.get("/api/products", params={"q": "qUIRKY"})).json()
    assert [p["sku"] for p in by_name["items"]] == ["ZZ-100"]
    by_sku = (await client.get("/api/products", params={"q": "Zz-"})).json()
    assert [p["sku"] for p in by_sku["items"]] == ["ZZ-100", "zz-200"]
    assert by_sku["total"] == 2


async def test_list_q_treats_like_wildcards_literally(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    await make_product(sku="PCT-1", name="100% Cotton")
    page = (await client.get("/api/products", params={"q": "%"})).json()
    assert [p["sku"] for p in page["items"]] == ["PCT-1"]
    assert (await client.get("/api/products", params={"q": "_"})).json()["total"] == 0


async def test_list_combines_filters_and_total_counts_all_matches(client: httpx.AsyncClient) -> None:
    everything = (await client.get("/api/products", params={"q": "desk", "limit": 200})).json()
    active = [p for p in everything["items"] if p["status"] == "active"]
    page = (await client.get("/api/products", params={"q": "desk", "status": "active", "limit": 1})).json()
    assert page["total"] == len(active) > 1
    assert [p["id"] for p in page["items"]] == [active[0]["id"]]


@pytest.mark.parametrize(
    "params", [{"limit": "abc"}, {"limit": "0"}, {"limit": "-5"}, {"offset": "-1"}, {"offset": "1.5"}]
)
async def test_list_bad_paging_is_400(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/api/products", params=params)
    assert response.status_code == 400
    assert "must be an integer" in response.json()["detail"]


async def test_customer(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/customers/1")
    assert response.json() == {"id": 1, "name": "Ada", "email": "ada@example.com", "tier": "gold"}
    missing = await client.get("/api/customers/6")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Customer not found"}
