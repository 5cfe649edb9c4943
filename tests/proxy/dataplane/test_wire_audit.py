"""The HTTP/1.1 audit's defects (issue 10), each replayed with its exact bytes through raw sockets.

A raw client writes the bytes the audit wrote; raw upstreams record what the proxy sent them and answer with the
audit's bytes. Every test runs on uvloop (production's loop) and on stdlib asyncio. Each is named after the
defect's number in the issue.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from prometheus_client import CollectorRegistry

from diffs.exchange import ErrorKind
from proxy.config import ServiceConfig, Settings
from proxy.dataplane.app import create_proxy_app
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.routing import StaticPrimaries
from tests.proxy.upstreams import ListSink, Stack, proxy_stack, sample, settings_for
from tests.proxy.wire import Link, RawClient, RawUpstream, Received, answer, exchange, ok, wait_for

pytestmark = pytest.mark.both_loops


@contextlib.asynccontextmanager
async def through_proxy(
    primary: RawUpstream, shadow: RawUpstream | None = None, **overrides: object
) -> AsyncIterator[Stack]:
    shadow = shadow or RawUpstream()
    async with primary, shadow:
        async with proxy_stack(settings_for(primary.url, shadow.url, **overrides)) as stack:
            yield stack


# 1. A body between 256 KiB and 1 MiB hung until the timeout on uvloop (reading paused, never resumed).


async def test_01_a_710_kib_body_never_hangs() -> None:
    body = bytes(range(256)) * (710 * 4)  # 710 KiB
    services = {"default": ServiceConfig(prefixes=("/",), primary_timeout=5.0, shadow_timeout=5.0)}
    v1, v2 = RawUpstream(answer(ok(body))), RawUpstream(answer(ok(body)))
    async with through_proxy(v1, v2, services=services) as stack:
        async with RawClient.connect(stack.url) as client:
            for _ in range(4):
                await client.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
                reply = await client.read_reply(timeout=4.0)
                assert reply.status == 200 and reply.body == body
        exchanges = await stack.sink.wait(4)
    for recorded in exchanges:
        assert recorded.shadow is not None and recorded.shadow.error is ErrorKind.NONE, recorded.shadow
        assert recorded.shadow.body == body and recorded.primary.body == body


# 2. Request trailers became request headers, and a trailer X-Shadow-Request suppressed the mirror.

TRAILERS_REQUEST = (
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
    b"Authorization: Bearer injected\r\nX-Forwarded-Host: evil.example\r\nX-Shadow-Request: 1\r\n\r\n"
)


async def test_02_request_trailers_never_become_headers() -> None:
    v1, v2 = RawUpstream(), RawUpstream()
    async with through_proxy(v1, v2) as stack:
        reply = await exchange(stack.url, TRAILERS_REQUEST)
        [primary] = await v1.wait_requests(1)
        [mirrored] = await v2.wait_requests(1)
        [recorded] = await stack.sink.wait(1)
    assert reply.status == 200
    for request in (primary, mirrored):
        assert request.body == b"hello"
        assert request.header("authorization") == []
        assert request.header("x-forwarded-host") == ["a"]
        assert request.trailers == []
    assert primary.header("x-shadow-request") == [] and mirrored.header("x-shadow-request") == ["1"]
    assert recorded.skip_reason is None and recorded.shadow is not None
    assert "authorization" not in dict(recorded.request.headers)


# 3. Response trailers were merged into the response head.


async def test_03_response_trailers_never_reach_the_client_as_headers() -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie, Location\r\n\r\n"
        b"5\r\nhello\r\n0\r\nSet-Cookie: injected=1\r\nLocation: http://evil.example/\r\n\r\n"
    )
    async with through_proxy(RawUpstream(answer(response))) as stack:
        reply = await exchange(stack.url, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        [recorded] = await stack.sink.wait(1)
    assert reply.status == 200 and reply.body == b"hello"
    assert reply.header("set-cookie") == [] and reply.header("location") == []
    assert "location" not in dict(recorded.primary.headers)


# 4. A 101 to a plain GET was relayed, and the "upgraded" connection went back to the pool: the next client got
#    bytes meant for nobody and its request never reached the upstream.

SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\nBYTES-FROM-OTHER-CLIENT"
)


async def test_04_a_101_is_refused_and_its_connection_never_reused() -> None:
    async def script(request: Received, link: Link) -> bytes:
        return SWITCHED if request.target == "/first" else ok(b"second")

    v1 = RawUpstream(script)
    async with through_proxy(v1) as stack:
        first = await exchange(stack.url, b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        second = await exchange(stack.url, b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
    assert first.status == 502
    assert second.status == 200 and second.body == b"second"
    assert [r.target for r in v1.requests] == ["/first", "/second"]
    assert [len(link.requests) for link in v1.links] == [1, 1]


async def test_04_a_client_upgrade_is_served_as_plain_http_and_never_tunnelled() -> None:
    v1, v2 = RawUpstream(), RawUpstream()
    request = (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    )
    request += b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    async with through_proxy(v1, v2) as stack:
        async with RawClient.connect(stack.url) as client:
            await client.send(request)
            reply = await client.read_reply()
            assert await client.closed_by_peer(2.0)
        [forwarded] = await v1.wait_requests(1)
        [recorded] = await stack.sink.wait(1)
    assert reply.status == 200 and reply.body == b"ok"
    assert forwarded.header("upgrade") == [] and forwarded.header("connection") == []
    assert v2.links == [] and recorded.skip_reason == "upgrade"  # not mirrored


# 5. A text/event-stream primary was buffered for 30 s, then answered 504.


async def test_05_events_reach_the_client_as_they_are_sent() -> None:
    delivered = [asyncio.Event() for _ in range(4)]

    async def events(request: Received, link: Link) -> None:
        link.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for n, seen in enumerate(delivered):
            event = b"data: %d\n\n" % n
            link.write(b"%x\r\n%s\r\n" % (len(event), event))
            # The next event only once the client has this one: a proxy that buffers never gets there.
            async with asyncio.timeout(3):
                await seen.wait()
            await asyncio.sleep(0.25)
        link.write(b"0\r\n\r\n")
        return None

    # The primary's timeout bounds the wait for the head (and each silence), not the stream: 4 events 0.25 s apart
    # outlive its 0.5 s.
    services = {"default": ServiceConfig(prefixes=("/",), primary_timeout=0.5)}
    async with through_proxy(RawUpstream(events), services=services) as stack:
        async with RawClient.connect(stack.url) as client:
            await client.send(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
            received = b""
            for n, seen in enumerate(delivered):
                received += await read_until(client, b"data: %d\n\n" % n)
                seen.set()
            received += await read_until(client, b"0\r\n\r\n")
        [recorded] = await stack.sink.wait(1)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert recorded.primary.error is ErrorKind.NONE
    assert recorded.primary.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n"
    assert recorded.primary.latency_ms > 500


async def read_until(client: RawClient, marker: bytes, timeout: float = 3.0) -> bytes:
    received = b""
    async with asyncio.timeout(timeout):
        while marker not in received:
            data = await client.reader.read(65536)
            if not data:
                raise ConnectionError(f"closed before {marker!r}; got {received!r}")
            received += data
    return received


# 6. A client that read 2 MB of an endless body and went away left the proxy draining the primary for ever.


async def test_06_a_client_that_goes_away_cancels_the_upstream_read() -> None:
    written = 0

    async def endless(request: Received, link: Link) -> None:
        nonlocal written
        link.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        with contextlib.suppress(ConnectionError):
            while not link.closed.is_set():
                link.write(chunk)
                written += 65536
                await link.writer.drain()
        link.closed.set()
        return None

    v1 = RawUpstream(endless)
    async with through_proxy(v1) as stack:
        async with RawClient.connect(stack.url) as client:
            await client.send(b"GET /endless HTTP/1.1\r\nHost: a\r\n\r\n")
            got = 0
            while got < 2_000_000:
                got += len(await client.reader.read(65536))
        # The client is gone: the proxy must close its connection to the primary.
        async with asyncio.timeout(3):
            await v1.links[0].closed.wait()
        await stack.sink.wait(1)
    assert written < 64 * 1024 * 1024


async def test_06_a_client_that_goes_away_before_the_head_cancels_the_primary_request() -> None:
    closed_early: list[bool] = []

    async def slow(request: Received, link: Link) -> bytes | None:
        # Never answers; records whether the proxy closed the connection while it waited for the head.
        closed_early.append(await link.wait_closed_by_peer(3.0))
        return None

    v1 = RawUpstream(slow)
    async with through_proxy(v1) as stack:
        async with RawClient.connect(stack.url) as client:
            await client.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            await v1.wait_requests(1)
        await wait_for(lambda: bool(closed_early), 5.0)
        await asyncio.sleep(0.05)
    assert closed_early == [True]
    assert sample(stack.metrics, "shadowdiff_dropped_total", reason="primary_cancelled") == 1


# 7. No header, idle or slowloris timeout.


@pytest.mark.parametrize(
    "sent",
    [b"", b"GE", b"GET / HTTP/1.1\r\nHost: a\r\n"],
    ids=["idle", "partial request line", "partial head"],
)
async def test_07_an_incomplete_head_is_cut_at_the_header_timeout(sent: bytes) -> None:
    async with through_proxy(RawUpstream(), header_timeout_seconds=0.5) as stack:
        async with RawClient.connect(stack.url) as client:
            await client.send(sent)
            assert await client.closed_by_peer(3.0)


async def test_07_a_slowloris_head_is_cut_at_the_header_timeout() -> None:
    async with through_proxy(RawUpstream(), header_timeout_seconds=1.0) as stack:
        async with RawClient.connect(stack.url) as client:
            await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
            started = time.monotonic()
            with contextlib.suppress(ConnectionError):
                for n in range(30):  # a header line every 0.2 s never completes the head
                    await asyncio.sleep(0.2)
                    await client.send(b"X-%d: 1\r\n" % n)
                    if client.reader.at_eof():
                        break
            assert await client.closed_by_peer(3.0)
            assert time.monotonic() - started < 5.0


async def test_07_an_idle_keep_alive_connection_is_closed() -> None:
    async with through_proxy(RawUpstream(), client_keepalive_seconds=0.5) as stack:
        async with RawClient.connect(stack.url) as client:
            await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await client.read_reply()).status == 200
            assert await client.closed_by_peer(3.0)


# 8. A shadow answering "100 Continue" without end stalled every client.


async def test_08_an_endless_stream_of_interim_responses_is_cut() -> None:
    async def interim(request: Received, link: Link) -> None:
        with contextlib.suppress(ConnectionError):
            while not link.closed.is_set():
                link.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 64)
                await link.writer.drain()
                await asyncio.sleep(0)
        return None

    services = {"default": ServiceConfig(prefixes=("/",), shadow_timeout=30.0)}
    v2 = RawUpstream(interim)
    async with through_proxy(RawUpstream(), v2, services=services) as stack:
        reply = await exchange(stack.url, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        async with asyncio.timeout(3):
            await v2.wait_requests(1)
            await v2.links[0].closed.wait()
        [recorded] = await stack.sink.wait(1, timeout=3)
    assert reply.status == 200
    assert recorded.shadow is not None and recorded.shadow.error is ErrorKind.RESET


# 9. A single 20 MB header was forwarded to both upstreams.


async def test_09_a_20_mb_header_is_refused_with_431() -> None:
    v1, v2 = RawUpstream(), RawUpstream()
    async with through_proxy(v1, v2) as stack:
        async with RawClient.connect(stack.url) as client:

            async def send_all() -> None:
                with contextlib.suppress(ConnectionError):
                    await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000_000 + b"\r\n\r\n")

            sender = asyncio.get_running_loop().create_task(send_all())
            try:
                reply = await client.read_reply(timeout=5)
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        await asyncio.sleep(0.1)
    assert reply.status == 431
    assert v1.links == [] and v2.links == []


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n", 431),
    ],
    ids=["request line", "header line", "header count"],
)
async def test_09_heads_beyond_each_limit_are_refused(head: bytes, status: int) -> None:
    v1 = RawUpstream()
    async with through_proxy(v1) as stack:
        reply = await exchange(stack.url, head)
    assert reply.status == status and v1.links == []


# 10. A 304 with Content-Length: 1234 killed the client's connection with a traceback.


async def test_10_a_304_with_a_length_keeps_the_connection_alive() -> None:
    not_modified = b'HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "v1"\r\n\r\n'
    async with through_proxy(RawUpstream(answer(not_modified))) as stack:
        async with RawClient.connect(stack.url) as client:
            for _ in range(2):
                await client.send(b'GET /x HTTP/1.1\r\nHost: a\r\nIf-None-Match: "v1"\r\n\r\n')
                reply = await client.read_reply()
                assert reply.status == 304 and reply.body == b"" and reply.header("etag") == ['"v1"']


# 11. A status outside 100-599 left the client with an empty reply.


@pytest.mark.parametrize("status", [b"999", b"600", b"099"])
async def test_11_a_status_outside_100_to_599_is_a_502(status: bytes) -> None:
    response = b"HTTP/1.1 " + status + b" Odd\r\nContent-Length: 2\r\n\r\nok"
    async with through_proxy(RawUpstream(answer(response))) as stack:
        reply = await exchange(stack.url, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        [recorded] = await stack.sink.wait(1)
    assert reply.status == 502
    assert recorded.primary.error is ErrorKind.RESET


# 12. POSTs written into connections the upstream was closing (stale keep-alive) failed with 502.


def closes_when_idle(idle: float, *headers: bytes) -> RawUpstream:
    """An upstream that closes a connection idle for `idle` seconds just as the next request arrives on it: the
    worst case of the race between its idle close and the proxy's reuse."""
    last: dict[int, float] = {}

    async def script(request: Received, link: Link) -> bytes | None:
        now = time.monotonic()
        previous = last.get(id(link))
        if previous is not None and now - previous >= idle:
            link.writer.transport.abort()
            return None
        last[id(link)] = now
        return ok(request.body, *headers)

    return RawUpstream(script)


async def test_12_keep_alive_timeout_is_learned_and_posts_are_never_sent_twice() -> None:
    v1 = closes_when_idle(1.0, b"Keep-Alive: timeout=1")
    async with through_proxy(v1, upstream_keepalive_seconds=30.0) as stack:
        async with RawClient.connect(stack.url) as client:
            for n in range(4):
                body = b"order-%d" % n
                await client.send(
                    b"POST /api/orders HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                reply = await client.read_reply()
                assert reply.status == 200 and reply.body == body, n
                await asyncio.sleep(1.05)
    bodies = [r.body for r in v1.requests]
    assert bodies == sorted(set(bodies))  # each POST reached the upstream exactly once


async def test_12_idle_connections_close_before_the_upstream_closes_them() -> None:
    v1 = closes_when_idle(0.5)
    async with through_proxy(v1, upstream_keepalive_seconds=0.3) as stack:
        for n in range(5):
            body = b"order-%d" % n
            request = b"POST /api/orders HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            reply = await exchange(stack.url, request)
            assert reply.status == 200, n
            await asyncio.sleep(0.55)
    assert [r.body for r in v1.requests] == [b"order-%d" % n for n in range(5)]


def test_12_the_default_upstream_keepalive_is_below_uvicorns_five_seconds() -> None:
    assert Settings().upstream_keepalive_seconds < 5.0


# 14. No TCP_NODELAY on stdlib asyncio: each response waited for the peer's delayed ACK.


async def test_14_connections_accepted_by_the_server_have_tcp_nodelay() -> None:
    from proxy.runtime.server import bind, listener

    v1 = RawUpstream()
    async with v1:
        settings = settings_for(v1.url, v1.url)
        sock = bind("127.0.0.1", 0)
        assert sock.proto == socket.IPPROTO_TCP
        server = listener(
            create_proxy_app(
                settings,
                primaries=StaticPrimaries(settings.services),
                sink=ListSink(),
                metrics=ProxyMetrics(CollectorRegistry()),
            ),
            settings,
        )
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        try:
            await wait_for(lambda: server.started)
            host, port = sock.getsockname()
            async with RawClient.connect(f"http://{host}:{port}") as client:
                await client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                assert (await client.read_reply()).status == 200
                accepted = [p.transport.get_extra_info("socket") for p in server.server_state.connections]
                assert accepted
                assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in accepted)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 5)
            sock.close()


# 15. An id from the shadow's JSON with CR/LF went into the shadow's request line and injected header lines.


async def test_15_an_unsafe_correlated_id_skips_the_mirror_and_never_reaches_the_wire() -> None:
    async def primary(request: Received, link: Link) -> bytes:
        return ok(orjson.dumps({"id": 7}), b"Content-Type: application/json")

    async def shadow(request: Received, link: Link) -> bytes:
        return ok(orjson.dumps({"id": "1007\r\nX-Injected: yes"}), b"Content-Type: application/json")

    v1, v2 = RawUpstream(primary), RawUpstream(shadow)
    correlator = IdCorrelator(100)
    async with v1, v2:
        settings = settings_for(v1.url, v2.url)
        async with proxy_stack(settings, correlator=correlator) as stack:
            create = (
                b"POST /api/orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            )
            assert (await exchange(stack.url, create)).status == 200
            await stack.sink.wait(1)
            read = await exchange(stack.url, b"GET /api/orders/7 HTTP/1.1\r\nHost: a\r\n\r\n")
            exchanges = await stack.sink.wait(2)
            await asyncio.sleep(0.1)
    assert read.status == 200
    assert [r.target for r in v2.requests] == ["/api/orders"]  # the read was never sent to the shadow
    assert b"X-Injected" not in bytes(b"".join(link.raw for link in v2.links))
    assert exchanges[1].skip_reason == "unsafe_rewrite"
    assert sample(stack.metrics, "shadowdiff_skipped_total", service="orders", reason="unsafe_rewrite") == 1


# 16. Location and Link named the upstream's host:port, so a client following them bypassed the proxy.


async def test_16_location_content_location_and_link_point_back_at_the_proxy() -> None:
    async def script(request: Received, link: Link) -> bytes:
        base = f"http://{dict(request.headers)['host']}".encode()
        return (
            b"HTTP/1.1 201 Created\r\nLocation: " + base + b"/api/orders/7\r\n"
            b"Content-Location: " + base + b"/api/orders/7?v=1\r\n"
            b"Link: <" + base + b"/api/orders?page=2>; rel=next, <https://docs.example/orders>; rel=help\r\n"
            b"Content-Length: 0\r\n\r\n"
        )

    async with through_proxy(RawUpstream(script)) as stack:
        reply = await exchange(
            stack.url, b"POST /api/orders HTTP/1.1\r\nHost: shop.example:8443\r\nContent-Length: 0\r\n\r\n"
        )
    assert reply.header("location") == ["http://shop.example:8443/api/orders/7"]
    assert reply.header("content-location") == ["http://shop.example:8443/api/orders/7?v=1"]
    assert reply.header("link") == [
        "<http://shop.example:8443/api/orders?page=2>; rel=next, <https://docs.example/orders>; rel=help"
    ]


# 17. Smaller: Host, X-Forwarded-*, Transfer-Encoding codings, dot-segments in routed paths.


@pytest.mark.parametrize(
    "head",
    [b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"],
    ids=["duplicate", "missing"],
)
async def test_17_a_duplicate_or_missing_host_is_a_400(head: bytes) -> None:
    v1 = RawUpstream()
    async with through_proxy(v1) as stack:
        reply = await exchange(stack.url, head)
    assert reply.status == 400 and v1.links == []


@pytest.mark.parametrize("trust", [False, True])
async def test_17_connection_cannot_remove_the_proxys_forwarded_headers(trust: bool) -> None:
    v1 = RawUpstream()
    request = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nConnection: X-Forwarded-Proto\r\n\r\n"
    async with through_proxy(v1, trust_forwarded=trust) as stack:
        await exchange(stack.url, request)
    [forwarded] = v1.requests
    assert forwarded.header("x-forwarded-proto") == ["http"] and forwarded.header("x-forwarded-host") == ["a"]


SPOOFED = (
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
    b"X-Forwarded-Host: evil.example\r\nForwarded: for=6.6.6.6;proto=https;host=evil.example\r\n\r\n"
)


@pytest.mark.parametrize("trust", [False, True])
async def test_17_forwarded_headers_are_the_proxys_own_unless_trusted(trust: bool) -> None:
    v1 = RawUpstream()
    async with through_proxy(v1, trust_forwarded=trust) as stack:
        await exchange(stack.url, SPOOFED)
    [request] = v1.requests
    if trust:
        assert request.header("x-forwarded-for") == ["6.6.6.6, 127.0.0.1"]
        assert request.header("x-forwarded-proto") == ["https"]
        assert request.header("x-forwarded-host") == ["evil.example"]
        assert request.header("forwarded") == [
            'for=6.6.6.6;proto=https;host=evil.example, for=127.0.0.1;host="a";proto=http'
        ]
    else:
        assert request.header("x-forwarded-for") == ["127.0.0.1"]
        assert request.header("x-forwarded-proto") == ["http"]
        assert request.header("x-forwarded-host") == ["a"]
        assert request.header("forwarded") == ['for=127.0.0.1;host="a";proto=http']


async def test_17_transfer_coding_other_than_chunked_is_a_501() -> None:
    v1 = RawUpstream()
    request = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    async with through_proxy(v1) as stack:
        reply = await exchange(stack.url, request)
    assert reply.status == 501 and v1.links == []


class Primaries:
    def primary(self, service: str) -> str:
        return "v2" if service == "orders" else "v1"


async def test_17_routing_uses_the_path_with_dot_segments_resolved() -> None:
    v1, v2 = RawUpstream(answer(ok(b"v1"))), RawUpstream(answer(ok(b"v2")))
    async with v1, v2:
        async with proxy_stack(settings_for(v1.url, v2.url), primaries=Primaries()) as stack:
            reply = await exchange(stack.url, b"GET /api/products/../orders/1 HTTP/1.1\r\nHost: a\r\n\r\n")
            [recorded] = await stack.sink.wait(1)
    assert reply.body == b"v2" and recorded.service == "orders"
