"""Errors leave as the standard body, whatever raised them: our errors, routing errors, and bugs."""

from __future__ import annotations

import httpx
import pytest

from tests.v2_app.support import assert_error
from v2_app.product_service import ProductService


async def test_unknown_route_is_a_standard_not_found(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.get("/api/nothing-here"), 404, "NOT_FOUND")

    assert error["details"] == {"path": "/api/nothing-here"}
    assert_error(await client.get("/api/products/not-a-number"), 404, "NOT_FOUND")


async def test_wrong_method_is_a_standard_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/products/1", json={})

    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PATCH", "DELETE"}
    head = await client.head("/api/products/1")
    assert (head.status_code, head.content) == (200, b"")


async def test_unexpected_exception_is_a_500_body_not_a_traceback(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: ProductService, product_id: int) -> dict[str, object]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(ProductService, "get", broken)

    response = await client.get("/api/products/1")

    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert error["details"] == {}
    metrics = (await client.get("/metrics")).text
    assert 'http_request_errors_total{code="INTERNAL_ERROR",status="500"} 1.0' in metrics
    assert 'endpoint="/api/products/{id}",le="+Inf",method="GET",status="500"} 1.0' in metrics


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "app": "v2", "version": "2.0.0"}
