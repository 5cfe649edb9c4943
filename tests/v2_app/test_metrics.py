"""`GET /metrics`: Prometheus text with request latency by route template, errors by code, cache and query timing."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.v2_app.support import serve
from v2_app.metrics import LATENCY_BUCKETS
from v2_app.settings import V2Settings


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_metrics_after_traffic(client: httpx.AsyncClient) -> None:
    for product_id in (1, 1, 2):
        await client.get(f"/api/products/{product_id}")
    await client.get("/api/products/999")
    await client.post("/api/orders", json={"customer_id": 1, "items": []})
    await client.post("/api/orders", json={"customer_id": 1, "items": [{"product_id": 1, "quantity": 1}]})
    await client.get("/no/such/route")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    count = "http_request_duration_seconds_count"
    assert value(text, count, method="GET", endpoint="/api/products/{id}", status="200") == 3
    assert value(text, count, method="GET", endpoint="/api/products/{id}", status="404") == 1
    assert value(text, count, method="POST", endpoint="/api/orders", status="422") == 1
    assert value(text, count, method="POST", endpoint="/api/orders", status="201") == 1
    assert value(text, count, method="GET", endpoint="unmatched", status="404") == 1
    assert value(text, "http_request_errors_total", code="NOT_FOUND", status="404") == 2
    assert value(text, "http_request_errors_total", code="VALIDATION_ERROR", status="422") == 1
    assert value(text, "cache_hits_total", namespace="product") == 1
    assert value(text, "cache_misses_total", namespace="product") == 3
    for operation in ("select", "insert", "update"):
        assert value(text, "db_query_duration_seconds_count", operation=operation) > 0


def test_latency_buckets_resolve_fast_requests() -> None:
    below_100ms = [b for b in LATENCY_BUCKETS if b <= 0.1]

    assert len(below_100ms) >= 10  # enough resolution for p50/p90/p99 where requests actually land


async def test_two_apps_keep_separate_registries(settings: V2Settings) -> None:
    async with serve(settings) as first, serve(settings) as second:
        await first.get("/health")
        await first.get("/health")
        await second.get("/health")

        first_text = (await first.get("/metrics")).text
        second_text = (await second.get("/metrics")).text

    labels = {"method": "GET", "endpoint": "/health", "status": "200"}
    assert value(first_text, "http_request_duration_seconds_count", **labels) == 2
    assert value(second_text, "http_request_duration_seconds_count", **labels) == 1
