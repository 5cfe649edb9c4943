"""Rollback safety: V2 only adds nullable columns, so V1 reads and writes a database V2 has migrated and written.

The V1 column lists below are the contract's; V1's app itself (legacy_app) is run on the V2 database at the end.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.v2_app.support import client_for, serve
from v2_app.settings import V2Settings

V1_COLUMNS = {
    "customers": ("id", "name", "email", "tier"),
    "products": (
        "id",
        "sku",
        "name",
        "description",
        "cost_price",
        "margin_rate",
        "status",
        "stock",
        "created_at",
        "updated_at",
    ),
    "orders": (
        "id",
        "order_number",
        "customer_id",
        "status",
        "coupon",
        "subtotal",
        "discount",
        "shipping",
        "total",
        "created_at",
        "updated_at",
    ),
    "order_items": ("id", "order_id", "product_id", "sku", "name", "quantity", "unit_price", "line_total"),
}


def path_of(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def columns(conn: sqlite3.Connection, table: str) -> dict[str, bool]:
    """Column name → NOT NULL."""
    return {row[1]: bool(row[3]) for row in conn.execute(f"PRAGMA table_info({table})")}


def read_v1(conn: sqlite3.Connection, table: str, row_id: int) -> dict[str, Any]:
    names = V1_COLUMNS[table]
    row = conn.execute(f"SELECT {', '.join(names)} FROM {table} WHERE id = ?", (row_id,)).fetchone()
    return dict(zip(names, row, strict=True))


def v1_ddl(money: str) -> list[str]:
    """V1's schema as the contract states it, with money columns of type `money`."""
    return [
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, email VARCHAR(200) NOT NULL, "
        "tier VARCHAR(20) NOT NULL)",
        f"CREATE TABLE products (id INTEGER PRIMARY KEY, sku VARCHAR(100) NOT NULL UNIQUE, name VARCHAR(300) NOT NULL, "
        f"description TEXT, cost_price {money} NOT NULL, margin_rate {money} NOT NULL, status VARCHAR(20) NOT NULL, "
        f"stock INTEGER NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)",
        f"CREATE TABLE orders (id INTEGER PRIMARY KEY, order_number VARCHAR(20) NOT NULL UNIQUE, "
        f"customer_id INTEGER NOT NULL REFERENCES customers(id), status VARCHAR(20) NOT NULL, coupon VARCHAR(20), "
        f"subtotal {money} NOT NULL, discount {money} NOT NULL, shipping {money} NOT NULL, total {money} NOT NULL, "
        f"created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)",
        f"CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), "
        f"product_id INTEGER NOT NULL REFERENCES products(id), sku VARCHAR(100) NOT NULL, name VARCHAR(300) NOT NULL, "
        f"quantity INTEGER NOT NULL, unit_price {money} NOT NULL, line_total {money} NOT NULL)",
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', 'gold')",
        "INSERT INTO products VALUES (1, 'OLD-1', 'Old Lamp', NULL, '19.99', '25.5', 'active', 10, "
        "'2026-01-02 03:04:05.000006', '2026-01-02 03:04:05.000006')",
    ]


async def write_through_v2(client: httpx.AsyncClient) -> dict[str, Any]:
    product = (
        await client.post(
            "/api/products", json={"sku": "RB-1", "name": "Rollback Lamp", "cost_price": "19.99", "margin_rate": "25.5"}
        )
    ).json()
    await client.patch(f"/api/products/{product['id']}", json={"stock": 9, "description": "Bright"})
    order = (
        await client.post(
            "/api/orders",
            json={"customer_id": 1, "items": [{"product_id": product["id"], "quantity": 3}], "coupon": "WELCOME10"},
        )
    ).json()
    paid = (await client.post(f"/api/orders/{order['id']}/pay")).json()
    return {"product": (await client.get(f"/api/products/{product['id']}")).json(), "order": paid}


async def test_v1_columns_read_back_what_v2_wrote(settings: V2Settings) -> None:
    async with serve(settings) as client:
        written = await write_through_v2(client)
    product, order = written["product"], written["order"]

    with sqlite3.connect(path_of(settings.database_url)) as conn:
        for table, names in V1_COLUMNS.items():
            present = columns(conn, table)
            assert set(names) <= set(present), table
            assert not any(present[c] for c in set(present) - set(names)), f"{table}: V2 additions must be nullable"
        row = read_v1(conn, "products", product["id"])
        order_row = read_v1(conn, "orders", order["id"])
        item_row = conn.execute(
            f"SELECT {', '.join(V1_COLUMNS['order_items'])} FROM order_items WHERE order_id = ?", (order["id"],)
        ).fetchone()
        # V1 inserts rows knowing nothing of V2's columns
        conn.execute(
            "INSERT INTO products (sku, name, cost_price, margin_rate, status, stock, created_at, updated_at) "
            "VALUES ('V1-ONLY', 'Written by V1', '5.00', '10.0', 'active', 1, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00')"
        )
    conn.close()

    assert (row["sku"], row["name"], row["description"], row["status"], row["stock"]) == (
        "RB-1",
        "Rollback Lamp",
        "Bright",
        "active",
        6,
    )
    assert (Decimal(str(row["cost_price"])), Decimal(str(row["margin_rate"]))) == (Decimal("19.99"), Decimal("25.5"))
    assert (order_row["order_number"], order_row["status"], order_row["coupon"]) == (
        order["order_number"],
        "paid",
        "WELCOME10",
    )
    assert [Decimal(str(order_row[k])) for k in ("subtotal", "discount", "shipping", "total")] == [
        Decimal(order[k]) for k in ("subtotal", "discount", "shipping", "total")
    ]
    assert item_row[2:6] == (product["id"], "RB-1", "Rollback Lamp", 3)

    async with serve(settings) as client:
        v1_row = (await client.get("/api/products/sku/V1-ONLY")).json()
    assert (v1_row["price"], v1_row["margin_rate"]) == ("5.50", "10.0")


@pytest.mark.parametrize("money", ["NUMERIC(12, 2)", "VARCHAR(40)"])
async def test_v2_migrates_a_v1_database_with_nullable_additions_only(db_url: str, money: str) -> None:
    path = path_of(db_url)
    with sqlite3.connect(path) as conn:
        for statement in v1_ddl(money):
            conn.execute(statement)
        before = {table: columns(conn, table) for table in V1_COLUMNS}
    conn.close()

    async with serve(V2Settings(database_url=db_url)) as client:
        old = (await client.get("/api/products/1")).json()
        order = await client.post("/api/orders", json={"customer_id": 1, "items": [{"product_id": 1, "quantity": 2}]})

    assert (old["cost_price"], old["margin_rate"], old["price"], old["created_at"]) == (
        "19.99",
        "25.5",
        "25.09",
        "2026-01-02T03:04:05.000006+00:00",
    )
    assert order.status_code == 201
    assert (order.json()["subtotal"], order.json()["total"]) == ("50.18", "50.18")
    with sqlite3.connect(path) as conn:
        after = {table: columns(conn, table) for table in V1_COLUMNS}
        stored = conn.execute("SELECT subtotal, total FROM orders").fetchone()
    conn.close()
    for table in V1_COLUMNS:
        assert {c: after[table][c] for c in before[table]} == before[table], "V1's columns are untouched"
        assert not any(after[table][c] for c in set(after[table]) - set(before[table])), "additions are nullable"
    assert set(after["products"]) - set(before["products"]) == {"price", "v2_metadata"}
    assert set(after["orders"]) - set(before["orders"]) == {"v2_metadata"}
    assert [Decimal(str(v)) for v in stored] == [Decimal("50.18"), Decimal("50.18")]


async def test_v1_app_serves_and_writes_a_v2_database(settings: V2Settings) -> None:
    legacy = pytest.importorskip("legacy_app.app", reason="legacy_app (V1) is not in this checkout")
    legacy_settings = pytest.importorskip("legacy_app.settings")
    async with serve(settings) as client:
        await write_through_v2(client)
        cancelled = (
            await client.post("/api/orders", json={"customer_id": 2, "items": [{"product_id": 2, "quantity": 1}]})
        ).json()
        await client.post(f"/api/orders/{cancelled['id']}/cancel")
        v2_products = (await client.get("/api/products", params={"limit": 200})).json()
        v2_orders = (await client.get("/api/orders")).json()

    v1_app = legacy.create_app(legacy_settings.LegacySettings(database_url=settings.database_url))
    async with v1_app.router.lifespan_context(v1_app), client_for(v1_app) as v1:
        assert (await v1.get("/api/products", params={"limit": 200})).json() == v2_products
        assert (await v1.get("/api/orders")).json() == v2_orders
        v1_order = await v1.post("/api/orders", json={"customer_id": 3, "items": [{"product_id": 61, "quantity": 2}]})
        assert v1_order.status_code == 201, v1_order.text
        v1_product = (await v1.get("/api/products/61")).json()

    async with serve(settings) as client:
        assert (await client.get(f"/api/orders/{v1_order.json()['id']}")).json() == v1_order.json()
        assert (await client.get("/api/products/61")).json() == v1_product
    assert v1_product["stock"] == 4
