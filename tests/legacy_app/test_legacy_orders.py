"""Order endpoints through HTTP: totals for each coupon, stock reservation, every legal and illegal transition."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.legacy_app.support import MakeProduct, Snapshot

ACTIONS = ("pay", "ship", "deliver", "cancel")
# How to bring a fresh (pending) order into each status, and which actions are legal from there.
PATHS = {
    "pending": (),
    "paid": ("pay",),
    "shipped": ("pay", "ship"),
    "delivered": ("pay", "ship", "deliver"),
    "cancelled": ("cancel",),
}
LEGAL = {"pending": {"pay", "cancel"}, "paid": {"ship", "cancel"}, "shipped": {"deliver"}}


async def _order(client: httpx.AsyncClient, items: list[tuple[int, int]], coupon: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": 2, "items": [{"product_id": p, "quantity": q} for p, q in items]}
    if coupon is not None:
        body["coupon"] = coupon
    response = await client.post("/api/orders", json=body)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def _stock(client: httpx.AsyncClient, product_id: int) -> int:
    stock: int = (await client.get(f"/api/products/{product_id}")).json()["stock"]
    return stock


@pytest.mark.parametrize(
    ("price", "quantity", "coupon", "expected"),
    [
        ("10.00", 2, None, ("20.00", "0.00", "5.00", "25.00")),
        ("10.00", 5, None, ("50.00", "0.00", "0.00", "50.00")),
        ("10.00", 5, "WELCOME10", ("50.00", "5.00", "5.00", "50.00")),
        ("33.35", 1, "WELCOME10", ("33.35", "3.34", "5.00", "35.01")),
        ("3.00", 1, "SAVE5", ("3.00", "3.00", "5.00", "5.00")),
        ("11.00", 5, "SAVE5", ("55.00", "5.00", "0.00", "50.00")),
        ("9.00", 6, "SAVE5", ("54.00", "5.00", "5.00", "54.00")),
        ("10.00", 1, "FREESHIP", ("10.00", "0.00", "0.00", "10.00")),
    ],
)
async def test_totals(
    client: httpx.AsyncClient,
    make_product: MakeProduct,
    price: str,
    quantity: int,
    coupon: str | None,
    expected: tuple[str, str, str, str],
) -> None:
    product = await make_product(cost_price=price)
    order = await _order(client, [(product["id"], quantity)], coupon)
    assert (order["subtotal"], order["discount"], order["shipping"], order["total"]) == expected
    assert order["coupon"] == coupon
    assert order["items"] == [
        {
            "product_id": product["id"],
            "sku": product["sku"],
            "name": product["name"],
            "quantity": quantity,
            "unit_price": price,
            "line_total": expected[0],
        }
    ]


async def test_order_body_and_several_lines(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    desk = await make_product(cost_price="19.99", margin_rate="25.5")  # price 25.09
    mug = await make_product(cost_price="4.50")
    order = await _order(client, [(desk["id"], 1), (mug["id"], 3)])
    assert [line["line_total"] for line in order["items"]] == ["25.09", "13.50"]
    assert (order["subtotal"], order["shipping"], order["total"]) == ("38.59", "5.00", "43.59")
    assert (order["status"], order["customer_id"]) == ("pending", 2)
    assert re.fullmatch(r"ORD-[0-9A-F]{8}", order["order_number"])
    assert (await client.get(f"/api/orders/{order['id']}")).json() == order


async def test_unit_price_is_the_price_at_order_time(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product(cost_price="10.00")
    order = await _order(client, [(product["id"], 1)])
    await client.patch(f"/api/products/{product['id']}", json={"cost_price": "99.00", "name": "Renamed"})
    again = (await client.get(f"/api/orders/{order['id']}")).json()
    assert again["items"][0]["unit_price"] == "10.00"
    assert again["items"][0]["name"] == "Test Item"
    second = await _order(client, [(product["id"], 1)])
    assert second["items"][0]["unit_price"] == "99.00"
    assert second["order_number"] != order["order_number"]


async def test_the_same_product_twice_counts_both_lines_against_stock(
    client: httpx.AsyncClient, make_product: MakeProduct, snapshot: Snapshot
) -> None:
    product = await make_product(stock=5)
    before = await snapshot()
    body = {"customer_id": 1, "items": [{"product_id": product["id"], "quantity": 3}] * 2}
    response = await client.post("/api/orders", json=body)
    assert response.status_code == 409
    assert await snapshot() == before
    order = await _order(client, [(product["id"], 2), (product["id"], 3)])
    assert len(order["items"]) == 2
    assert await _stock(client, product["id"]) == 0


async def test_stock_is_reserved_and_returned_on_cancel(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    a, b = await make_product(stock=10), await make_product(stock=4)
    pending = await _order(client, [(a["id"], 3), (b["id"], 4)])
    assert (await _stock(client, a["id"]), await _stock(client, b["id"])) == (7, 0)
    paid = await _order(client, [(a["id"], 2)])
    assert (await client.post(f"/api/orders/{paid['id']}/pay")).status_code == 200
    assert await _stock(client, a["id"]) == 5

    cancelled = await client.post(f"/api/orders/{pending['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (await _stock(client, a["id"]), await _stock(client, b["id"])) == (8, 4)
    assert (await client.post(f"/api/orders/{paid['id']}/cancel")).status_code == 200
    assert await _stock(client, a["id"]) == 10


async def test_happy_path_pay_ship_deliver(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product(stock=3)
    order = await _order(client, [(product["id"], 1)])
    for action, status in (("pay", "paid"), ("ship", "shipped"), ("deliver", "delivered")):
        response = await client.post(f"/api/orders/{order['id']}/{action}")
        assert response.status_code == 200
        assert response.json()["status"] == status
        assert response.json()["updated_at"] >= order["updated_at"]
        assert (await client.get(f"/api/orders/{order['id']}")).json() == response.json()
    assert await _stock(client, product["id"]) == 2  # delivered orders keep their stock


@pytest.mark.parametrize(
    ("status", "action"),
    [(status, action) for status in PATHS for action in ACTIONS if action not in LEGAL.get(status, set())],
)
async def test_illegal_transitions_are_refused_with_nothing_changed(
    client: httpx.AsyncClient, make_product: MakeProduct, snapshot: Snapshot, status: str, action: str
) -> None:
    product = await make_product(stock=5)
    order = await _order(client, [(product["id"], 2)])
    for step in PATHS[status]:
        assert (await client.post(f"/api/orders/{order['id']}/{step}")).status_code == 200
    before = await snapshot()
    response = await client.post(f"/api/orders/{order['id']}/{action}")
    assert response.status_code == 400
    assert response.json() == {"detail": f"Cannot {action} an order that is {status}"}
    assert await snapshot() == before


@pytest.mark.parametrize("action", ACTIONS)
async def test_transition_of_a_missing_order_is_404(client: httpx.AsyncClient, action: str) -> None:
    response = await client.post(f"/api/orders/42/{action}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Order not found"}


async def test_get_missing_order_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/api/orders/1", "/api/orders/99999999999999999999999"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Order not found"}


async def test_list_orders_all_or_by_customer(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product()
    ids = []
    for customer_id in (1, 2, 1):
        body = {"customer_id": customer_id, "items": [{"product_id": product["id"], "quantity": 1}]}
        ids.append((await client.post("/api/orders", json=body)).json()["id"])
    everything = (await client.get("/api/orders")).json()
    assert (everything["total"], [o["id"] for o in everything["items"]]) == (3, ids)
    first = (await client.get("/api/orders", params={"customer_id": 1})).json()
    assert (first["total"], [o["id"] for o in first["items"]]) == (2, [ids[0], ids[2]])
    assert (await client.get("/api/orders", params={"customer_id": 5})).json() == {"items": [], "total": 0}
    bad = await client.get("/api/orders", params={"customer_id": "one"})
    assert bad.status_code == 400
