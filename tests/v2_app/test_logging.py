"""Structured logs: JSON lines carrying the request id from `X-Request-ID` and the business fields."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.v2_app.support import client_for, serve
from v2_app.app import create_app
from v2_app.settings import V2Settings


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_order_created_line_carries_ids_and_request_id(settings: V2Settings) -> None:
    stream = io.StringIO()
    async with serve(settings, log_stream=stream) as client:
        response = await client.post(
            "/api/orders",
            json={"customer_id": 2, "items": [{"product_id": 1, "quantity": 1}]},
            headers={"X-Request-ID": "req-123", "X-Shadow-Request": "1"},
        )

    order = response.json()
    records = lines(stream.getvalue())
    created = [r for r in records if r["event"] == "Order created"]
    assert len(created) == 1
    assert created[0] | {"timestamp": "T"} == {
        "event": "Order created",
        "level": "info",
        "logger": "OrderService",
        "app": "v2",
        "request_id": "req-123",
        "shadow": True,
        "order_id": order["id"],
        "order_number": order["order_number"],
        "customer_id": 2,
        "total": order["total"],
        "items": 1,
        "timestamp": "T",
    }
    completed = [r for r in records if r["event"] == "Request completed"]
    assert completed[0]["request_id"] == "req-123"
    assert (completed[0]["endpoint"], completed[0]["status"]) == ("/api/orders", 201)


async def test_request_id_is_generated_and_not_leaked_between_requests(settings: V2Settings) -> None:
    stream = io.StringIO()
    async with serve(settings, log_stream=stream) as client:
        await client.get("/health", headers={"X-Request-ID": "first"})
        await client.get("/health")

    completed = [r for r in lines(stream.getvalue()) if r["event"] == "Request completed"]
    assert completed[0]["request_id"] == "first"
    assert completed[1]["request_id"] not in ("first", "")
    assert "shadow" not in completed[1]


async def test_refused_request_is_logged_with_its_code(settings: V2Settings) -> None:
    stream = io.StringIO()
    async with serve(settings, log_stream=stream) as client:
        await client.get("/api/products/999", headers={"X-Request-ID": "r-404"})

    refused = [r for r in lines(stream.getvalue()) if r["event"] == "Request refused"]
    assert refused == [refused[0]]
    assert (refused[0]["code"], refused[0]["status"], refused[0]["request_id"]) == ("NOT_FOUND", 404, "r-404")


async def test_logs_go_to_stdout_by_default(settings: V2Settings, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app) as client:
        await client.patch("/api/products/3", json={"stock": 7}, headers={"X-Request-ID": "cap-1"})

    updated = [r for r in lines(capsys.readouterr().out) if r["event"] == "Product updated"]
    assert updated[0]["product_id"] == 3
    assert updated[0]["fields"] == ["stock"]
    assert updated[0]["request_id"] == "cap-1"


async def test_log_level_filters(settings: V2Settings) -> None:
    stream = io.StringIO()
    async with serve(settings.model_copy(update={"log_level": "warning"}), log_stream=stream) as client:
        await client.get("/health")

    assert stream.getvalue() == ""


async def test_console_format_when_json_is_off(settings: V2Settings) -> None:
    stream = io.StringIO()
    async with serve(settings.model_copy(update={"log_json": False}), log_stream=stream) as client:
        await client.get("/health", headers={"X-Request-ID": "plain-1"})

    line = next(line for line in stream.getvalue().splitlines() if "Request completed" in line)
    assert "request_id=plain-1" in line
    assert not line.startswith("{")
