"""The admin API over ASGI: listing, promote, rollback, audit, metrics, health, token and loopback rules, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from diffs.storage import PromotionRecord, Store, StoreUnavailable
from proxy.config import ConfigError, Settings, load_settings
from proxy.control.admin import create_admin_app
from proxy.control.promotion import PrimaryState, PromotionStore

TOKEN = "s3cret-token-for-tests"
AdminClient = Callable[..., Any]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}")
    yield store
    await store.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("shadowdiff_requests", "Client requests.", ("service",), registry=registry).labels("orders").inc(3)
    return registry


@pytest.fixture
async def make_client(store: Store, registry: CollectorRegistry) -> AsyncIterator[AdminClient]:
    """Build an admin app from overrides and return an httpx client on it; everything is closed at the end."""
    opened: list[tuple[httpx.AsyncClient, PrimaryState]] = []

    async def make(
        store_override: PromotionStore | None = None, start: bool = True, **overrides: Any
    ) -> httpx.AsyncClient:
        settings = load_settings(overrides=overrides, environ={})
        state = PrimaryState(settings.services, store_override or store, refresh_seconds=0.05)
        if start:
            await state.start()
        app = create_admin_app(settings, state=state, registry=registry)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8900")
        opened.append((client, state))
        return client

    yield make
    for client, state in opened:
        await client.aclose()
        await state.aclose()


async def test_lists_every_service_with_its_primary_shadow_and_mirroring(make_client: AdminClient) -> None:
    client = await make_client()
    response = await client.get("/api/services")
    assert response.status_code == 200
    services = {s["name"]: s for s in response.json()["services"]}
    assert list(services) == ["orders", "products", "ai", "default"]
    assert services["orders"] == {
        "name": "orders",
        "primary": "v1",
        "shadow": "v2",
        "mirror": True,
        "sample_rate": 1.0,
        "prefixes": ["/api/orders"],
        "methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    }
    one = await client.get("/api/services/ai")
    assert one.json()["prefixes"] == ["/api/ai"]


async def test_promote_then_rollback_changes_the_primary_and_is_audited(make_client: AdminClient) -> None:
    client = await make_client()
    promoted = await client.post(
        "/api/services/orders/promote", json={"to": "v2", "reason": "green for a week", "actor": "ada@laptop"}
    )
    assert promoted.status_code == 200
    body = promoted.json()
    assert body["changed"] is True and body["previous"] == "v1"
    assert (body["service"]["primary"], body["service"]["shadow"]) == ("v2", "v1")
    assert body["promotion"]["from"] == "v1" and body["promotion"]["to"] == "v2"

    listed = {s["name"]: s["primary"] for s in (await client.get("/api/services")).json()["services"]}
    assert listed["orders"] == "v2"

    rolled = await client.post("/api/services/orders/rollback")  # no body at all: allowed
    assert rolled.status_code == 200
    assert rolled.json()["service"]["primary"] == "v1"

    history = (await client.get("/api/promotions")).json()["promotions"]
    assert [(h["from"], h["to"], h["actor"]) for h in history] == [
        ("v2", "v1", "api@127.0.0.1"),
        ("v1", "v2", "ada@laptop"),
    ]
    assert history[0]["reason"] == "rolled back to v1 through the admin API"
    assert history[1]["reason"] == "green for a week"
    assert (await client.get("/api/promotions", params={"service": "products"})).json() == {"promotions": []}
    assert len((await client.get("/api/promotions", params={"limit": "1"})).json()["promotions"]) == 1


async def test_promote_to_the_current_primary_says_nothing_changed(make_client: AdminClient) -> None:
    client = await make_client()
    response = await client.post("/api/services/orders/promote", json={"to": "v1"})
    assert response.status_code == 200
    assert response.json()["changed"] is False and response.json()["promotion"] is None


async def test_rollback_twice_stays_on_v1_and_says_nothing_changed(make_client: AdminClient) -> None:
    client = await make_client()
    assert (await client.post("/api/services/ai/promote", json={"to": "v2"})).status_code == 200
    first = (await client.post("/api/services/ai/rollback", json={"reason": "panic"})).json()
    again = (await client.post("/api/services/ai/rollback", json={"reason": "panic, retried"})).json()
    assert (first["changed"], first["service"]["primary"], first["previous"]) == (True, "v1", "v2")
    assert (again["changed"], again["service"]["primary"], again["promotion"]) == (False, "v1", None)
    history = (await client.get("/api/promotions", params={"service": "ai"})).json()["promotions"]
    assert [(h["from"], h["to"], h["reason"]) for h in history][0] == ("v2", "v1", "panic")
    assert len(history) == 2
    never = await client.post("/api/services/orders/rollback", json={"reason": "panic"})
    assert never.status_code == 200 and never.json()["changed"] is False


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/services/search", "GET"),
        ("/api/services/search/promote", "POST"),
        ("/api/services/search/rollback", "POST"),
        ("/api/promotions?service=search", "GET"),
    ],
)
async def test_unknown_service_is_a_404_json(make_client: AdminClient, path: str, method: str) -> None:
    client = await make_client()
    response = await client.request(method, path, json={"to": "v2"} if method == "POST" else None)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert "unknown service 'search'" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"to": "v3"}', "to"),
        (b'{"reason": "no target"}', "to"),
        (b'{"to": "v2", "colour": "red"}', "colour"),
        (b'{"to": "v2", "actor": "env"}', "actor"),
        (b'{"to": "v2", "reason": 5}', "reason"),
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"", "body"),
    ],
)
async def test_bad_promote_body_is_a_422_naming_the_field(make_client: AdminClient, content: bytes, field: str) -> None:
    client = await make_client()
    response = await client.post(
        "/api/services/orders/promote", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in [item["field"] for item in error["details"]["errors"]]
    assert (await client.get("/api/services/orders")).json()["primary"] == "v1"


async def test_bad_limit_is_a_422(make_client: AdminClient) -> None:
    client = await make_client()
    response = await client.get("/api/promotions", params={"limit": "lots"})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["errors"][0]["field"] == "limit"


async def test_with_a_token_mutations_need_it_and_reads_do_not(make_client: AdminClient) -> None:
    client = await make_client(admin_token=TOKEN)
    missing = await client.post("/api/services/orders/promote", json={"to": "v2"})
    wrong = await client.post(
        "/api/services/orders/promote", json={"to": "v2"}, headers={"Authorization": "Bearer nope"}
    )
    basic = await client.post("/api/services/orders/rollback", headers={"Authorization": f"Basic {TOKEN}"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/api/services/orders")).json()["primary"] == "v1"

    good = await client.post(
        "/api/services/orders/promote", json={"to": "v2"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert good.status_code == 200 and good.json()["service"]["primary"] == "v2"
    assert (await client.get("/api/promotions")).status_code == 200


async def test_a_non_loopback_admin_listener_refuses_to_start_without_a_token(store: Store) -> None:
    settings = load_settings(overrides={"admin_host": "0.0.0.0"}, environ={})
    state = PrimaryState(settings.services, store)
    with pytest.raises(ConfigError, match="'admin_host' has value '0.0.0.0'.*'admin_token' is not set"):
        create_admin_app(settings, state=state, registry=CollectorRegistry())


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
async def test_loopback_admin_listeners_start_without_a_token(store: Store, host: str) -> None:
    settings = load_settings(overrides={"admin_host": host}, environ={})
    create_admin_app(settings, state=PrimaryState(settings.services, store), registry=CollectorRegistry())


async def test_a_non_loopback_admin_listener_with_a_token_requires_it(make_client: AdminClient) -> None:
    client = await make_client(admin_host="0.0.0.0", admin_token=TOKEN)
    assert (await client.post("/api/services/orders/promote", json={"to": "v2"})).status_code == 401


async def test_metrics_exposes_the_registry_as_prometheus_text(make_client: AdminClient) -> None:
    client = await make_client()
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'shadowdiff_requests_total{service="orders"} 3.0' in response.text


async def test_health_is_ok_once_the_store_was_read_and_503_before(make_client: AdminClient) -> None:
    ready = await make_client()
    response = await ready.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["primaries"]["orders"] == "v1"
    blind = await make_client(start=False)
    assert (await blind.get("/health")).status_code == 503


class DownStore:
    async def get_primaries(self) -> dict[str, str]:
        raise StoreUnavailable("database unavailable: connection refused")

    async def record_promotion(
        self, service: str, from_side: str, to_side: str, reason: str, actor: str, **options: Any
    ) -> PromotionRecord:
        raise StoreUnavailable("database unavailable: connection refused")

    async def list_promotions(self, service: str | None = None, limit: int = 100) -> list[PromotionRecord]:
        raise StoreUnavailable("database unavailable: connection refused")


async def test_a_store_failure_is_a_503_json_not_a_traceback(make_client: AdminClient) -> None:
    client = await make_client(store_override=DownStore(), start=False)
    promote = await client.post("/api/services/orders/promote", json={"to": "v2"})
    history = await client.get("/api/promotions")
    for response in (promote, history):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "STORE_UNAVAILABLE"
        assert "connection refused" in response.json()["error"]["message"]


async def test_unknown_paths_and_methods_are_json(make_client: AdminClient) -> None:
    client = await make_client()
    missing = await client.get("/api/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    wrong_method = await client.get("/api/services/orders/promote")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_extra_routes_are_served_by_the_admin_app(store: Store, registry: CollectorRegistry) -> None:
    async def report(request: Request) -> PlainTextResponse:
        return PlainTextResponse("the report")

    settings: Settings = load_settings(environ={})
    app = create_admin_app(
        settings,
        state=PrimaryState(settings.services, store),
        registry=registry,
        extra_routes=[Route("/", report)],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8900") as client:
        assert (await client.get("/")).text == "the report"
        assert (await client.get("/api/services")).status_code == 200
