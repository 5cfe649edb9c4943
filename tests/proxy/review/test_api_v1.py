"""/api/v1 over ASGI: reports, exchanges, noise marks, promotions, validation, tokens, and an OpenAPI true to routes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from proxy.review.openapi import openapi_path
from tests.proxy.report_seed import ReportApp, report_app

TOKEN = "api-token-for-tests"
ADMIN = "http://127.0.0.1:8900"
GET_ORDER = "GET /api/orders/{id}"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ReportApp]]:
    async with report_app(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as ctx:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ctx.app), base_url=ADMIN) as client:
            yield client, ctx


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ReportApp]]:
    async with report_app(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", admin_token=TOKEN) as ctx:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=ctx.app), base_url=ADMIN) as client:
            yield client, ctx


Api = tuple[httpx.AsyncClient, ReportApp]


def service(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["services"] if s["service"] == name)


async def test_summary_is_the_whole_report(api: Api) -> None:
    client, _ = api
    data = (await client.get("/api/v1/summary")).json()
    assert data["schema_version"] == 1 and data["ready"] is False
    orders = service(data, "orders")
    assert orders["counts"]["samples"] == 140 and orders["counts"]["findings"] == 10
    assert orders["counts"]["rates"]["diff"] == pytest.approx(10 / 140, abs=1e-6)
    assert [f["criterion"] for f in orders["readiness"]["failures"]] == ["max_diff_rate", "max_error_rate"]
    assert orders["latency"]["v2_speedup"] == pytest.approx(0.18, abs=0.01)
    assert "fields" not in orders["endpoints"][0]  # fields come from /fields
    assert service(data, "products")["readiness"] == {"ready": True, "failures": []}


async def test_readiness_takes_criteria_from_the_query(api: Api) -> None:
    client, _ = api
    default = (await client.get("/api/v1/readiness", params={"service": "orders"})).json()
    assert default["ready"] is False and default["criteria"]["max_diff_rate"] == 0.01
    lenient = await client.get(
        "/api/v1/readiness", params={"service": "orders", "max_diff_rate": "0.1", "max_error_rate": "0.02"}
    )
    assert lenient.json()["ready"] is True and lenient.json()["services"][0]["failures"] == []
    strict = (await client.get("/api/v1/readiness", params={"service": "products", "min_samples": "1000"})).json()
    assert [f["criterion"] for f in strict["services"][0]["failures"]] == ["min_samples"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_diff_rate": "2"}, "max_diff_rate"),
        ({"max_p99_ratio": "0"}, "max_p99_ratio"),
        ({"min_samples": "x"}, "min_samples"),
    ],
)
async def test_criteria_out_of_range_are_422_as_in_the_config(api: Api, params: dict[str, str], field: str) -> None:
    # One type for readiness criteria: a rate above 1 is refused in the query as it is in [readiness].
    client, _ = api
    response = await client.get("/api/v1/readiness", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["errors"][0]["field"] == field


async def test_services_service_and_endpoints(api: Api) -> None:
    client, ctx = api
    services = (await client.get("/api/v1/services")).json()["services"]
    assert [s["service"] for s in services] == ["ai", "default", "orders", "products"]
    assert all("endpoints" not in s for s in services)
    one = (await client.get("/api/v1/services/orders")).json()
    assert [e["endpoint"] for e in one["endpoints"]] == [GET_ORDER, "POST /api/orders"]
    endpoints = (await client.get("/api/v1/services/orders/endpoints")).json()
    assert endpoints["endpoints"][0]["counts"]["shadow_error"] == 2
    await ctx.state.promote("orders", "v2", reason="test", actor="tester")
    assert (await client.get("/api/v1/services/orders")).json()["primary"] == "v2"


async def test_fields_of_an_endpoint(api: Api) -> None:
    client, _ = api
    data = (await client.get("/api/v1/fields", params={"endpoint": GET_ORDER})).json()
    assert data["service"] == "orders"
    assert [(f["path"], f["raw"], f["noise"], f["verdict"]) for f in data["fields"]] == [
        ("root.total", 10, 0, "finding")
    ]
    assert (await client.get("/api/v1/fields", params={"endpoint": "GET /nope"})).status_code == 404
    missing = await client.get("/api/v1/fields")
    assert missing.status_code == 422 and missing.json()["error"]["details"]["errors"][0]["field"] == "endpoint"


async def test_exchanges_page_with_next_cursor_until_the_end(api: Api) -> None:
    client, _ = api
    params: dict[str, str] = {"service": "orders", "limit": "40"}
    seen: list[str] = []
    while True:
        page = (await client.get("/api/v1/exchanges", params=params)).json()
        seen += [x["id"] for x in page["items"]]
        if page["next_cursor"] is None:
            break
        params["before"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 140


async def test_exchange_filters(api: Api) -> None:
    client, ctx = api
    diffs = (await client.get("/api/v1/exchanges", params={"endpoint": GET_ORDER, "path": "root.total"})).json()
    assert len(diffs["items"]) == 10 and all(x["outcome"] == "diff" for x in diffs["items"])
    errors = (await client.get("/api/v1/exchanges", params={"outcome": "shadow_error"})).json()["items"]
    assert {x["shadow"]["error"] for x in errors} == {"timeout"} and len(errors) == 2
    assert (await client.get("/api/v1/exchanges", params={"since": "5m"})).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"outcome": "bad"}, "outcome"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"since": "soon"}, "since"),
        ({"before": "garbage"}, "before"),
        ({"path": "root.total"}, "path"),
        ({"service": "payments"}, "service"),
    ],
)
async def test_bad_exchange_filters_are_422_naming_the_parameter(api: Api, params: dict[str, str], field: str) -> None:
    client, _ = api
    response = await client.get("/api/v1/exchanges", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["details"]["errors"][0]["field"] == field


async def test_one_exchange_with_bodies_and_diffs(api: Api) -> None:
    client, ctx = api
    data = (await client.get(f"/api/v1/exchanges/{ctx.seeded.diff_exchange_id}")).json()
    assert data["diffs"] == [
        {
            "path": "root.total",
            "kind": "changed",
            "primary": "27.00",
            "shadow": "28.00",
            "noise": False,
            "primary_at": None,
            "shadow_at": None,
        }
    ]
    assert data["primary"]["body"]["json"]["total"] == "27.00" and data["shadow"]["body"]["json"]["total"] == "28.00"
    assert data["shadow"]["latency_ms"] == 18.0
    missing = await client.get("/api/v1/exchanges/no-such-id")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


async def test_noise_marks_add_list_and_remove(api: Api) -> None:
    client, ctx = api
    created = await client.post("/api/v1/noise-marks", json={"endpoint": GET_ORDER, "path": "root.total", "note": "ok"})
    assert created.status_code == 201
    mark = created.json()
    assert (await client.get("/api/v1/noise-marks")).json()["noise_marks"] == [mark]
    fields = (await client.get("/api/v1/fields", params={"endpoint": GET_ORDER})).json()["fields"]
    assert fields[0]["verdict"] == "marked"
    assert (await client.delete(f"/api/v1/noise-marks/{mark['id']}")).json() == {"deleted": mark["id"]}
    assert (await client.delete(f"/api/v1/noise-marks/{mark['id']}")).status_code == 404
    bad = await client.post("/api/v1/noise-marks", json={"endpoint": GET_ORDER})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["errors"][0]["field"] == "path"
    json_type = {"content-type": "application/json"}
    not_an_object = await client.post("/api/v1/noise-marks", content=b"[1]", headers=json_type)
    assert not_an_object.status_code == 422


async def test_promote_rollback_and_the_audit_trail(api: Api) -> None:
    client, ctx = api
    promoted = (await client.post("/api/v1/services/products/promote", json={"reason": "ready"})).json()
    assert promoted["primary"] == "v2" and promoted["previous"] == "v1" and promoted["changed"] is True
    assert ctx.state.primary("products") == "v2"
    again = (await client.post("/api/v1/services/products/promote", json={"to": "v2"})).json()
    assert again["changed"] is False
    rolled = (await client.post("/api/v1/services/products/rollback")).json()
    assert rolled["primary"] == "v1"
    trail = (await client.get("/api/v1/promotions", params={"service": "products"})).json()["promotions"]
    assert [(p["from"], p["to"]) for p in trail] == [("v2", "v1"), ("v1", "v2")]
    assert trail[1]["reason"] == "ready" and trail[1]["actor"].startswith("api@")
    assert (await client.post("/api/v1/services/products/rollback")).json()["changed"] is False
    never = await client.post("/api/v1/services/orders/rollback")
    assert never.status_code == 200 and never.json()["changed"] is False
    assert (await client.post("/api/v1/services/payments/promote")).status_code == 404
    assert (await client.post("/api/v1/services/orders/promote", json={"to": "v3"})).status_code == 422


async def test_with_a_token_mutations_need_it_and_reads_do_not(guarded: Api) -> None:
    client, ctx = guarded
    assert (await client.get("/api/v1/summary")).status_code == 200
    for method, url in [
        ("POST", "/api/v1/services/orders/promote"),
        ("POST", "/api/v1/services/orders/rollback"),
        ("POST", "/api/v1/noise-marks"),
        ("DELETE", "/api/v1/noise-marks/1"),
    ]:
        response = await client.request(method, url, json={"endpoint": "E", "path": "p"})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", url
    assert ctx.state.primary("orders") == "v1" and await ctx.store.list_noise_marks() == []
    ok = await client.post("/api/v1/services/orders/promote", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ctx.state.primary("orders") == "v2"


async def test_openapi_describes_every_route_and_nothing_else(api: Api) -> None:
    client, ctx = api
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    mounted = {
        (openapi_path(route.path), method.lower())
        for route in ctx.app.routes
        if isinstance(route, Route) and route.path.startswith("/api/v1/")
        for method in (route.methods or ()) - {"HEAD"}
    }
    described = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert mounted == described and len(mounted) == 15
    schemas = document["components"]["schemas"]
    text = str(document)
    assert {ref for ref in re.findall(r"#/components/schemas/(\w+)", text)} <= set(schemas)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            in_path = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), path
            assert operation["summary"]
            assert {"200", "201"} & set(operation["responses"]), path


async def test_openapi_marks_mutations_as_needing_the_bearer_token(api: Api) -> None:
    client, _ = api
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    secured = {(p, m) for p, ops in paths.items() for m, op in ops.items() if op.get("security")}
    assert secured == {
        ("/api/v1/noise-marks", "post"),
        ("/api/v1/noise-marks/{mark_id}", "delete"),
        ("/api/v1/services/{service}/promote", "post"),
        ("/api/v1/services/{service}/rollback", "post"),
    }


async def test_run_narrows_reports_and_listings_to_one_replay_or_live_traffic(api: Api) -> None:
    from dataclasses import replace

    from tests.diffs.storage.store_fixtures import comparison

    client, ctx = api
    replayed = comparison(endpoint=GET_ORDER, diffs=[("root.total", "1.00", "2.00")])
    await ctx.store.write_batch([replace(replayed, exchange=replace(replayed.exchange, run="replay-1"))])
    everything = service((await client.get("/api/v1/services")).json(), "orders")["counts"]
    live = service((await client.get("/api/v1/services", params={"run": "live"})).json(), "orders")["counts"]
    one = (await client.get("/api/v1/services", params={"run": "replay-1"})).json()
    assert everything["diff"] == live["diff"] + 1 and everything["total"] == live["total"] + 1
    assert service(one, "orders")["counts"]["total"] == 1
    summary = (await client.get("/api/v1/summary", params={"run": "replay-1"})).json()
    assert summary["window"]["run"] == "replay-1"
    listed = (await client.get("/api/v1/exchanges", params={"run": "replay-1"})).json()
    assert [x["id"] for x in listed["items"]] == [replayed.exchange.id]
    refused = await client.get("/api/v1/exchanges", params={"run": "x" * 65})
    assert refused.status_code == 422
