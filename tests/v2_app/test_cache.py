"""The cache: TTL and bounds in memory, the real Redis backend, hit/miss counting, and the app's invalidation."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis

from tests.v2_app.support import serve
from v2_app.cache import CacheService, MemoryTTLBackend, RedisBackend
from v2_app.database import Database
from v2_app.logs import build_logger
from v2_app.metrics import Metrics
from v2_app.models import Product
from v2_app.product_service import ProductService
from v2_app.repository import ProductRepository
from v2_app.settings import V2Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_memory_backend_expires_entries() -> None:
    clock = FakeClock()
    cache = CacheService(MemoryTTLBackend(clock=clock), "product", ttl_seconds=30)

    await cache.set("id:1", {"id": 1, "price": "13.81"})
    clock.now += 29.9
    assert await cache.get("id:1") == {"id": 1, "price": "13.81"}
    clock.now += 0.2
    assert await cache.get("id:1") is None


async def test_memory_backend_is_bounded() -> None:
    backend = MemoryTTLBackend(max_entries=3)
    cache = CacheService(backend, "n")

    for i in range(5):
        await cache.set(str(i), i)

    assert len(backend) == 3
    assert [await cache.get(str(i)) for i in range(5)] == [None, None, 2, 3, 4]


async def test_hits_and_misses_are_counted_per_namespace() -> None:
    metrics = Metrics()
    backend = MemoryTTLBackend()
    products = CacheService(backend, "product", metrics=metrics)
    ai = CacheService(backend, "ai", metrics=metrics)

    await products.get("id:1")
    await products.set("id:1", {"id": 1})
    await products.get("id:1")
    await products.get("id:1")
    await ai.get("id:1")  # same key, other namespace: a miss

    assert counter(metrics, "cache_hits_total", namespace="product") == 2
    assert counter(metrics, "cache_misses_total", namespace="product") == 1
    assert counter(metrics, "cache_misses_total", namespace="ai") == 1


async def test_delete_and_invalidate_prefix_stay_in_their_namespace() -> None:
    backend = MemoryTTLBackend()
    products = CacheService(backend, "product")
    other = CacheService(backend, "ai")
    for key in ("id:1", "id:2", "sku:A"):
        await products.set(key, key)
    await other.set("id:1", "kept")

    await products.delete("sku:A")
    assert await products.get("sku:A") is None
    assert await products.invalidate_prefix("id:") == 2
    assert await products.get("id:1") is None
    assert await other.get("id:1") == "kept"


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own in the test Redis, with its keys deleted afterwards."""
    prefix = f"test-v2-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_redis_backend_round_trip_ttl_and_prefix(redis_url: str, redis_prefix: str) -> None:
    metrics = Metrics()
    backend = RedisBackend(redis_url)
    cache = CacheService(backend, "product", ttl_seconds=0.3, key_prefix=redis_prefix, metrics=metrics)
    try:
        await cache.set("id:1", {"id": 1, "price": "13.81"})
        await cache.set("id:2", {"id": 2})
        await cache.set("sku:*", ["glob", "chars"])

        assert await cache.get("id:1") == {"id": 1, "price": "13.81"}
        assert await cache.get("sku:*") == ["glob", "chars"]
        assert await cache.invalidate_prefix("id:") == 2
        assert await cache.get("id:2") is None
        assert await cache.get("sku:*") == ["glob", "chars"]
        await cache.delete("sku:*")
        assert await cache.get("sku:*") is None
        assert counter(metrics, "cache_hits_total", namespace="product") == 3
        assert counter(metrics, "cache_misses_total", namespace="product") == 2
    finally:
        await backend.close()


async def test_redis_entries_expire(redis_url: str, redis_prefix: str) -> None:
    backend = RedisBackend(redis_url)
    cache = CacheService(backend, "product", ttl_seconds=0.1, key_prefix=redis_prefix)
    try:
        await cache.set("id:1", 1)
        assert await cache.get("id:1") == 1
        await asyncio.sleep(0.25)
        assert await cache.get("id:1") is None
    finally:
        await backend.close()


async def test_unreachable_redis_is_a_counted_miss_not_a_failure(unused_tcp_port: int) -> None:
    metrics = Metrics()
    backend = RedisBackend(f"redis://127.0.0.1:{unused_tcp_port}/0", timeout=0.2)
    cache = CacheService(backend, "product", metrics=metrics)
    try:
        await cache.set("id:1", 1)
        assert await cache.get("id:1") is None
        assert await cache.invalidate_prefix() == 0
        assert counter(metrics, "cache_errors_total", namespace="product") == 3
        assert counter(metrics, "cache_misses_total", namespace="product") == 1
    finally:
        await backend.close()


def _write_behind_the_apps_back(db_url: str, name: str) -> None:
    """Rename product 1 with plain sqlite3, so only a cached read can still show the old name."""
    path = db_url.split(":///", 1)[1]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE products SET name = ? WHERE id = 1", (name,))
    conn.close()


async def _product_reads_are_cached_and_writes_invalidate(client: httpx.AsyncClient, db_url: str) -> None:
    first = (await client.get("/api/products/1")).json()
    (await client.get("/api/products/sku/SKU-0001")).json()
    _write_behind_the_apps_back(db_url, "Renamed Behind The Back")

    assert (await client.get("/api/products/1")).json() == first  # served from the cache
    assert (await client.get("/api/products/sku/SKU-0001")).json()["name"] == "Oak Chair 1"

    order = await client.post("/api/orders", json={"customer_id": 1, "items": [{"product_id": 1, "quantity": 2}]})
    assert order.status_code == 201
    after_order = (await client.get("/api/products/1")).json()
    assert (after_order["stock"], after_order["name"]) == (31, "Renamed Behind The Back")
    by_sku = (await client.get("/api/products/sku/SKU-0001")).json()
    assert by_sku["stock"] == 31

    await client.post(f"/api/orders/{order.json()['id']}/cancel")
    assert (await client.get("/api/products/1")).json()["stock"] == 33
    assert (await client.get("/api/products/sku/SKU-0001")).json()["stock"] == 33

    await client.patch("/api/products/1", json={"name": "Patched"})
    assert (await client.get("/api/products/1")).json()["name"] == "Patched"
    assert (await client.get("/api/products/sku/SKU-0001")).json()["name"] == "Patched"


async def test_app_caches_product_reads_in_memory(settings: V2Settings) -> None:
    async with serve(settings) as client:
        await _product_reads_are_cached_and_writes_invalidate(client, settings.database_url)
        metrics = (await client.get("/metrics")).text
    assert 'cache_hits_total{namespace="product"}' in metrics


async def test_app_caches_product_reads_in_redis(settings: V2Settings, redis_url: str, redis_prefix: str) -> None:
    redis_settings = settings.model_copy(update={"redis_url": redis_url, "cache_key_prefix": redis_prefix})
    async with serve(redis_settings) as client:
        await _product_reads_are_cached_and_writes_invalidate(client, settings.database_url)

    client_ = redis.Redis.from_url(redis_url)
    try:
        assert [key async for key in client_.scan_iter(match=f"{redis_prefix}:product:*")]
    finally:
        await client_.aclose()


async def test_deleted_product_is_not_served_from_cache(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/products", json={"sku": "GONE-1", "name": "Soon gone", "cost_price": "1.00"})
    product_id = created.json()["id"]
    assert (await client.get(f"/api/products/{product_id}")).status_code == 200
    assert (await client.get("/api/products/sku/GONE-1")).status_code == 200

    assert (await client.delete(f"/api/products/{product_id}")).status_code == 204

    assert (await client.get(f"/api/products/{product_id}")).status_code == 404
    assert (await client.get("/api/products/sku/GONE-1")).status_code == 404


async def test_read_that_raced_a_write_does_not_fill_the_cache(
    seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(seeded_url)
    backend = MemoryTTLBackend()
    service = ProductService(db, CacheService(backend, "product"), build_logger(stream=io.StringIO()))
    original = ProductRepository.get_or_404

    async def read_then_a_write_commits(self: ProductRepository, id: int) -> Product:
        row = await original(self, id)
        await service.forget(id, row.sku)  # what a concurrent order does after its commit
        return row

    try:
        monkeypatch.setattr(ProductRepository, "get_or_404", read_then_a_write_commits)
        await service.get(1)
        assert len(backend) == 0

        monkeypatch.setattr(ProductRepository, "get_or_404", original)
        await service.get(1)
        assert len(backend) == 1
    finally:
        await db.dispose()
