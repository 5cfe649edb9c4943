"""proxy.dataplane.correlation: pairs learned from mirrored creates, applied only where their resource is named."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from diffs.id_pairs import IdPair
from diffs.resources import IdNaming, Resource
from proxy.dataplane.correlation import IdCorrelator, ServiceIds, UnsafeId, created_ids
from tests.proxy.upstreams import OrdersApp, proxy_stack, settings_for
from tests.servers import run_server

ORDERS = Resource("/api/orders")
NAMING = IdNaming()
IDS = ServiceIds.of(NAMING)


def test_created_ids_are_the_records_own_and_those_created_with_it() -> None:
    body = {
        "id": 7,
        "customer_id": 5,  # a reference to another resource, not created here
        "item": {"item_id": 70},
        "lines": [{"id": 71}, {"id": 72}],
        "note": {"text": "x"},
    }
    assert created_ids(body, ORDERS, NAMING) == {
        "id": (ORDERS, 7),
        "item.item_id": (ORDERS.below("item"), 70),
        "lines[0].id": (ORDERS.below("lines"), 71),
        "lines[1].id": (ORDERS.below("lines"), 72),
    }


def test_created_ids_in_an_envelope_and_under_the_resources_own_name() -> None:
    assert created_ids({"data": {"id": "abc"}}, ORDERS, NAMING) == {"data.id": (ORDERS, "abc")}
    assert created_ids({"order_id": 7, "status": "new"}, ORDERS, NAMING) == {"order_id": (ORDERS, 7)}
    assert created_ids({"a": {"id": 1}, "b": {"id": 2}}, ORDERS, NAMING) == {}  # which envelope? none
    assert created_ids([1, 2], ORDERS, NAMING) == {}


def correlator_with(*pairs: IdPair) -> IdCorrelator:
    correlator = IdCorrelator(100)
    correlator.pairs.remember(pairs)
    return correlator


def rewrite(
    correlator: IdCorrelator, method: str, path: str, query: str = "", body: bytes = b"", naming: IdNaming = NAMING
) -> tuple[str, str, bytes]:
    request = ServiceIds.of(naming).target(method, path, correlator.resources("shop"))
    return correlator.rewrite(
        "shop", "v1", "v2", path, query, body, request=request, naming=naming, json_body=bool(body)
    )


POST_6 = IdPair("shop", "/posts", "v1", 6, "v2", "5rCadNROXW8")
COMMENT_5 = IdPair("shop", "/comments", "v1", 5, "v2", "oluY43kxems")
USER_6 = IdPair("shop", "/users", "v1", 6, "v2", 1006)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected_path", "expected_query"),
    [
        # the reproduction: comment 5 was created, then post 5 was read and patched
        ("GET", "/posts/5", "", "/posts/5", ""),
        ("PATCH", "/posts/5", "", "/posts/5", ""),
        ("GET", "/comments/5", "", "/comments/oluY43kxems", ""),
        ("GET", "/posts/6", "", "/posts/5rCadNROXW8", ""),
        ("GET", "/posts/6.json", "", "/posts/5rCadNROXW8.json", ""),
        ("GET", "/posts/6/comments/5", "", "/posts/5rCadNROXW8/comments/5", ""),  # comment 5 of /comments, not these
        # queries: a reference field names its resource; the collection's own id in a request to it
        ("GET", "/posts", "user_id=6", "/posts", "user_id=1006"),
        ("GET", "/orders", "customer_id=6", "/orders", "customer_id=6"),  # no customers paired
        ("GET", "/posts", "id=6&page=6", "/posts", "id=5rCadNROXW8&page=6"),
        ("GET", "/comments", "post_id=6", "/comments", "post_id=5rCadNROXW8"),
        ("GET", "/comments", "post_id=5", "/comments", "post_id=5"),  # 5 is a comment's id, not a post's
    ],
)
def test_a_value_is_rewritten_only_where_its_resource_is_named(
    method: str, path: str, query: str, expected_path: str, expected_query: str
) -> None:
    correlator = correlator_with(POST_6, COMMENT_5, USER_6)
    assert rewrite(correlator, method, path, query)[:2] == (expected_path, expected_query)


def test_json_bodies_get_each_sides_own_ids_with_their_types() -> None:
    correlator = correlator_with(POST_6, COMMENT_5, USER_6)
    body = orjson.dumps(
        {"post_id": 6, "user_id": "6", "views": 6, "id": 5, "comments": [{"id": 5}], "author": {"user_id": 6}}
    )
    _, _, rewritten = rewrite(correlator, "POST", "/comments", body=body)
    assert orjson.loads(rewritten) == {
        "post_id": "5rCadNROXW8",  # V2's id, as V2's type (a string)
        "user_id": 1006,  # an int, as V2 gave it, though the client sent "6"
        "views": 6,  # equals a known id, but is not an id field
        "id": "oluY43kxems",  # the request is about /comments: its own id
        "comments": [{"id": "oluY43kxems"}],
        "author": {"user_id": 1006},
    }
    untouched = orjson.dumps({"title": "x", "views": 6})
    assert rewrite(correlator, "PATCH", "/posts/6", body=untouched)[2] == untouched


def test_explicit_references_and_other_id_keys() -> None:
    correlator = correlator_with(USER_6)
    naming = IdNaming(key="uid", explicit={"author": "/users"})
    body = orjson.dumps({"author": 6, "id": 6})
    assert orjson.loads(rewrite(correlator, "POST", "/posts", body=body, naming=naming)[2]) == {"author": 1006, "id": 6}


@pytest.mark.parametrize("value", ["a/b", "x y", "a?b=c", "é", "a\r\nb", "x" * 200, "%2F"])
def test_only_id_shaped_values_are_written_into_a_request_line(value: str) -> None:
    correlator = correlator_with(IdPair("shop", "/posts", "v1", 6, "v2", value))
    assert rewrite(correlator, "GET", "/posts/6", "id=6")[:2] == ("/posts/6", "id=6")
    assert correlator.unsafe == 2
    body = rewrite(correlator, "POST", "/comments", body=b'{"post_id": 6}')[2]
    assert orjson.loads(body) == {"post_id": value}  # JSON escapes what it needs: a body may take it


@pytest.mark.parametrize(("path", "query"), [("/posts/6", ""), ("/comments", "post_id=6")])
def test_strict_refuses_a_request_whose_paired_id_cannot_go_into_its_request_line(path: str, query: str) -> None:
    # The mirror's way: the side is not sent the request rather than sent the primary's id (another record there).
    correlator = correlator_with(IdPair("shop", "/posts", "v1", 6, "v2", "a\r\nX-Injected: 1"))
    request = ServiceIds.of(NAMING).target("GET", path, correlator.resources("shop"))
    with pytest.raises(UnsafeId):
        correlator.rewrite(
            "shop", "v1", "v2", path, query, b"", request=request, naming=NAMING, json_body=False, strict=True
        )
    assert correlator.unsafe == 1
    safe = correlator_with(POST_6)
    request = ServiceIds.of(NAMING).target("GET", path, safe.resources("shop"))
    rewritten = safe.rewrite(
        "shop", "v1", "v2", path, query, b"", request=request, naming=NAMING, json_body=False, strict=True
    )
    assert "5rCadNROXW8" in rewritten[0] + rewritten[1] and safe.unsafe == 0


def test_pairs_are_learned_by_location_and_persisted_through_the_hook() -> None:
    seen: list[list[IdPair]] = []
    correlator = IdCorrelator(100, on_pairs=seen.append)
    primary = created_ids({"id": 7, "customer_id": 5, "item": {"item_id": 70}}, ORDERS, NAMING)
    other = created_ids({"id": 1007, "customer_id": 5, "item": {"item_id": "1070"}}, ORDERS, NAMING)
    pairs = correlator.learn("shop", primary, "v1", other, "v2")
    assert pairs == [
        IdPair("shop", "/api/orders", "v1", 7, "v2", 1007),
        IdPair("shop", "/api/orders/{}/item", "v1", 70, "v2", "1070"),
    ]
    assert seen == [pairs]
    assert correlator.learn("shop", primary, "v1", primary, "v2") == []  # the same ids need no pair


def test_a_failing_hook_still_learns() -> None:
    def broken(pairs: list[IdPair]) -> None:
        raise RuntimeError("store down")

    correlator = IdCorrelator(100, on_pairs=broken)
    with capture_logs() as logs:
        correlator.learn("shop", {"id": (ORDERS, 7)}, "v1", {"id": (ORDERS, 1007)}, "v2")
    assert correlator.pairs.lookup("shop", "/api/orders", "v1", "v2", 7) == 1007
    assert any(entry["event"] == "on_pairs hook failed" for entry in logs)


async def test_create_get_update_reach_the_shadows_own_order() -> None:
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000)
    persisted: list[list[IdPair]] = []
    correlator = IdCorrelator(1000, on_pairs=persisted.append)
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2:
        async with proxy_stack(settings_for(u1, u2), correlator=correlator) as stack, httpx.AsyncClient() as client:
            created = (await client.post(f"{stack.url}/api/orders", json={"customer_id": 5})).json()
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
    assert shadow_get.sent is not None and shadow_get.sent.target == "/api/orders/1000"
    assert shadow_put is not None and shadow_put.status == 200
    assert shadow_put.sent is not None and orjson.loads(shadow_put.sent.body or b"")["item"]["item_id"] == 10000
    assert exchanges[1].primary.sent is not None and exchanges[1].primary.sent.target == "/api/orders/1"
    assert persisted == [
        [
            IdPair("orders", "/api/orders", "v1", 1, "v2", 1000),
            IdPair("orders", "/api/orders/{}/item", "v1", 10, "v2", 10000),
        ]
    ]


async def test_a_read_right_after_a_create_waits_for_the_slow_shadow_create() -> None:
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000, create_delay=0.3)
    correlator = IdCorrelator(1000)
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2:
        async with proxy_stack(settings_for(u1, u2), correlator=correlator) as stack, httpx.AsyncClient() as client:
            created = await client.post(f"{stack.url}/api/orders", json={"customer_id": 5})
            started = time.perf_counter()
            got = await client.get(f"{stack.url}/api/orders/{created.json()['id']}")
            client_seconds = time.perf_counter() - started
            exchanges = await stack.sink.wait(2)
            waited = stack.metrics.registry.get_sample_value(
                "shadowdiff_causal_waits_total", {"service": "orders", "outcome": "waited"}
            )
    assert got.status_code == 200 and client_seconds < 0.3  # the client never waits for the shadow
    read = next(e for e in exchanges if e.request.method == "GET")
    assert read.shadow is not None and read.shadow.status == 200
    assert orjson.loads(read.shadow.body)["id"] == 1000
    assert [s.path for s in v2.recorder.seen] == ["/api/orders", "/api/orders/1000"]
    assert waited == 1


async def test_the_secondary_gets_its_own_ids_too() -> None:
    v1, v2, v1b = OrdersApp("v1", 1), OrdersApp("v2", 1000), OrdersApp("v1b", 500)
    correlator = IdCorrelator(1000)
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2, run_server(v1b.recorder) as u3:
        settings = settings_for(u1, u2, secondary_url=u3)
        async with proxy_stack(settings, correlator=correlator) as stack, httpx.AsyncClient() as client:
            created = (await client.post(f"{stack.url}/api/orders", json={"customer_id": 5})).json()
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
