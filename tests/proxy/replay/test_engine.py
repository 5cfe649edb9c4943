"""The replay engine against real upstreams: the live data plane's forwarding, correlation and order, into the store."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from diffs.readiness import Criteria
from diffs.report import LIVE, Report, Window
from diffs.rules import NoiseConfig
from diffs.storage import RetentionPolicy, Store, queries
from proxy.replay.engine import Options, Tally, replay
from proxy.replay.progress import PlainView
from tests.diffs.storage.store_fixtures import comparison
from tests.proxy.replay.support import Lines, Shop, gor_file, har_file, replay_settings
from tests.servers import run_server, run_shadowdiff

JSON = {"content-type": "application/json"}


async def run(settings: object, spec: str, view: object | None = None, **options: object) -> Tally:
    tally = Tally()
    opts = Options(run_id="r1", **options)  # type: ignore[arg-type]
    await replay(settings, spec, opts, view or Lines(), asyncio.Event(), tally)  # type: ignore[arg-type]
    return tally


async def report(url: str, run: str) -> Report:
    store = await Store.open(url)
    try:
        return await queries.load_report(
            store,
            window=Window(run=run),
            criteria=Criteria(min_samples=1),
            noise=NoiseConfig(),
            primaries={},
            services=["orders", "products", "ai", "default"],
        )
    finally:
        await store.close()


def verdicts(report: Report) -> dict[str, tuple[dict[str, int], list[str]]]:
    """Per endpoint: its outcome counts and the fields found to differ (findings)."""
    found = {}
    for service in report.services:
        for e in service.endpoints:
            c = e.counts
            counted = {"match": c.match, "diff": c.diff, "shadow_error": c.shadow_error, "skipped": c.skipped}
            outcomes = {o: n for o, n in counted.items() if n}
            found[e.endpoint] = (outcomes, sorted(f.path for f in e.fields if f.verdict == "finding"))
    return found


async def test_a_gor_file_replays_through_the_data_plane_into_the_store(tmp_path: Path) -> None:
    v1, v2 = Shop("v1"), Shop("v2", broken=frozenset({3}))
    raw = [
        b"GET /api/products/1 HTTP/1.1\r\nHost: shop.test\r\nX-Request-ID: recorded-1\r\n\r\n",
        b"GET /api/products/3 HTTP/1.1\r\nHost: shop.test\r\n\r\n",
        b"POST /api/orders HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/json\r\n"
        b'Content-Length: 17\r\n\r\n{"customer": "a"}',
    ]
    source = gor_file(tmp_path / "traffic", raw, compress=True)  # no extension: told by its content
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = replay_settings(u1, u2, tmp_path / "store.db")
        tally = await run(settings, str(source), concurrency=1)
    assert (tally.total, tally.sent, tally.answered, tally.bad) == (3, 3, 3, 0)
    assert tally.outcomes == {"match": 2, "diff": 1}
    assert v1.seen() == ["GET /api/products/1", "GET /api/products/3", "POST /api/orders"]
    assert sorted(v2.seen()) == sorted(v1.seen())  # reads are not ordered on the shadow: they need not be
    shadows = {h.headers["x-request-id"]: h for h in v2.hits}
    for primary in v1.hits:  # the live data plane's header hygiene
        shadow = shadows[primary.headers["x-request-id"]]
        assert shadow.path == primary.path
        assert primary.headers["x-request-id"] != "recorded-1"
        assert shadow.headers["x-shadow-request"] == "1" and "x-shadow-request" not in primary.headers
        assert primary.headers["x-forwarded-host"] == "shop.test"
    assert [h.body for h in v2.hits if h.method == "POST"] == [b'{"customer": "a"}']
    found = verdicts(await report(settings.database_url, "r1"))
    assert found["GET /api/products/{id}"] == ({"match": 1, "diff": 1}, ["root.price"])
    assert not (await report(settings.database_url, LIVE)).active  # nothing counted as live traffic


async def test_ids_correlate_and_each_session_reads_after_its_write(tmp_path: Path) -> None:
    # V2 generates its own ids and creates slowly: the recorded GET /api/orders/1 must reach V2's order 1001, after
    # V2 has created it; and no request of the ordering session may start before the previous one was answered.
    v1, v2 = Shop("v1"), Shop("v2", first=1001, create_delay=0.3)
    order = {"x-session": "buyer", **JSON}
    browse = {"x-session": "browser"}
    source = har_file(
        tmp_path / "yesterday.har",
        [
            ("POST", "/api/orders", order, b'{"sku": "A"}'),
            ("GET", "/api/products/1", browse, None),
            ("GET", "/api/orders/1", order, None),
            ("GET", "/api/products/2", browse, None),
            ("PUT", "/api/orders/1", order, b'{"status": "paid"}'),
            ("GET", "/api/orders/1", order, None),
        ],
    )
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = replay_settings(u1, u2, tmp_path / "store.db")
        tally = await run(settings, str(source), concurrency=2, session_header="x-session")
    assert tally.outcomes == {"match": 6}  # ids told apart from differences: 1 and 1001 are the same order
    assert v2.seen("GET")[-1] == "GET /api/orders/1001" and v2.seen("PUT") == ["PUT /api/orders/1001"]
    assert v2.orders[1001]["status"] == "paid"
    ordering = [h for h in v1.hits if h.path.startswith("/api/orders")]
    assert [f"{h.method} {h.path}" for h in ordering] == [
        "POST /api/orders",
        "GET /api/orders/1",
        "PUT /api/orders/1",
        "GET /api/orders/1",
    ]
    for before, after in zip(ordering, ordering[1:], strict=False):
        assert after.arrived >= before.answered
    shadow_read = next(h for h in v2.hits if h.path == "/api/orders/1001" and h.method == "GET")
    assert shadow_read.arrived >= v2.hits[0].answered  # it waited for the shadow's own create (causal order)
    browsing = [h for h in v1.hits if h.path.startswith("/api/products")]
    assert browsing[0].arrived < ordering[1].arrived  # the other session did not wait for the slow create


class Feed(Shop):
    """Answers GET /api/feed with a JSON body of unknown length, in parts some time apart: the data plane streams it
    (issue 10) while it keeps the copy that is compared. `last` is the value in the last part."""

    def __init__(self, name: str, last: int) -> None:
        super().__init__(name)
        self.last = last

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/feed":
            await super().__call__(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        for part in (b'{"items": [1, 2, ', b"3, 4, ", b"%d]}" % self.last):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})


async def test_a_streamed_response_is_compared_whole_in_a_replay(tmp_path: Path) -> None:
    # A replayed request has no client that could go away: the stream is read to its end, and the copy compared.
    v1, v2 = Feed("v1", last=5), Feed("v2", last=6)
    source = har_file(tmp_path / "feed.har", [("GET", "/api/feed", {}, None), ("GET", "/api/products/1", {}, None)])
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = replay_settings(u1, u2, tmp_path / "store.db")
        tally = await run(settings, str(source), concurrency=1)
    assert (tally.total, tally.answered, tally.failed) == (2, 2, 0)
    found = verdicts(await report(settings.database_url, "r1"))
    assert found["GET /api/feed"] == ({"diff": 1}, ["root.items[*]"])  # the difference came in the last part
    assert found["GET /api/products/{id}"] == ({"match": 1}, [])


async def test_capture_then_replay_into_a_fresh_store_finds_the_same(tmp_path: Path) -> None:
    """Live traffic through the proxy with --capture; then the capture replayed against fresh V1/V2 instances."""

    async def traffic(client: httpx.AsyncClient, url: str) -> None:
        created = (await client.post(f"{url}/api/orders", json={"sku": "B"}, headers={"x-session": "s1"})).json()
        await client.get(f"{url}/api/orders/{created['id']}", headers={"x-session": "s1"})
        await client.put(f"{url}/api/orders/{created['id']}", json={"status": "paid"}, headers={"x-session": "s1"})
        for number in (1, 2, 3, 4, 3, 404):
            await client.get(f"{url}/api/products/{number}", headers={"authorization": "Bearer live-secret"})

    live_db, replay_db, capture = tmp_path / "live.db", tmp_path / "replay.db", tmp_path / "capture"
    v1, v2 = Shop("v1"), Shop("v2", first=1001, broken=frozenset({3}))
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = replay_settings(u1, u2, live_db, port=0, admin_port=0)
        capturing = settings.capture.model_copy(update={"dir": str(capture), "session_header": "x-session"})
        async with run_shadowdiff(settings.model_copy(update={"capture": capturing})) as server:
            async with httpx.AsyncClient() as client:
                await traffic(client, server.proxy_url)
    fresh_v1, fresh_v2 = Shop("v1"), Shop("v2", first=1001, broken=frozenset({3}))
    async with run_server(fresh_v1) as u1, run_server(fresh_v2) as u2:
        settings = replay_settings(u1, u2, replay_db)
        tally = await run(settings, str(capture), concurrency=4)
    assert tally.total == 9 and tally.bad == 0
    live, replayed = (
        verdicts(await report(f"sqlite+aiosqlite:///{live_db}", LIVE)),
        verdicts(await report(f"sqlite+aiosqlite:///{replay_db}", "r1")),
    )
    assert replayed == live
    assert live["GET /api/products/{id}"] == ({"match": 4, "diff": 2}, ["root.price"])
    assert sorted(fresh_v2.seen()) == sorted(v2.seen())  # the same requests, correlated ids included
    assert all("authorization" not in h.headers for h in fresh_v1.hits)  # the capture redacted it: not sent


async def test_the_store_replays_the_examples_it_kept_and_says_what_it_could_not(tmp_path: Path) -> None:
    # The store keeps a bounded set of examples (reports read rollups): those are what `replay store` can send.
    database = tmp_path / "store.db"
    url = f"sqlite+aiosqlite:///{database}"
    store = await Store.open(url, retention=RetentionPolicy(examples_per_field=1, match_examples_per_endpoint=1))
    try:
        batch = [
            comparison(endpoint="GET /api/products/{id}", service="products"),  # an example
            comparison(endpoint="GET /api/products/{id}", service="products"),  # only counted: not replayable
            comparison(endpoint="POST /api/orders", request_body=b'{"sku": "C"}'),  # an example
            comparison(endpoint="POST /api/orders", request_body=b'{"sku": "D"}'),  # only counted
        ]
        truncated = comparison(endpoint="PUT /api/orders/{id}", request_body=b'{"st')
        request = truncated.exchange.request
        batch.append(
            replace(truncated, exchange=replace(truncated.exchange, request=replace(request, body_truncated=True)))
        )
        batch.append(replace(batch[0], exchange=replace(batch[0].exchange, id="older-replay", run="old")))
        await store.write_batch(batch)
    finally:
        await store.close()
    v1, v2 = Shop("v1"), Shop("v2")
    async with run_server(v1) as u1, run_server(v2) as u2:
        tally = await run(replay_settings(u1, u2, database), "store", concurrency=1)
    assert v1.seen() == ["GET /api/products/1", "POST /api/orders"]
    assert [h.body for h in v1.hits] == [b"", b'{"sku": "C"}']
    assert v1.hits[0].headers["accept"] == "application/json"
    assert tally.notes == {
        "exchanges replayed in full": 2,
        "exchanges with a truncated body: not replayable": 1,
    }
    assert tally.bad == 0 and tally.outcomes["match"] == 2


async def test_progress_lines_off_a_terminal(tmp_path: Path) -> None:
    v1, v2 = Shop("v1"), Shop("v2", broken=frozenset({2}))
    source = har_file(tmp_path / "x.har", [("GET", f"/api/products/{n}", {}, None) for n in range(1, 9)])
    out = io.StringIO()

    async def delayed(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            await asyncio.sleep(0.1)
        await v1(scope, receive, send)

    async with run_server(delayed) as u1, run_server(v2) as u2:
        tally = await run(replay_settings(u1, u2, tmp_path / "s.db"), str(source), PlainView(out, every=0.2))
    lines = out.getvalue().splitlines()
    assert lines[0] == f"replaying 8 requests from {source} (HAR)"
    assert len(lines) >= 3  # periodic lines while it ran, then the last
    assert lines[-1].startswith("replay: 8/8 (100%) · ") and lines[-1].endswith(" · 7 match · 1 findings · 0 errors")
    counts = [int(line.split(" ")[1].split("/")[0]) for line in lines[1:]]
    assert counts == sorted(counts) and counts[0] < 8
    assert tally.answered == 8
