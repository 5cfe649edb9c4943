"""The proxy end to end on real uvicorn servers: the client gets the primary's bytes, the shadow only a copy."""

from __future__ import annotations

import asyncio
import gc
import time

import httpx
import orjson
import pytest

from diffs.exchange import ErrorKind, Role
from proxy.config import ServiceConfig
from tests.proxy.upstreams import (
    GZIP_BODY,
    ListSink,
    Recorder,
    chunked,
    down_url,
    fixed,
    garbage,
    gzipped,
    proxy_stack,
    raw_server,
    reset_mid_body,
    sample,
    settings_for,
)
from tests.servers import run_server


class Primaries:
    def __init__(self, **primaries: str) -> None:
        self.primaries = primaries

    def primary(self, service: str) -> str:
        return self.primaries.get(service, "v1")


async def test_client_gets_the_primarys_bytes_exactly() -> None:
    v1, v2 = Recorder("v1", gzipped()), Recorder("v2", fixed(201, b"{}"))
    async with run_server(v1) as u1, run_server(v2) as u2, proxy_stack(settings_for(u1, u2)) as stack:
        async with httpx.AsyncClient() as client:
            async with client.stream(
                "GET", f"{stack.url}/api/products/1", headers={"accept-encoding": "gzip"}
            ) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
        [exchange] = await stack.sink.wait(1)
    assert response.status_code == 200
    assert raw == GZIP_BODY
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == str(len(GZIP_BODY))
    assert response.headers.get_list("x-custom") == ["kept", "twice"]
    sent = [(k.lower(), v) for k, v in exchange.primary.headers if k != "x-request-id"]
    got = [(k.decode().lower(), v.decode()) for k, v in response.headers.raw if k.lower() != b"x-request-id"]
    assert got == sent  # every header, in order, repeats kept (date and server are the upstream's)
    assert [k for k, _ in got] == [
        "date",
        "server",
        "content-type",
        "content-encoding",
        "vary",
        "x-custom",
        "x-custom",
        "content-length",
    ]
    assert v1.seen[0].headers["accept-encoding"] == "gzip"
    assert exchange.primary.body == GZIP_BODY and exchange.shadow is not None and exchange.shadow.status == 201


async def test_hop_by_hop_response_headers_are_removed() -> None:
    async def hop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
            b"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-End: 2\r\n\r\nok"
        )
        await writer.drain()
        writer.close()

    async with raw_server(hop) as u1, proxy_stack(settings_for(u1, down_url())) as stack:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{stack.url}/x")
    assert response.text == "ok"
    assert response.headers["x-end"] == "2"
    for name in ("x-hop", "keep-alive", "proxy-authenticate"):
        assert name not in response.headers


async def test_a_chunked_primary_body_that_came_whole_gets_a_length() -> None:
    async def whole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")
        await writer.drain()

    async with raw_server(whole) as u1:
        async with proxy_stack(settings_for(u1, down_url())) as stack, httpx.AsyncClient() as client:
            response = await client.get(f"{stack.url}/x")
    assert response.content == b"abcd"
    assert response.headers["content-length"] == "4"
    assert "transfer-encoding" not in response.headers


async def test_a_chunked_primary_body_still_coming_is_streamed_chunked() -> None:
    async def parts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"2\r\ncd\r\n0\r\n\r\n")
        await writer.drain()

    async with raw_server(parts) as u1:
        async with proxy_stack(settings_for(u1, down_url())) as stack, httpx.AsyncClient() as client:
            response = await client.get(f"{stack.url}/x")
            [exchange] = await stack.sink.wait(1)
    assert response.content == b"abcd"
    assert response.headers["transfer-encoding"] == "chunked" and "content-length" not in response.headers
    assert exchange.primary.body == b"abcd" and not exchange.primary.body_truncated


async def test_primary_and_shadow_receive_the_request_together() -> None:
    v1, v2 = Recorder("v1", delay=0.1), Recorder("v2", delay=0.1)  # sent one after the other, gaps would be 0.1 s
    async with run_server(v1) as u1, run_server(v2) as u2, proxy_stack(settings_for(u1, u2)) as stack:
        async with httpx.AsyncClient() as client:
            for n in range(6):
                await client.post(f"{stack.url}/api/orders", content=b'{"n": %d}' % n)
                await stack.sink.wait(n + 1)
    gaps = sorted(abs(b.at - a.at) for a, b in zip(v1.seen[1:], v2.seen[1:], strict=True))  # the first warms up
    assert gaps[len(gaps) // 2] < 0.02, gaps  # within a few ms (measured ~0.1 ms; margin for a loaded CI machine)
    assert gaps[-1] < 0.08, gaps  # even on a loaded machine, never one after the other (that would be 0.1 s)
    assert [s.body for s in v1.seen] == [s.body for s in v2.seen]


async def test_request_id_and_shadow_marker() -> None:
    v1, v2 = Recorder("v1"), Recorder("v2")
    async with run_server(v1) as u1, run_server(v2) as u2, proxy_stack(settings_for(u1, u2)) as stack:
        async with httpx.AsyncClient() as client:
            given = await client.get(f"{stack.url}/api/products/1", headers={"x-request-id": "req-42"})
            generated = await client.get(f"{stack.url}/api/products/1")
        exchanges = await stack.sink.wait(2)
    assert given.headers["x-request-id"] == "req-42"
    assert v1.seen[0].headers["x-request-id"] == v2.seen[0].headers["x-request-id"] == "req-42"
    rid = generated.headers["x-request-id"]
    assert len(rid) == 32
    assert v1.seen[1].headers["x-request-id"] == v2.seen[1].headers["x-request-id"] == rid
    assert {e.id for e in exchanges} == {"req-42", rid}
    assert "x-shadow-request" not in v1.seen[0].headers
    assert v2.seen[0].headers["x-shadow-request"] == "1"


async def test_loop_guard_never_mirrors_a_marked_request() -> None:
    v1, v2 = Recorder("v1"), Recorder("v2")
    async with run_server(v1) as u1, run_server(v2) as u2, proxy_stack(settings_for(u1, u2)) as stack:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{stack.url}/api/products/1", headers={"x-shadow-request": "1"})
        [exchange] = await stack.sink.wait(1)
        await asyncio.sleep(0.05)
    assert response.status_code == 200 and len(v1.seen) == 1
    assert v2.seen == []
    assert exchange.skip_reason == "loop_guard" and exchange.shadow is None
    assert sample(stack.metrics, "shadowdiff_skipped_total", service="products", reason="loop_guard") == 1


@pytest.mark.parametrize("mode", ["preserve", "rewrite"])
async def test_host_header_modes(mode: str) -> None:
    v1, v2 = Recorder("v1"), Recorder("v2")
    async with run_server(v1) as u1, run_server(v2) as u2:
        async with proxy_stack(settings_for(u1, u2, host_header=mode)) as stack, httpx.AsyncClient() as client:
            await client.get(f"{stack.url}/x", headers={"host": "shop.example"})
            await stack.sink.wait(1)
    if mode == "preserve":
        assert v1.seen[0].headers["host"] == v2.seen[0].headers["host"] == "shop.example"
    else:
        assert v1.seen[0].headers["host"] == u1.removeprefix("http://")
        assert v2.seen[0].headers["host"] == u2.removeprefix("http://")
    assert v1.seen[0].headers["x-forwarded-host"] == "shop.example"
    assert v1.seen[0].headers["x-forwarded-for"] == "127.0.0.1"
    assert v1.seen[0].headers["x-forwarded-proto"] == "http"


async def test_promoted_service_answers_from_v2_and_mirrors_to_v1() -> None:
    v1, v2 = Recorder("v1"), Recorder("v2")
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = settings_for(u1, u2)
        async with proxy_stack(settings, primaries=Primaries(orders="v2")) as stack, httpx.AsyncClient() as client:
            orders = await client.get(f"{stack.url}/api/orders/1")
            products = await client.get(f"{stack.url}/api/products/1")
            exchanges = await stack.sink.wait(2)
    assert orders.json()["app"] == "v2" and products.json()["app"] == "v1"
    by_service = {e.service: e for e in exchanges}
    assert by_service["orders"].primary.app == "v2" and by_service["orders"].shadow.app == "v1"  # type: ignore[union-attr]
    assert v1.seen[0].headers.get("x-shadow-request") == "1"


@pytest.mark.parametrize(
    ("shadow", "kind", "status"),
    [
        ("down", ErrorKind.CONNECT, None),
        ("slow", ErrorKind.TIMEOUT, None),
        ("reset", ErrorKind.RESET, None),
        ("garbage", ErrorKind.RESET, None),
        ("500", ErrorKind.NONE, 500),
    ],
)
async def test_a_failing_shadow_changes_nothing_for_the_client(
    shadow: str, kind: ErrorKind, status: int | None
) -> None:
    v1 = Recorder("v1", fixed(200, b'{"ok": true}'))
    services = {"default": ServiceConfig(prefixes=("/",), shadow_timeout=0.8)}
    async with run_server(v1) as u1, _shadow(shadow) as u2:
        async with proxy_stack(settings_for(u1, u2, services=services)) as stack, httpx.AsyncClient() as client:
            started = time.perf_counter()
            response = await client.get(f"{stack.url}/x")
            elapsed = time.perf_counter() - started
            [exchange] = await stack.sink.wait(1)
    assert response.status_code == 200 and response.content == b'{"ok": true}'
    assert elapsed < 0.5  # never waits for the shadow (the slow one takes 1.5 s, its timeout 0.8 s)
    assert exchange.shadow is not None
    assert exchange.shadow.error is kind and exchange.shadow.status == status
    assert exchange.primary.ok
    if kind is not ErrorKind.NONE:
        labels = {"service": "default", "kind": kind.value}
        assert sample(stack.metrics, "shadowdiff_shadow_errors_total", **labels) == 1


def _shadow(kind: str):  # type: ignore[no-untyped-def]
    if kind == "down":
        return _Fixed(down_url())
    if kind == "slow":
        return run_server(Recorder("v2", delay=1.5))
    if kind == "reset":
        return raw_server(reset_mid_body)
    if kind == "garbage":
        return raw_server(garbage)
    return run_server(Recorder("v2", fixed(500, b"boom")))


class _Fixed:
    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> str:
        return self.url

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(
    ("primary", "status", "code", "kind", "message"),
    [
        ("down", 502, "UPSTREAM_UNAVAILABLE", ErrorKind.CONNECT, "refused the connection"),
        ("slow", 504, "UPSTREAM_TIMEOUT", ErrorKind.TIMEOUT, "did not answer within 0.3 s"),
        ("reset", 502, "UPSTREAM_UNAVAILABLE", ErrorKind.RESET, "closed the connection"),
        ("garbage", 502, "UPSTREAM_UNAVAILABLE", ErrorKind.RESET, "invalid HTTP response"),
    ],
)
async def test_a_failing_primary_is_a_json_502_or_504(
    primary: str, status: int, code: str, kind: ErrorKind, message: str
) -> None:
    services = {"default": ServiceConfig(prefixes=("/",), primary_timeout=0.3)}
    async with _shadow(primary) as u1, run_server(Recorder("v2")) as u2:
        async with proxy_stack(settings_for(u1, u2, services=services)) as stack, httpx.AsyncClient() as client:
            response = await client.get(f"{stack.url}/x", headers={"x-request-id": "r1"})
            [exchange] = await stack.sink.wait(1)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["upstream"] == "v1"
    assert error["message"].startswith(f"primary upstream v1 ({u1})") and message in error["message"]
    assert response.headers["x-request-id"] == "r1"
    assert exchange.primary.error is kind and exchange.primary.status is None
    assert exchange.shadow is not None and exchange.shadow.ok  # the shadow still answered and is recorded
    assert sample(stack.metrics, "shadowdiff_requests_total", service="default", method="GET", status_class="5xx") == 1
    assert sample(stack.metrics, "shadowdiff_primary_errors_total", service="default", kind=kind.value) == 1


async def test_secondary_is_a_marked_copy_of_the_primarys_app() -> None:
    v1, v2, v1b = Recorder("v1"), Recorder("v2"), Recorder("v1-copy")
    async with run_server(v1) as u1, run_server(v2) as u2, run_server(v1b) as u3:
        async with proxy_stack(settings_for(u1, u2, secondary_url=u3)) as stack, httpx.AsyncClient() as client:
            await client.get(f"{stack.url}/api/products/9")
            [exchange] = await stack.sink.wait(1)
    assert exchange.secondary is not None
    assert exchange.secondary.role is Role.SECONDARY and exchange.secondary.app == "v1"
    assert orjson.loads(exchange.secondary.body)["app"] == "v1-copy"
    assert v1b.seen[0].headers["x-shadow-request"] == "1"


async def test_the_secondary_is_mirrored_to_whatever_the_primary_so_its_data_stays_in_step() -> None:
    # The secondary runs V1: with V2 primary it still gets every request (writes above all), so that after a rollback
    # it holds what V1 holds; noise is then measured between it and the shadow, the side that runs V1.
    promoted = {"default": ServiceConfig(prefixes=("/",), primary="v2")}
    v1b = Recorder("v1-copy")
    async with run_server(Recorder("v1")) as u1, run_server(Recorder("v2")) as u2, run_server(v1b) as u3:
        settings = settings_for(u1, u2, secondary_url=u3, services=promoted)
        async with proxy_stack(settings) as stack, httpx.AsyncClient() as client:
            await client.patch(f"{stack.url}/api/products/9", json={"stock": 3})
            [exchange] = await stack.sink.wait(1)
    assert exchange.primary.app == "v2" and exchange.shadow is not None and exchange.shadow.app == "v1"
    assert exchange.secondary is not None and exchange.secondary.app == "v1"
    assert [(s.method, s.path, s.body) for s in v1b.seen] == [("PATCH", "/api/products/9", b'{"stock":3}')]


async def test_methods_not_mirrored_and_mirror_off_are_skipped() -> None:
    services = {
        "reads": ServiceConfig(prefixes=("/reads",), methods=("GET",)),
        "quiet": ServiceConfig(prefixes=("/quiet",), mirror=False),
    }
    v2 = Recorder("v2")
    async with run_server(Recorder("v1")) as u1, run_server(v2) as u2:
        async with proxy_stack(settings_for(u1, u2, services=services)) as stack, httpx.AsyncClient() as client:
            await client.post(f"{stack.url}/reads/1", content=b"x")
            await client.get(f"{stack.url}/quiet/1")
            await client.get(f"{stack.url}/reads/1")
            exchanges = await stack.sink.wait(3)
    assert [e.skip_reason for e in exchanges] == ["method", "mirror_off", None]
    assert [s.method for s in v2.seen] == ["GET"]


async def test_sampling_rate_zero_and_consistent_by_header() -> None:
    services = {
        "none": ServiceConfig(prefixes=("/none",), sample_rate=0.0),
        "half": ServiceConfig(prefixes=("/half",), sample_rate=0.5, sample_key_header="X-User"),
    }
    v2 = Recorder("v2")
    async with run_server(Recorder("v1")) as u1, run_server(v2) as u2:
        async with proxy_stack(settings_for(u1, u2, services=services)) as stack, httpx.AsyncClient() as client:
            for _ in range(5):
                await client.get(f"{stack.url}/none/1")
            users = [f"user-{n}" for n in range(20)]
            for _ in range(2):
                for user in users:
                    await client.get(f"{stack.url}/half/1", headers={"x-user": user})
            await stack.sink.wait(45)
    mirrored = [s.headers["x-user"] for s in v2.seen]
    assert not any(s.path.startswith("/none") for s in v2.seen)
    assert 0 < len(set(mirrored)) < 20
    assert all(mirrored.count(user) == 2 for user in set(mirrored))  # a user is always in or always out
    skipped = [e for e in stack.sink.exchanges if e.skip_reason == "sampled_out"]
    assert len(skipped) == 5 + 2 * (20 - len(set(mirrored)))


async def test_a_request_body_too_large_goes_to_the_primary_only() -> None:
    v1, v2 = Recorder("v1"), Recorder("v2")
    big = b"x" * 5000
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = settings_for(u1, u2, max_request_body=1000)
        async with proxy_stack(settings) as stack, httpx.AsyncClient() as client:
            response = await client.post(f"{stack.url}/api/orders", content=big)
            chunked_body = await client.post(f"{stack.url}/api/orders", content=_chunks(big))
            small = await client.post(f"{stack.url}/api/orders", content=b"small")
            exchanges = await stack.sink.wait(3)
    assert response.status_code == chunked_body.status_code == small.status_code == 200
    assert v1.seen[0].body == big and v1.seen[1].body == big
    assert [s.body for s in v2.seen] == [b"small"]
    assert [e.skip_reason for e in exchanges] == ["request_too_large", "request_too_large", None]
    assert exchanges[0].request.body_truncated and len(exchanges[0].request.body) == 1000
    assert sample(stack.metrics, "shadowdiff_skipped_total", service="orders", reason="request_too_large") == 2


async def _chunks(body: bytes):  # type: ignore[no-untyped-def]
    for start in range(0, len(body), 700):
        yield body[start : start + 700]


async def test_a_response_too_large_is_streamed_and_not_compared() -> None:
    big = bytes(range(256)) * 40  # 10 KB
    v1 = Recorder("v1", fixed(200, big, [(b"content-type", b"application/octet-stream")]))
    v2 = Recorder("v2", chunked([big[:6000], big[6000:]]))
    async with run_server(v1) as u1, run_server(v2) as u2:
        async with proxy_stack(settings_for(u1, u2, max_response_body=1000)) as stack, httpx.AsyncClient() as client:
            response = await client.get(f"{stack.url}/api/products/1")
            [exchange] = await stack.sink.wait(1)
    assert response.content == big and response.headers["content-length"] == str(len(big))
    assert exchange.primary.body_truncated and exchange.shadow is not None and exchange.shadow.body_truncated
    assert exchange.shadow.body == b""
    assert sample(stack.metrics, "shadowdiff_response_too_large_total", service="products", role="primary") == 1
    assert sample(stack.metrics, "shadowdiff_response_too_large_total", service="products", role="shadow") == 1


async def test_a_full_sink_drops_and_counts() -> None:
    async with run_server(Recorder("v1")) as u1, run_server(Recorder("v2")) as u2:
        sink = ListSink(accept=False)
        async with proxy_stack(settings_for(u1, u2), sink=sink) as stack, httpx.AsyncClient() as client:
            responses = [await client.get(f"{stack.url}/x") for _ in range(3)]
            await asyncio.sleep(0.1)
    assert all(r.status_code == 200 for r in responses)
    assert sample(stack.metrics, "shadowdiff_dropped_total", reason="queue_full") == 3


async def test_a_stalled_shadow_never_exceeds_the_cap_nor_slows_the_client() -> None:
    stalled = Recorder("v2", delay=5.0)
    services = {"default": ServiceConfig(prefixes=("/",), shadow_timeout=1.0)}
    async with run_server(Recorder("v1")) as u1, run_server(stalled) as u2:
        settings = settings_for(u1, u2, services=services, max_inflight_shadow=4, drain_seconds=0.1)
        async with proxy_stack(settings) as stack, httpx.AsyncClient() as client:
            latencies = []
            for _ in range(40):
                started = time.perf_counter()
                response = await client.get(f"{stack.url}/x")
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
            mirror = stack.proxy.mirror
            assert mirror.inflight == 4 and mirror.max_seen == 4
            assert sample(stack.metrics, "shadowdiff_shadow_inflight") == 4
            assert sample(stack.metrics, "shadowdiff_dropped_total", reason="inflight_cap") == 36
            dropped = [e for e in stack.sink.exchanges if e.shadow is not None and e.shadow.error is ErrorKind.DROPPED]
            assert len(dropped) == 36
            assert mirror.tasks == 4  # nothing else is held while the shadow is stalled
        stalled.release()
    assert sorted(latencies)[len(latencies) // 2] < 0.05
    assert max(latencies) < 0.5


async def test_shutdown_drains_in_flight_shadows() -> None:
    slowish = Recorder("v2", delay=0.3)
    async with run_server(Recorder("v1")) as u1, run_server(slowish) as u2:
        async with proxy_stack(settings_for(u1, u2, drain_seconds=2.0)) as stack, httpx.AsyncClient() as client:
            await client.get(f"{stack.url}/x")
            assert stack.sink.exchanges == []
        # The proxy's server has shut down: its lifespan waited for the shadow.
    [exchange] = stack.sink.exchanges
    assert exchange.shadow is not None and exchange.shadow.ok


async def test_shutdown_cancels_shadows_past_the_drain_time() -> None:
    stalled = Recorder("v2", delay=3.0)
    async with run_server(Recorder("v1")) as u1, run_server(stalled) as u2:
        settings = settings_for(u1, u2, drain_seconds=0.1)
        started = time.perf_counter()
        async with proxy_stack(settings) as stack, httpx.AsyncClient() as client:
            await client.get(f"{stack.url}/x")
            await stalled.arrived.wait()
        elapsed = time.perf_counter() - started
        stalled.release()
    assert elapsed < 2.0
    assert stack.proxy.mirror.tasks == 0 and stack.proxy.mirror.inflight == 0


async def test_tune_gc_freezes_start_up_objects_while_the_app_runs() -> None:
    before = gc.get_threshold()
    async with run_server(Recorder("v1")) as u1, run_server(Recorder("v2")) as u2:
        async with proxy_stack(settings_for(u1, u2), tune_gc=True) as stack, httpx.AsyncClient() as client:
            assert (await client.get(f"{stack.url}/x")).status_code == 200
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold()[0] >= 20_000
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


async def test_a_primary_failing_mid_stream_cuts_the_client_and_is_recorded() -> None:
    async def promise_more(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    async with raw_server(promise_more) as u1, run_server(Recorder("v2")) as u2:
        settings = settings_for(u1, u2, max_response_body=1000)
        async with proxy_stack(settings) as stack, httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"{stack.url}/x")
            [exchange] = await stack.sink.wait(1)
    assert exchange.primary.status == 200 and exchange.primary.error is ErrorKind.RESET
    assert exchange.primary.body_truncated


async def test_head_keeps_the_upstreams_length_and_sends_no_body() -> None:
    async def head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(head) as u1, proxy_stack(settings_for(u1, down_url())) as stack:
        async with httpx.AsyncClient() as client:
            response = await client.head(f"{stack.url}/x")
    assert response.status_code == 200 and response.headers["content-length"] == "1234" and response.content == b""
