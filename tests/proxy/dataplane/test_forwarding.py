"""proxy.dataplane.forwarding against real upstreams on 127.0.0.1: bytes through untouched, failures mapped to kinds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from diffs.exchange import ErrorKind
from proxy.dataplane.forwarding import UnsafeRequest, Upstream, _Deadline, error_kind
from proxy.errors import UpstreamTimeout, UpstreamUnavailable
from tests.proxy.upstreams import (
    GZIP_BODY,
    Recorder,
    chunked,
    down_url,
    fixed,
    garbage,
    gzipped,
    raw_server,
    reset_mid_body,
)
from tests.servers import run_server


@pytest.fixture
async def opened() -> AsyncIterator[list[Upstream]]:
    """Upstreams created by a test, closed after it (unclosed connections fail the test)."""
    made: list[Upstream] = []
    yield made
    for upstream in made:
        await upstream.aclose()


async def make(opened: list[Upstream], url: str) -> Upstream:
    upstream = Upstream("v1", url)
    await upstream.open()
    opened.append(upstream)
    return upstream


async def send(upstream: Upstream, target: str = "/x", *, method: str = "GET", **kwargs: object):  # type: ignore[no-untyped-def]
    options = {"timeout": 1.0, "max_body": 1_000_000, "stream": False, **kwargs}
    headers = options.pop("headers", [])
    body = options.pop("body", None)
    return await upstream.send(method, target, headers, body, **options)  # type: ignore[arg-type]


async def test_gzip_body_and_headers_pass_through_untouched(opened: list[Upstream]) -> None:
    async with run_server(Recorder("v1", gzipped())) as url:
        answer = await send(await make(opened, url))
    assert answer.body == GZIP_BODY  # not decompressed
    headers = [(k.lower(), v) for k, v in answer.headers]
    assert (b"content-encoding", b"gzip") in headers
    assert (b"content-length", str(len(GZIP_BODY)).encode()) in headers
    assert [v for k, v in headers if k == b"x-custom"] == [b"kept", b"twice"]


async def test_only_the_clients_headers_are_sent(opened: list[Upstream]) -> None:
    recorder = Recorder("v1")
    async with run_server(recorder) as url:
        await send(await make(opened, url), method="POST", body=b"{}", headers=[("x-a", "1")])
    seen = recorder.seen[0].headers
    assert "user-agent" not in seen
    assert "accept" not in seen
    assert "accept-encoding" not in seen
    assert "content-type" not in seen
    assert seen["x-a"] == "1"
    assert seen["content-length"] == "2"


async def test_raw_path_and_query_are_not_reencoded(opened: list[Upstream]) -> None:
    recorder = Recorder("v1")
    async with run_server(recorder) as url:
        await send(await make(opened, url), "/a%2Fb/c%20d?q=x%26y&z")
    assert recorder.seen[0].path == "/a%2Fb/c%20d"
    assert recorder.seen[0].query == "q=x%26y&z"


async def test_redirects_are_returned_not_followed(opened: list[Upstream]) -> None:
    async with run_server(Recorder("v1", fixed(302, b"", [(b"location", b"/elsewhere")]))) as url:
        answer = await send(await make(opened, url))
    assert answer.status == 302


async def test_cookies_from_one_response_never_reach_the_next_request(opened: list[Upstream]) -> None:
    recorder = Recorder("v1", fixed(200, b"{}", [(b"set-cookie", b"session=secret; Path=/")]))
    async with run_server(recorder) as url:
        upstream = await make(opened, url)
        await send(upstream)
        await send(upstream)
    assert "cookie" not in recorder.seen[1].headers


async def test_a_large_body_is_truncated_when_not_streamed(opened: list[Upstream]) -> None:
    async with run_server(Recorder("v1", fixed(200, b"x" * 5000))) as url:
        answer = await send(await make(opened, url), max_body=1000)
    assert answer.truncated and answer.body == b"" and answer.rest is None


async def test_a_large_chunked_body_is_streamed_whole(opened: list[Upstream]) -> None:
    parts = [b"a" * 700, b"b" * 700, b"c" * 700]
    async with run_server(Recorder("v1", chunked(parts))) as url:
        answer = await send(await make(opened, url), max_body=1000, stream=True)
        assert answer.truncated and answer.rest is not None
        rest = b"".join([chunk async for chunk in answer.rest])
        await answer.rest.aclose()
    assert answer.body + rest == b"".join(parts)


async def test_a_small_chunked_body_is_buffered(opened: list[Upstream]) -> None:
    async with run_server(Recorder("v1", chunked([b"ab", b"cd"]))) as url:
        answer = await send(await make(opened, url), max_body=1000, stream=True)
    assert answer.body == b"abcd" and not answer.truncated and answer.rest is None


async def test_refused_connection_is_connect(opened: list[Upstream]) -> None:
    url = down_url()
    with pytest.raises(UpstreamUnavailable) as caught:
        await send(await make(opened, url))
    assert error_kind(caught.value) is ErrorKind.CONNECT
    assert str(caught.value) == f"v1 ({url}) refused the connection"


async def test_slow_upstream_is_timeout(opened: list[Upstream]) -> None:
    async with run_server(Recorder("v1", delay=1.0)) as url:
        upstream = await make(opened, url)
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimeout) as caught:
            await send(upstream, timeout=0.2)
        assert asyncio.get_running_loop().time() - started < 0.6
    assert error_kind(caught.value) is ErrorKind.TIMEOUT
    assert "did not answer within 0.2 s" in str(caught.value)


async def test_reset_mid_body_is_reset(opened: list[Upstream]) -> None:
    async with raw_server(reset_mid_body) as url:
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(await make(opened, url))
    assert error_kind(caught.value) is ErrorKind.RESET


async def test_garbage_instead_of_http_is_reset(opened: list[Upstream]) -> None:
    async with raw_server(garbage) as url:
        with pytest.raises(UpstreamUnavailable) as caught:
            await send(await make(opened, url))
    assert error_kind(caught.value) is ErrorKind.RESET
    assert "invalid HTTP response" in str(caught.value)


async def test_connections_are_reused(opened: list[Upstream]) -> None:
    ports: set[int] = set()

    class Peer(Recorder):
        async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                ports.add(scope["client"][1])
            await super().__call__(scope, receive, send)

    async with run_server(Peer("v1")) as url:
        upstream = await make(opened, url)
        for _ in range(5):
            await send(upstream)
    assert len(ports) == 1


async def test_idle_connections_are_closed_before_the_upstream_would(opened: list[Upstream]) -> None:
    ports: list[int] = []

    class Peer(Recorder):
        async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                ports.append(scope["client"][1])
            await super().__call__(scope, receive, send)

    async with run_server(Peer("v1"), timeout_keep_alive=5) as url:
        upstream = Upstream("v1", url, keepalive=0.2)
        await upstream.open()
        opened.append(upstream)
        await send(upstream)
        await send(upstream)
        await asyncio.sleep(0.5)
        await send(upstream)
    assert ports[0] == ports[1] != ports[2]


async def test_send_before_open_is_a_programmer_error() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await send(Upstream("v1", "http://127.0.0.1:1"))


async def _head_then_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(head)
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(body)
    await writer.drain()


async def test_without_wait_body_a_body_of_unknown_length_is_handed_over_as_it_comes(opened: list[Upstream]) -> None:
    async def events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        await _head_then_body(reader, writer, head, b"6\r\nsecond\r\n0\r\n\r\n")

    async with raw_server(events) as url:
        upstream = await make(opened, url)
        started = asyncio.get_running_loop().time()
        answer = await send(upstream, stream=True, wait_body=False)
        assert asyncio.get_running_loop().time() - started < 0.15  # the head, not the whole body
        assert answer.body == b"first" and answer.rest is not None and not answer.truncated
        assert await answer.rest.read() == b"second"
        assert await answer.rest.read() == b""
        answer.rest.close()


async def test_without_wait_body_a_small_body_of_known_length_is_still_read_whole(opened: list[Upstream]) -> None:
    async def late_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head_then_body(reader, writer, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", b"late")

    async with raw_server(late_body) as url:
        answer = await send(await make(opened, url), stream=True, wait_body=False)
    assert answer.body == b"late" and answer.rest is None


async def test_a_body_that_falls_silent_for_the_timeout_fails_the_stream(opened: list[Upstream]) -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(2)

    async with raw_server(stalls) as url:
        answer = await send(await make(opened, url), stream=True, wait_body=False, timeout=0.2)
        assert answer.rest is not None
        with pytest.raises(UpstreamTimeout):
            await answer.rest.read()


async def test_an_unsafe_request_is_not_sent(opened: list[Upstream]) -> None:
    recorder = Recorder("v1")
    async with run_server(recorder) as url:
        upstream = await make(opened, url)
        with pytest.raises(UnsafeRequest, match="not sent"):
            await send(upstream, "/orders/1\r\nX-Injected: 1")
        await send(upstream)
    assert [seen.path for seen in recorder.seen] == ["/x"]


@pytest.mark.both_loops
async def test_a_deadline_that_runs_out_leaves_as_a_timeout() -> None:
    with pytest.raises(TimeoutError):
        async with _Deadline(0.01):
            await asyncio.sleep(5)
    await asyncio.sleep(0)  # the task is not left cancelled


@pytest.mark.both_loops
async def test_a_block_done_in_time_leaves_no_timer_behind() -> None:
    async with _Deadline(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # a timer left armed would cancel this sleep


@pytest.mark.both_loops
async def test_a_cancellation_from_outside_stays_a_cancellation_even_past_the_deadline() -> None:
    entered = asyncio.Event()

    async def bounded() -> None:
        async with _Deadline(0.05):
            entered.set()
            try:
                await asyncio.sleep(5)
            finally:
                await asyncio.sleep(0.1)  # the deadline runs out while the outer cancellation is handled

    task = asyncio.create_task(bounded())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
