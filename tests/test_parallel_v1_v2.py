"""The migration guide's parallel test: one request sequence through V1 and through V2 gives the same business
results — prices, totals, statuses, stock. What differs by design is listed here (and in the README) and checked too,
so a change in either app's behaviour shows up as a failure, not as silence."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from legacy_app.app import create_app as create_legacy
from legacy_app.seed import seed_database as seed_legacy
from legacy_app.settings import LegacySettings
from proxy.runtime.demo import demo_catalogue
from v2_app.app import create_app as create_v2
from v2_app.seed import seed_database_async as seed_v2
from v2_app.settings import V2Settings

# Fields each app generates on its own: never compared.
GENERATED = {"order_number", "created_at", "updated_at"}

# Differences by design (docs/api-contract.md): status codes where V2 is stricter or more precise.
BY_DESIGN_STATUS = {
    "validation failure": (400, 422),  # V1 {"detail"} 400; V2 VALIDATION_ERROR 422 with field errors
    "illegal transition": (400, 409),  # V1 {"detail"} 400; V2 INVALID_STATUS_TRANSITION 409
}


@contextlib.asynccontextmanager
async def apps(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    catalogue = demo_catalogue()
    legacy_url, v2_url = f"sqlite:///{tmp_path / 'v1.db'}", f"sqlite+aiosqlite:///{tmp_path / 'v2.db'}"
    seed_legacy(legacy_url, catalogue)
    await seed_v2(v2_url, catalogue)
    v1_app, v2_app = create_legacy(LegacySettings(database_url=legacy_url)), create_v2(V2Settings(database_url=v2_url))
    async with v1_app.router.lifespan_context(v1_app), v2_app.router.lifespan_context(v2_app):
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=v1_app), base_url="http://v1") as v1,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=v2_app), base_url="http://v2") as v2,
        ):
            yield v1, v2


def business(value: Any) -> Any:
    """The body without the fields each app generates on its own."""
    if isinstance(value, dict):
        return {k: business(v) for k, v in value.items() if k not in GENERATED}
    if isinstance(value, list):
        return [business(v) for v in value]
    return value


def error_message(app: str, body: dict[str, Any]) -> str:
    """Both apps say what went wrong, each in its own error shape."""
    if app == "v1":
        assert set(body) == {"detail"}, body
        return str(body["detail"])
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return str(body["error"]["message"])


SEQUENCE: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/products/1", None),
    ("GET", "/api/products/sku/SKU-0007", None),
    ("GET", "/api/products?status=active&limit=5&offset=3", None),
    ("GET", "/api/products?q=desk", None),
    ("POST", "/api/products", {"sku": "NEW-1", "name": "Teak Stool", "cost_price": "19.99", "margin_rate": "25.5"}),
    ("PATCH", "/api/products/61", {"cost_price": "40.00", "stock": 30}),
    ("POST", "/api/orders", {"customer_id": 1, "items": [{"product_id": 1, "quantity": 2}], "coupon": "WELCOME10"}),
    ("POST", "/api/orders", {"customer_id": 2, "items": [{"product_id": 61, "quantity": 2}], "coupon": "SAVE5"}),
    ("POST", "/api/orders", {"customer_id": 3, "items": [{"product_id": 2, "quantity": 1}], "coupon": "FREESHIP"}),
    ("POST", "/api/orders/1/pay", None),
    ("POST", "/api/orders/1/ship", None),
    ("POST", "/api/orders/1/deliver", None),
    ("POST", "/api/orders/2/cancel", None),
    ("GET", "/api/orders?customer_id=1", None),
    ("GET", "/api/products/61", None),  # stock back after the cancel
    ("GET", "/api/products/1", None),  # stock taken by the delivered order
    ("DELETE", "/api/products/3", None),
    ("GET", "/api/customers/2", None),
    ("POST", "/api/ai/products/1/description", None),
    # Refusals both apps agree on: same status, each in its own error shape.
    ("GET", "/api/products/99999", None),
    ("POST", "/api/products", {"sku": "NEW-1", "name": "Duplicate", "cost_price": "1.00"}),
    ("POST", "/api/orders", {"customer_id": 1, "items": [{"product_id": 4, "quantity": 1}]}),  # inactive
    ("POST", "/api/orders", {"customer_id": 1, "items": [{"product_id": 1, "quantity": 100000}]}),  # stock
    ("DELETE", "/api/products/1", None),  # referenced by an order
]


async def test_the_same_sequence_gives_the_same_business_results(tmp_path: Path) -> None:
    async with apps(tmp_path) as (v1, v2):
        for method, path, body in SEQUENCE:
            a = await v1.request(method, path, json=body)
            b = await v2.request(method, path, json=body)
            assert a.status_code == b.status_code, (method, path, a.text, b.text)
            if a.status_code == 204:
                assert a.content == b.content == b""
            elif a.status_code >= 400:
                assert error_message("v1", a.json()) and error_message("v2", b.json())
            else:
                assert business(a.json()) == business(b.json()), (method, path)


async def test_the_totals_are_the_guides_numbers_on_both(tmp_path: Path) -> None:
    async with apps(tmp_path) as (v1, v2):
        for client in (v1, v2):
            order = (await client.post("/api/orders", json=SEQUENCE[6][2])).json()
            # Product 1: cost 12.01 at 15% → 13.81; two → 27.62; WELCOME10 → 2.76 off; under 50 → 5.00 shipping.
            assert (order["subtotal"], order["discount"], order["shipping"], order["total"]) == (
                "27.62",
                "2.76",
                "5.00",
                "29.86",
            )


async def test_the_differences_by_design_are_still_there(tmp_path: Path) -> None:
    async with apps(tmp_path) as (v1, v2):
        bad = {"customer_id": 1, "items": [{"product_id": 1, "quantity": 0}]}
        a, b = await v1.post("/api/orders", json=bad), await v2.post("/api/orders", json=bad)
        assert (a.status_code, b.status_code) == BY_DESIGN_STATUS["validation failure"]
        assert b.json()["error"]["code"] == "VALIDATION_ERROR"
        assert b.json()["error"]["details"]["errors"][0]["field"] == "items.0.quantity"

        for client in (v1, v2):
            assert (
                await client.post("/api/orders", json={"customer_id": 1, "items": [{"product_id": 1, "quantity": 1}]})
            ).status_code == 201
        a, b = await v1.post("/api/orders/1/ship"), await v2.post("/api/orders/1/ship")
        assert (a.status_code, b.status_code) == BY_DESIGN_STATUS["illegal transition"]
        assert b.json()["error"]["code"] == "INVALID_STATUS_TRANSITION"

        missing_v1, missing_v2 = await v1.get("/api/products/99999"), await v2.get("/api/products/99999")
        assert missing_v1.json() == {"detail": "Product not found"}
        assert missing_v2.json()["error"]["code"] == "NOT_FOUND"

        prompt = {"prompt": "describe a walnut desk", "max_tokens": 4}
        for _ in range(2):
            first_v1, first_v2 = (
                await v1.post("/api/ai/generate", json=prompt),
                await v2.post("/api/ai/generate", json=prompt),
            )
        assert first_v1.json()["text"] == first_v2.json()["text"] == "Generated: describe a walnut desk"
        assert (first_v1.json()["cached"], first_v2.json()["cached"]) == (False, True)  # V2 caches, V1 cannot

        health = (await v1.get("/health")).json(), (await v2.get("/health")).json()
        assert (health[0]["app"], health[1]["app"]) == ("legacy", "v2")
