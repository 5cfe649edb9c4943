"""The whole path with the real apps: V1 primary, V2 shadow, a second V1 for noise, the proxy, the store.

Timestamps and generated ids must come out as noise, the real V1/V2 differences (error body shape, 400 vs 422)
as findings, and an order created through the proxy must be reachable on V2 under V2's own id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from diffs.exchange import Outcome
from diffs.storage import Store, StoredExchange
from legacy_app.app import create_app as create_legacy
from legacy_app.seed import seed_database as seed_legacy
from legacy_app.settings import LegacySettings
from proxy.config import load_settings
from proxy.runtime.demo import demo_catalogue
from tests.servers import run_server, run_shadowdiff
from v2_app.app import create_app as create_v2
from v2_app.seed import seed_database_async as seed_v2
from v2_app.settings import V2Settings


@dataclass
class Stack:
    proxy: str
    v2: str
    database_url: str


@contextlib.asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    catalogue = demo_catalogue()
    legacy_urls = [f"sqlite:///{tmp_path / name}" for name in ("legacy.db", "secondary.db")]
    for url in legacy_urls:
        await asyncio.to_thread(seed_legacy, url, catalogue)
    v2_url = f"sqlite+aiosqlite:///{tmp_path / 'v2.db'}"
    await seed_v2(v2_url, catalogue)
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}"
    async with (
        run_server(create_legacy(LegacySettings(database_url=legacy_urls[0]))) as v1,
        run_server(create_legacy(LegacySettings(database_url=legacy_urls[1]))) as secondary,
        run_server(create_v2(V2Settings(database_url=v2_url))) as v2,
    ):
        settings = load_settings(
            overrides={
                "v1_url": v1,
                "v2_url": v2,
                "secondary_url": secondary,
                "port": 0,
                "admin_port": 0,
                "database_url": store_url,
                "drain_seconds": 5,
            },
            environ={},
        )
        async with run_shadowdiff(settings) as server:
            yield Stack(server.proxy_url, v2, store_url)


async def stored(database_url: str) -> dict[str, StoredExchange]:
    store = await Store.open(database_url)
    try:
        page = await store.list_exchanges(limit=200)
        found = {}
        for summary in page.items:
            exchange = await store.get_exchange(summary.id)
            assert exchange is not None
            found[summary.id] = exchange
        return found
    finally:
        await store.close()


def order_of(customer_id: int, *, product_id: int, quantity: int) -> dict[str, object]:
    return {"customer_id": customer_id, "items": [{"product_id": product_id, "quantity": quantity}]}


def paths(exchange: StoredExchange, *, noise: bool) -> set[str]:
    return {d.path for d in exchange.diffs if d.noise is noise}


@pytest.mark.slow
async def test_noise_and_findings_from_real_v1_and_v2_traffic(tmp_path: Path) -> None:
    # V2 already has an order of its own, so ids diverge: V1's next order is 1, V2's is 2.
    ids: dict[str, str] = {}
    async with stack(tmp_path) as s:
        async with httpx.AsyncClient(timeout=10) as direct:
            made = await direct.post(
                f"{s.v2}/api/orders", json={"customer_id": 2, "items": [{"product_id": 2, "quantity": 1}]}
            )
            assert made.status_code == 201 and made.json()["id"] == 1
        async with httpx.AsyncClient(base_url=s.proxy, timeout=10) as client:

            async def send(method: str, path: str, **kwargs: object) -> httpx.Response:
                response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
                key = f"{method} {path}" + (" bad" if f"{method} {path}" in ids else "")
                ids[key] = response.headers["x-request-id"]
                return response

            assert (await send("GET", "/api/products/1")).status_code == 200
            missing = await send("GET", "/api/products/99999")
            assert missing.json() == {"detail": "Product not found"}  # the client gets V1's answer, untouched
            order = await send(
                "POST", "/api/orders", json={"customer_id": 1, "items": [{"product_id": 1, "quantity": 2}]}
            )
            assert order.status_code == 201 and order.json()["id"] == 1
            bad = await send(
                "POST", "/api/orders", json={"customer_id": 1, "items": [{"product_id": 1, "quantity": 0}]}
            )
            assert bad.status_code == 400
            assert (await send("GET", "/api/orders/1")).json()["customer_id"] == 1
            assert (await send("POST", "/api/orders/1/pay")).json()["status"] == "paid"
        # Give the mirrored calls a moment to land before checking V2's own database.
        async with httpx.AsyncClient(timeout=10) as direct:
            for _ in range(50):
                v2_order = (await direct.get(f"{s.v2}/api/orders/2")).json()
                if v2_order.get("status") == "paid":
                    break
                await asyncio.sleep(0.1)
            assert v2_order["customer_id"] == 1 and v2_order["status"] == "paid"  # V2's own order 2, reached as 1
            assert (await direct.get(f"{s.v2}/api/orders/1")).json()["status"] == "pending"  # V2's own order untouched
    exchanges = await stored(s.database_url)

    assert exchanges[ids["GET /api/products/1"]].summary.outcome is Outcome.MATCH

    not_found = exchanges[ids["GET /api/products/99999"]]
    assert not_found.summary.outcome is Outcome.DIFF
    assert {"root.detail", "root.error"} <= paths(not_found, noise=False)

    created = exchanges[ids["POST /api/orders"]]
    # The secondary V1 generated its own order_number and timestamps: those fields are noise, not findings.
    assert {"root.order_number", "root.created_at", "root.updated_at"} <= paths(created, noise=True)
    # 1 vs 2 is a correlated id (the shadow's own order for the primary's), expected rather than a finding.
    assert any(d.path == "root.id" and (d.primary_value, d.shadow_value) == (1, 2) for d in created.diffs if d.noise)
    assert created.summary.outcome is Outcome.MATCH

    invalid = exchanges[ids["POST /api/orders bad"]]
    assert invalid.summary.outcome is Outcome.DIFF
    assert any(d.path == "status" and (d.primary_value, d.shadow_value) == (400, 422) for d in invalid.diffs)

    read = exchanges[ids["GET /api/orders/1"]]
    assert read.shadow is not None and read.shadow.status == 200  # rewritten to V2's order 2, not a 404
    paid = exchanges[ids["POST /api/orders/1/pay"]]
    assert paid.shadow is not None and paid.shadow.status == 200
