"""Legacy app fixtures: a fresh seeded SQLite file per test, an in-process client, product and snapshot helpers."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from legacy_app.app import create_app
from legacy_app.seed import seed_database
from legacy_app.settings import LegacySettings
from proxy.runtime.demo import demo_catalogue
from tests.legacy_app.support import MakeProduct, Snapshot


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo catalogue seeded once per session; each test gets its own copy."""
    path = tmp_path_factory.mktemp("legacy-template") / "legacy.db"
    assert seed_database(f"sqlite:///{path}", demo_catalogue()) == 60
    return path


@pytest.fixture
def db_url(tmp_path: Path, seeded_template: Path) -> str:
    path = tmp_path / "legacy.db"
    shutil.copyfile(seeded_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[Starlette]:
    app = create_app(LegacySettings(database_url=db_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest.fixture
def make_product(client: httpx.AsyncClient) -> MakeProduct:
    """Create a product through the API (cost 10.00, margin 0 → price 10.00, stock 10 unless overridden)."""
    numbers = itertools.count(1)

    async def make(**fields: Any) -> dict[str, Any]:
        body = {"sku": f"TEST-{next(numbers):03d}", "name": "Test Item", "cost_price": "10.00", "margin_rate": "0"}
        body |= {"stock": 10} | fields
        response = await client.post("/api/products", json=body)
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        return product

    return make


@pytest.fixture
def snapshot(client: httpx.AsyncClient) -> Snapshot:
    """Everything a failed write must leave alone: every product as served, and every order."""

    async def take() -> dict[str, Any]:
        products = await client.get("/api/products", params={"limit": 200})
        orders = await client.get("/api/orders")
        assert products.status_code == orders.status_code == 200
        return {"products": products.json(), "orders": orders.json()}

    return take
