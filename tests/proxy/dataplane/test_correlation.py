"""proxy.dataplane.correlation: ids learned from mirrored creates, applied to later shadow requests, waiting."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from diffs.exchange import Role
from proxy.dataplane.correlation import IdCorrelator, IdFields, Pairs, extract_ids
from tests.proxy.upstreams import OrdersApp, proxy_stack, settings_for
from tests.servers import run_server

FIELDS = IdFields(("id", "*_id"))


@pytest.mark.parametrize(
    ("name", "hit"), [("id", True), ("order_id", True), ("customer_id", True), ("identity", False), ("ids", False)]
)
def test_id_fields_match_exact_names_and_globs(name: str, hit: bool) -> None:
    assert (name in FIELDS) is hit


def test_compiled_fields_are_cached_per_configuration() -> None:
    correlator = IdCorrelator(10, 1.0)
    assert correlator.fields(("id", "*_id")) is correlator.fields(("id", "*_id"))
    assert "sku" in correlator.fields(("sku",))


def test_extract_ids_top_level_nested_and_in_lists() -> None:
    body = orjson.dumps(
        {
            "id": 7,
            "name": "x",
            "customer_id": "c-1",
            "flag_id": True,
            "item": {"item_id": 70, "deep": {"id": 1}},
            "lines": [{"id": 71}, {"id": 72}],
        }
    )
    assert extract_ids(body, FIELDS) == {
        "id": 7,
        "customer_id": "c-1",
        "item.item_id": 70,
        "lines[0].id": 71,
        "lines[1].id": 72,
    }
    assert extract_ids(b"not json", FIELDS) == {}
    assert extract_ids(b"[1, 2]", FIELDS) == {}


def test_complete_pairs_differing_ids_by_location() -> None:
    seen: list[tuple[str, Pairs]] = []
    correlator = IdCorrelator(100, 1.0, on_pairs=lambda service, pairs: seen.append((service, pairs)))
    pending = correlator.begin("orders", Role.SHADOW, {"id": 7, "customer_id": 5, "item.item_id": 70})
    assert pending is not None
    pairs = correlator.complete(pending, {"id": 1007, "customer_id": 5, "item.item_id": 1070})
    assert list(pairs) == [(7, 1007), (70, 1070)]
    assert seen == [("orders", pairs)]
    assert correlator.lookup("orders", 7) == 1007 and correlator.lookup("orders", "7") == 1007
    assert correlator.lookup("orders", 5) is None
    assert correlator.lookup("products", 7) is None  # per service
    assert correlator.lookup("orders", 7, Role.SECONDARY) is None  # per role


def test_a_failing_on_pairs_hook_still_learns_and_releases() -> None:
    def broken(service: str, pairs: Pairs) -> None:
        raise RuntimeError("store down")

    correlator = IdCorrelator(100, 1.0, on_pairs=broken)
    pending = correlator.begin("orders", Role.SHADOW, {"id": 7})
    assert pending is not None
    with capture_logs() as logs:
        correlator.complete(pending, {"id": 1007})
    assert correlator.lookup("orders", 7) == 1007 and pending.event.is_set()
    assert any(entry["event"] == "on_pairs hook failed" for entry in logs)


def test_a_failed_shadow_create_learns_nothing_but_releases_waiters() -> None:
    correlator = IdCorrelator(100, 1.0)
    pending = correlator.begin("orders", Role.SHADOW, {"id": 7})
    assert pending is not None and correlator.active("orders")
    assert correlator.complete(pending, None) == []
    assert pending.event.is_set() and not correlator.active("orders")


def test_the_map_is_a_bounded_lru() -> None:
    correlator = IdCorrelator(3, 1.0)
    correlator.remember("orders", [(1, 101), (2, 102), (3, 103)])
    assert correlator.lookup("orders", 1) == 101
    asyncio.run(correlator.rewrite("orders", Role.SHADOW, "/api/orders/1", "", b"", FIELDS, json_body=False))
    correlator.remember("orders", [(4, 104)])  # evicts 2, the least recently used (1 was just used)
    assert [correlator.lookup("orders", n) for n in (1, 2, 3, 4)] == [101, None, 103, 104]


async def test_rewrite_path_query_and_json_body() -> None:
    correlator = IdCorrelator(100, 1.0)
    correlator.remember("orders", [(7, 1007), (70, 1070), ("c-1", "c-9")])
    body = orjson.dumps({"order_id": 7, "note": "7", "item": {"item_id": "70"}, "customer_id": "c-1"})
    path, query, new_body = await correlator.rewrite(
        "orders", Role.SHADOW, "/api/orders/7/items/70", "order_id=7&page=7&x", body, FIELDS, json_body=True
    )
    assert path == "/api/orders/1007/items/1070"
    assert query == "order_id=1007&page=7&x"  # only values under id fields
    assert orjson.loads(new_body) == {"order_id": 1007, "note": "7", "item": {"item_id": "1070"}, "customer_id": "c-9"}


async def test_rewrite_leaves_unknown_ids_and_other_sides_alone() -> None:
    correlator = IdCorrelator(100, 1.0)
    correlator.remember("orders", [(7, 1007)])
    body = b'{"order_id": 8}'
    assert await correlator.rewrite("orders", Role.SHADOW, "/api/orders/8", "", body, FIELDS, json_body=True) == (
        "/api/orders/8",
        "",
        body,
    )
    unchanged = await correlator.rewrite("orders", Role.SECONDARY, "/api/orders/7", "", b"", FIELDS, json_body=False)
    assert unchanged[0] == "/api/orders/7"


async def test_a_request_naming_a_pending_id_waits_for_the_create() -> None:
    correlator = IdCorrelator(100, 2.0)
    pending = correlator.begin("orders", Role.SHADOW, {"id": 7})
    assert pending is not None
    rewrite = asyncio.get_running_loop().create_task(
        correlator.rewrite("orders", Role.SHADOW, "/api/orders/7", "", b"", FIELDS, json_body=False)
    )
    await asyncio.sleep(0.05)
    assert not rewrite.done()
    correlator.complete(pending, {"id": 1007})
    assert (await rewrite)[0] == "/api/orders/1007"
    assert correlator.waits == 1 and correlator.wait_timeouts == 0


async def test_waiting_is_bounded() -> None:
    correlator = IdCorrelator(100, 0.1)
    correlator.begin("orders", Role.SHADOW, {"id": 7})
    started = time.perf_counter()
    path, _, _ = await correlator.rewrite("orders", Role.SHADOW, "/api/orders/7", "", b"", FIELDS, json_body=False)
    assert path == "/api/orders/7"
    assert 0.09 < time.perf_counter() - started < 0.5
    assert correlator.wait_timeouts == 1


async def test_create_get_update_reach_the_shadows_own_order() -> None:
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000)
    persisted: list[tuple[str, Pairs]] = []
    correlator = IdCorrelator(1000, 1.0, on_pairs=lambda service, pairs: persisted.append((service, pairs)))
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2:
        async with proxy_stack(settings_for(u1, u2), correlator=correlator) as stack, httpx.AsyncClient() as client:
            created = (await client.post(f"{stack.url}/api/orders", json={"customer_id": 5})).json()
            await stack.sink.wait(1)
            order = created["id"]
            got = await client.get(f"{stack.url}/api/orders/{order}")
            updated = await client.put(
                f"{stack.url}/api/orders/{order}",
                json={"status": "paid", "item": {"item_id": created["item"]["item_id"]}},
            )
            exchanges = await stack.sink.wait(3)
    assert order == 1 and got.json()["id"] == 1 and updated.json()["status"] == "paid"
    assert [s.path for s in v2.recorder.seen] == ["/api/orders", "/api/orders/1000", "/api/orders/1000"]
    assert orjson.loads(v2.recorder.seen[2].body)["item"]["item_id"] == 10000
    assert v2.orders[1000]["status"] == "paid"
    shadow_get, shadow_put = exchanges[1].shadow, exchanges[2].shadow
    assert shadow_get is not None and shadow_get.status == 200 and orjson.loads(shadow_get.body)["id"] == 1000
    assert shadow_put is not None and shadow_put.status == 200
    assert persisted == [("orders", [(1, 1000), (10, 10000)])]


async def test_a_read_right_after_a_create_waits_for_the_slow_shadow_create() -> None:
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000, create_delay=0.3)
    correlator = IdCorrelator(1000, 2.0)
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2:
        async with proxy_stack(settings_for(u1, u2), correlator=correlator) as stack, httpx.AsyncClient() as client:
            created = await client.post(f"{stack.url}/api/orders", json={"customer_id": 5})
            started = time.perf_counter()
            got = await client.get(f"{stack.url}/api/orders/{created.json()['id']}")
            client_latency = time.perf_counter() - started
            exchanges = await stack.sink.wait(2)
    assert got.status_code == 200 and client_latency < 0.2  # the client never waits for the shadow
    read = next(e for e in exchanges if e.request.method == "GET")
    assert read.shadow is not None and read.shadow.status == 200
    assert orjson.loads(read.shadow.body)["id"] == 1000
    assert [s.path for s in v2.recorder.seen] == ["/api/orders", "/api/orders/1000"]
    assert correlator.waits == 1 and correlator.wait_timeouts == 0


async def test_the_secondary_gets_its_own_ids_too() -> None:
    v1, v2, v1b = OrdersApp("v1", 1), OrdersApp("v2", 1000), OrdersApp("v1b", 500)
    correlator = IdCorrelator(1000, 1.0)
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2, run_server(v1b.recorder) as u3:
        settings = settings_for(u1, u2, secondary_url=u3)
        async with proxy_stack(settings, correlator=correlator) as stack, httpx.AsyncClient() as client:
            created = (await client.post(f"{stack.url}/api/orders", json={"customer_id": 5})).json()
            await stack.sink.wait(1)
            await client.get(f"{stack.url}/api/orders/{created['id']}")
            [_, read] = await stack.sink.wait(2)
    assert [s.path for s in v1b.recorder.seen] == ["/api/orders", "/api/orders/500"]
    assert read.secondary is not None and read.secondary.status == 200


async def test_without_a_correlator_ids_are_not_rewritten() -> None:
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000)
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2:
        async with proxy_stack(settings_for(u1, u2)) as stack, httpx.AsyncClient() as client:
            await client.post(f"{stack.url}/api/orders", json={"customer_id": 5})
            await stack.sink.wait(1)
            await client.get(f"{stack.url}/api/orders/1")
            [_, read] = await stack.sink.wait(2)
    assert read.shadow is not None and read.shadow.status == 404
