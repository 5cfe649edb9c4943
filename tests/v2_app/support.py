"""Helpers for V2's tests: serve an app in-process with its lifespan, build products, snapshot state."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TextIO

import httpx
from starlette.applications import Starlette

from v2_app.app import create_app
from v2_app.settings import V2Settings

MakeProduct = Callable[..., Awaitable[dict[str, Any]]]
Snapshot = Callable[[], Awaitable[dict[str, Any]]]


@asynccontextmanager
async def serve(settings: V2Settings, *, log_stream: TextIO | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for a V2 app whose lifespan (migration, resource cleanup) is entered around it."""
    app = create_app(settings, log_stream=log_stream if log_stream is not None else io.StringIO())
    async with app.router.lifespan_context(app), client_for(app) as client:
        yield client


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v2.test")


def product_maker(client: httpx.AsyncClient) -> MakeProduct:
    """Create products through the API: cost 10.00, margin 0 (price 10.00), stock 10 unless overridden."""
    numbers = itertools.count(1)

    async def make(**fields: Any) -> dict[str, Any]:
        body = {"sku": f"TEST-{next(numbers):03d}", "name": "Test Item", "cost_price": "10.00", "margin_rate": "0"}
        response = await client.post("/api/products", json=body | {"stock": 10} | fields)
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        return product

    return make


def snapshotter(client: httpx.AsyncClient) -> Snapshot:
    """Everything a refused write must leave alone: every product and every order, as served."""

    async def take() -> dict[str, Any]:
        products = await client.get("/api/products", params={"limit": 200})
        orders = await client.get("/api/orders")
        assert products.status_code == orders.status_code == 200
        return {"products": products.json(), "orders": orders.json()}

    return take


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The standard V2 error body with this status and code; returns its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error
