"""Seeding the demo catalogue, the settings' URL handling, and /health."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from legacy_app.app import create_app
from legacy_app.seed import seed_database
from legacy_app.settings import LegacySettings, sync_sqlite_url
from proxy.runtime.demo import demo_catalogue


async def test_seed_is_idempotent_and_numbers_rows_in_order(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'seed.db'}"
    catalogue = demo_catalogue()
    assert seed_database(url, catalogue) == 60
    assert seed_database(url, catalogue) == 0
    app = create_app(LegacySettings(database_url=url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        page = (await client.get("/api/products", params={"limit": 200})).json()
        assert page["total"] == 60
        assert [p["sku"] for p in page["items"]] == [p["sku"] for p in catalogue["products"]]
        assert [p["id"] for p in page["items"]] == list(range(1, 61))
        first, source = page["items"][0], catalogue["products"][0]
        assert (first["name"], first["cost_price"], first["margin_rate"], first["status"], first["stock"]) == (
            source["name"], source["cost_price"], source["margin_rate"], source["status"], source["stock"],
        )  # fmt: skip
        assert first["price"] == "13.81"  # 12.01 * 1.15 = 13.8115
        for customer_id, customer in enumerate(catalogue["customers"], start=1):
            body = (await client.get(f"/api/customers/{customer_id}")).json()
            assert body == {
                "id": customer_id,
                "name": customer["name"],
                "email": customer["email"],
                "tier": customer["tier"],
            }


def test_seed_loads_nothing_into_a_database_that_has_products(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    assert seed_database(url, demo_catalogue(product_count=3)) == 3
    assert seed_database(url, demo_catalogue(product_count=60)) == 0


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.json() == {"status": "ok", "app": "legacy", "version": "1.4.2"}


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///./legacy.db", "sqlite:///./legacy.db"),
        ("sqlite+aiosqlite:///data/v1.db", "sqlite:///data/v1.db"),
        ("sqlite+pysqlite:////abs/v1.db", "sqlite:////abs/v1.db"),
    ],
)
def test_sqlite_urls_map_to_the_sync_driver(given: str, used: str) -> None:
    assert sync_sqlite_url(given).render_as_string() == used


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"database_url": "postgresql://db/x"}, "not a SQLite URL"),
        ({"database_url": "not a url"}, "not a valid database URL"),
        ({"database_url": "sqlite://"}, "must name a SQLite file"),
        ({"database_url": "sqlite:///:memory:"}, "must name a SQLite file"),
        ({"log_level": "loud"}, "log_level 'loud' is not one of"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LegacySettings(**fields)


def test_settings_defaults() -> None:
    settings = LegacySettings()
    assert (settings.database_url, settings.log_level) == ("sqlite:///./legacy.db", "info")
