"""Orders through the HTTP API: totals, coupons, shipping, stock reservation, transitions, refusals, concurrency."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from tests.v2_app.support import MakeProduct, Snapshot, assert_error


async def place(client: httpx.AsyncClient, *lines: tuple[int, int], coupon: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"customer_id": 1, "items": [{"product_id": p, "quantity": q} for p, q in lines]}
    if coupon is not None:
        body["coupon"] = coupon
    return await client.post("/api/orders", json=body)


async def stock_of(client: httpx.AsyncClient, product_id: int) -> int:
    stock: int = (await client.get(f"/api/products/{product_id}")).json()["stock"]
    return stock


async def test_order_has_the_contract_body(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product(cost_price="11.00")

    response = await place(client, (product["id"], 2))

    assert response.status_code == 201
    order = response.json()
    assert re.fullmatch(r"ORD-[0-9A-F]{8}", order["order_number"])
    assert {k: v for k, v in order.items() if k not in {"id", "order_number", "created_at", "updated_at"}} == {
        "customer_id": 1,
        "status": "pending",
        "coupon": None,
        "items": [
            {
                "product_id": product["id"],
                "sku": product["sku"],
                "name": "Test Item",
                "quantity": 2,
                "unit_price": "11.00",
                "line_total": "22.00",
            }
        ],
        "subtotal": "22.00",
        "discount": "0.00",
        "shipping": "5.00",
        "total": "27.00",
    }
    assert (await client.get(f"/api/orders/{order['id']}")).json() == order


@pytest.mark.parametrize(
    ("price", "quantity", "coupon", "expected"),
    [
        ("11.00", 2, None, ("22.00", "0.00", "5.00", "27.00")),
        ("33.35", 1, "WELCOME10", ("33.35", "3.34", "5.00", "35.01")),  # 3.335 rounds half up
        ("55.00", 1, "WELCOME10", ("55.00", "5.50", "5.00", "54.50")),  # 49.50 after discount: shipping is due
        ("3.00", 1, "SAVE5", ("3.00", "3.00", "5.00", "5.00")),  # never below zero
        ("27.00", 2, "SAVE5", ("54.00", "5.00", "5.00", "54.00")),
        ("10.00", 1, "FREESHIP", ("10.00", "0.00", "0.00", "10.00")),
        ("25.00", 2, None, ("50.00", "0.00", "0.00", "50.00")),  # the threshold itself ships free
        ("49.99", 1, None, ("49.99", "0.00", "5.00", "54.99")),
    ],
)
async def test_totals_for_each_coupon_and_the_shipping_threshold(
    client: httpx.AsyncClient,
    make_product: MakeProduct,
    price: str,
    quantity: int,
    coupon: str | None,
    expected: tuple[str, str, str, str],
) -> None:
    product = await make_product(cost_price=price)

    order = (await place(client, (product["id"], quantity), coupon=coupon)).json()

    assert (order["subtotal"], order["discount"], order["shipping"], order["total"]) == expected
    assert order["coupon"] == coupon


async def test_unit_price_is_the_derived_price(client: httpx.AsyncClient) -> None:
    order = (await place(client, (1, 1), (2, 3))).json()

    assert [(i["unit_price"], i["line_total"]) for i in order["items"]] == [("13.81", "13.81"), ("23.87", "71.61")]
    assert order["subtotal"] == "85.42"
    assert order["shipping"] == "0.00"


async def test_stock_is_reserved_and_returned_on_cancel(client: httpx.AsyncClient) -> None:
    order = (await place(client, (1, 3), (2, 2))).json()

    assert (await stock_of(client, 1), await stock_of(client, 2)) == (30, 44)

    cancelled = await client.post(f"/api/orders/{order['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert (await stock_of(client, 1), await stock_of(client, 2)) == (33, 46)


async def test_cancel_after_payment_returns_stock(client: httpx.AsyncClient) -> None:
    order = (await place(client, (1, 5))).json()
    await client.post(f"/api/orders/{order['id']}/pay")

    response = await client.post(f"/api/orders/{order['id']}/cancel")

    assert response.json()["status"] == "cancelled"
    assert await stock_of(client, 1) == 33


async def test_legal_transitions_run_to_delivered(client: httpx.AsyncClient) -> None:
    order_id = (await place(client, (1, 1))).json()["id"]

    statuses = [(await client.post(f"/api/orders/{order_id}/{a}")).json()["status"] for a in ("pay", "ship", "deliver")]

    assert statuses == ["paid", "shipped", "delivered"]
    assert (await client.get(f"/api/orders/{order_id}")).json()["status"] == "delivered"


@pytest.mark.parametrize(
    ("steps", "refused", "current"),
    [
        ((), "ship", "pending"),
        ((), "deliver", "pending"),
        (("pay",), "pay", "paid"),
        (("pay", "ship"), "cancel", "shipped"),
        (("pay", "ship", "deliver"), "cancel", "delivered"),
        (("cancel",), "pay", "cancelled"),
        (("cancel",), "cancel", "cancelled"),
    ],
)
async def test_illegal_transition_is_refused_with_nothing_changed(
    client: httpx.AsyncClient, snapshot: Snapshot, steps: tuple[str, ...], refused: str, current: str
) -> None:
    order_id = (await place(client, (1, 2))).json()["id"]
    for step in steps:
        assert (await client.post(f"/api/orders/{order_id}/{step}")).status_code == 200
    before = await snapshot()

    error = assert_error(await client.post(f"/api/orders/{order_id}/{refused}"), 409, "INVALID_STATUS_TRANSITION")

    assert error["message"] == f"Cannot {refused} an order that is {current}"
    assert error["details"]["from"] == current
    assert await snapshot() == before


async def test_transition_of_unknown_order_is_not_found(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.post("/api/orders/999/pay"), 404, "NOT_FOUND")

    assert error["details"] == {"resource": "Order", "id": "999"}
    assert_error(await client.get("/api/orders/999"), 404, "NOT_FOUND")


async def test_list_filters_by_customer(client: httpx.AsyncClient) -> None:
    first = (await place(client, (1, 1))).json()
    second = (
        await client.post("/api/orders", json={"customer_id": 2, "items": [{"product_id": 1, "quantity": 1}]})
    ).json()

    everything = (await client.get("/api/orders")).json()
    mine = (await client.get("/api/orders", params={"customer_id": 2})).json()

    assert [o["id"] for o in everything["items"]] == [first["id"], second["id"]]
    assert everything["total"] == 2
    assert mine == {"items": [second], "total": 1}
    assert (await client.get("/api/orders", params={"customer_id": 5})).json() == {"items": [], "total": 0}
    assert_error(await client.get("/api/orders", params={"customer_id": "x"}), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (b"{not json", 400, "BAD_REQUEST", None),
        (b"", 400, "BAD_REQUEST", None),
        (b"[1, 2]", 422, "VALIDATION_ERROR", "body"),
        (b'{"items": [{"product_id": 1, "quantity": 1}]}', 422, "VALIDATION_ERROR", "customer_id"),
        (b'{"customer_id": 1}', 422, "VALIDATION_ERROR", "items"),
        (b'{"customer_id": 1, "items": []}', 422, "VALIDATION_ERROR", "items"),
        (
            b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": 0}]}',
            422,
            "VALIDATION_ERROR",
            "items.0.quantity",
        ),
        (
            b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": -2}]}',
            422,
            "VALIDATION_ERROR",
            "items.0.quantity",
        ),
        (
            b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": 1.5}]}',
            422,
            "VALIDATION_ERROR",
            "items.0.quantity",
        ),
        (
            b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": "2"}]}',
            422,
            "VALIDATION_ERROR",
            "items.0.quantity",
        ),
        (b'{"customer_id": 1, "items": [{"product_id": 1}]}', 422, "VALIDATION_ERROR", "items.0.quantity"),
        (
            b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": 1}], "coupon": "FREE"}',
            422,
            "VALIDATION_ERROR",
            "coupon",
        ),
        (b'{"customer_id": 99, "items": [{"product_id": 1, "quantity": 1}]}', 404, "NOT_FOUND", None),
        (b'{"customer_id": 1, "items": [{"product_id": 999, "quantity": 1}]}', 404, "NOT_FOUND", None),
        (b'{"customer_id": 1, "items": [{"product_id": 4, "quantity": 1}]}', 409, "PRODUCT_UNAVAILABLE", None),
        (b'{"customer_id": 1, "items": [{"product_id": 5, "quantity": 1}]}', 409, "PRODUCT_UNAVAILABLE", None),
        (b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": 34}]}', 409, "INSUFFICIENT_STOCK", None),
        # the first line alone would succeed: its reservation must be rolled back too
        (
            b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": 2}, {"product_id": 999, "quantity": 1}]}',
            404,
            "NOT_FOUND",
            None,
        ),
        (
            b'{"customer_id": 1, "items": [{"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": 99}]}',
            409,
            "INSUFFICIENT_STOCK",
            None,
        ),
        # two lines of one product: 20 + 20 > 33 in stock
        (
            b'{"customer_id": 1, "items": [{"product_id": 1, "quantity": 20}, {"product_id": 1, "quantity": 20}]}',
            409,
            "INSUFFICIENT_STOCK",
            None,
        ),
    ],
)
async def test_bad_order_is_refused_with_the_standard_body_and_nothing_changed(
    client: httpx.AsyncClient, snapshot: Snapshot, body: bytes, status: int, code: str, field: str | None
) -> None:
    before = await snapshot()

    error = assert_error(await client.post("/api/orders", content=body), status, code)

    if field is not None:
        assert field in [e["field"] for e in error["details"]["errors"]]
    assert await snapshot() == before


async def test_insufficient_stock_names_what_is_left(client: httpx.AsyncClient) -> None:
    error = assert_error(await place(client, (1, 20), (1, 20)), 409, "INSUFFICIENT_STOCK")

    assert error["details"] == {"product_id": 1, "requested": 20, "available": 13}


async def test_concurrent_orders_never_oversell(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product(stock=5)

    responses = await asyncio.gather(*(place(client, (product["id"], 1)) for _ in range(12)))

    assert sorted(r.status_code for r in responses) == [201] * 5 + [409] * 7
    assert await stock_of(client, product["id"]) == 0
    assert (await client.get("/api/orders")).json()["total"] == 5


async def test_seeded_customer(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/customers/1")

    assert response.json() == {"id": 1, "name": "Ada", "email": "ada@example.com", "tier": "gold"}
    assert_error(await client.get("/api/customers/6"), 404, "NOT_FOUND")
