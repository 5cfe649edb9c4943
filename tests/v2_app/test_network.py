"""V2 served by a real uvicorn on 127.0.0.1: lifespan on start and stop, concurrent writes over real sockets."""

from __future__ import annotations

import asyncio
import io

import httpx

from tests.servers import run_server
from v2_app.app import create_app
from v2_app.settings import V2Settings


async def test_served_by_uvicorn_with_lifespan(settings: V2Settings) -> None:
    stream = io.StringIO()
    app = create_app(settings, log_stream=stream)

    async with run_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        health = await client.get("/health")
        product = await client.post(
            "/api/products", json={"sku": "NET-1", "name": "Net", "cost_price": "10.00", "stock": 4}
        )
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/orders",
                    json={"customer_id": 1, "items": [{"product_id": product.json()["id"], "quantity": 1}]},
                )
                for _ in range(8)
            )
        )
        final = await client.get(f"/api/products/{product.json()['id']}")

    assert health.json() == {"status": "ok", "app": "v2", "version": "2.0.0"}
    assert sorted(r.status_code for r in responses) == [201] * 4 + [409] * 4
    assert final.json()["stock"] == 0
    assert "V2 started" in stream.getvalue()


async def test_fresh_database_is_created_on_start_up(db_url: str) -> None:
    async with run_server(create_app(V2Settings(database_url=db_url), log_stream=io.StringIO())) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            products = (await client.get("/api/products")).json()
            customer = await client.get("/api/customers/1")

    assert products == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert customer.status_code == 404
    assert customer.json()["error"]["details"] == {"resource": "Customer", "id": "1"}
