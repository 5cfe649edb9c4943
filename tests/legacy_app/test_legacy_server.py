"""The legacy app behind a real uvicorn server: the order flow end to end, and concurrent writes never oversell."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx

from legacy_app.app import create_app
from legacy_app.seed import seed_database
from legacy_app.settings import LegacySettings
from proxy.runtime.demo import demo_catalogue
from tests.servers import run_server


def _app(tmp_path: Path) -> object:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    seed_database(url, demo_catalogue())
    return create_app(LegacySettings(database_url=url))


async def test_order_flow_over_the_network(tmp_path: Path) -> None:
    async with run_server(_app(tmp_path)) as base_url, httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        assert (await client.get("/health")).json()["app"] == "legacy"
        created = await client.post("/api/orders", json={"customer_id": 3, "items": [{"product_id": 1, "quantity": 2}]})
        assert created.status_code == 201
        assert created.headers["content-type"] == "application/json"
        order = created.json()
        assert (order["subtotal"], order["total"]) == ("27.62", "32.62")  # 2 × 13.81, plus 5.00 shipping
        assert (await client.post(f"/api/orders/{order['id']}/pay")).json()["status"] == "paid"
        assert (await client.get("/api/products/1")).json()["stock"] == 31
        bad = await client.post("/api/orders", content=b"{nope", headers={"content-type": "application/json"})
        assert (bad.status_code, bad.json()) == (400, {"detail": "Invalid JSON body"})


async def test_concurrent_orders_never_oversell(tmp_path: Path) -> None:
    async with run_server(_app(tmp_path)) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        product = (
            await client.post(
                "/api/products", json={"sku": "HOT-1", "name": "Hot Item", "cost_price": "10", "stock": 6}
            )
        ).json()
        body = {
            "customer_id": 1,
            "items": [{"product_id": 1, "quantity": 1}, {"product_id": product["id"], "quantity": 1}],
        }
        responses = await asyncio.gather(*(client.post("/api/orders", json=body) for _ in range(30)))
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 6, 409: 24}
        assert (await client.get(f"/api/products/{product['id']}")).json()["stock"] == 0
        assert (await client.get("/api/products/1")).json()["stock"] == 33 - 6  # the rejected orders took nothing
        assert (await client.get("/api/orders")).json()["total"] == 6


async def test_concurrent_cancels_return_stock_once(tmp_path: Path) -> None:
    async with run_server(_app(tmp_path)) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        order = (
            await client.post("/api/orders", json={"customer_id": 1, "items": [{"product_id": 2, "quantity": 4}]})
        ).json()
        stock_after_order = (await client.get("/api/products/2")).json()["stock"]
        responses = await asyncio.gather(*(client.post(f"/api/orders/{order['id']}/cancel") for _ in range(8)))
        assert Counter(r.status_code for r in responses) == {200: 1, 400: 7}
        assert (await client.get("/api/products/2")).json()["stock"] == stock_after_order + 4
