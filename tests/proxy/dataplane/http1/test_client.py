"""proxy.dataplane.http1, the hot path's HTTP/1.1 client, against scripted raw servers on 127.0.0.1.

Each test's server reads requests off the socket and writes exactly the bytes the case needs, so framing (length,
chunked, until close), pooling and failure handling are checked without any other HTTP stack in the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from proxy.dataplane import http1

Handler = Callable[["Peer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Peer:
    """What a scripted server saw: one entry per connection, each the list of request heads read on it."""

    connections: list[list[bytes]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader, peer: Peer, conn: list[bytes]) -> bytes | None:
    """One request head (and a Content-Length or chunked body); None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    conn.append(head)
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        peer.bodies.append(await reader.readexactly(length))
    elif b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        peer.bodies.append(body)
    return head


@contextlib.asynccontextmanager
async def scripted(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[int, Peer]]:
    peer = Peer()
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await handler(peer, reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1], peer
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def ok(body: bytes = b"hello", *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


def keep_alive(*responses: bytes) -> Handler:
    """Answers each request, on whichever connection, with the next response in turn (the last one repeats)."""
    answered = 0

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        conn: list[bytes] = []
        peer.connections.append(conn)
        while await read_request(reader, peer, conn) is not None:
            writer.write(responses[min(answered, len(responses) - 1)])
            answered += 1
            await writer.drain()

    return handler


@pytest.fixture
async def pools() -> AsyncIterator[Callable[..., http1.Pool]]:
    made: list[http1.Pool] = []

    def make(port: int, **kwargs: object) -> http1.Pool:
        pool = http1.Pool("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


async def get(pool: http1.Pool, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    async with asyncio.timeout(5):
        response = await pool.request(method, "/x", [("host", "upstream")], body)
        try:
            return response.status, await response.read_all()
        finally:
            response.close()


async def test_keep_alive_reuses_one_connection(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(ok())) as (port, peer):
        pool = pools(port)
        for _ in range(3):
            assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 1 and len(peer.connections[0]) == 3
    assert peer.connections[0][0].startswith(b"GET /x HTTP/1.1\r\nhost: upstream\r\n")


async def test_chunked_response_is_decoded(pools: Callable[..., http1.Pool]) -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    async with scripted(keep_alive(response)) as (port, peer):
        pool = pools(port)
        assert await get(pool) == (200, b"abcde")
        assert await get(pool) == (200, b"abcde")
    assert len(peer.connections) == 1


async def test_body_until_close_is_read_to_the_end(pools: Callable[..., http1.Pool]) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, peer, [])
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"part two")
        await writer.drain()

    async with scripted(handler) as (port, _):
        assert await get(pools(port)) == (200, b"part one, part two")


async def test_a_reset_during_a_body_until_close_is_a_failure(pools: Callable[..., http1.Pool]) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, peer, [])
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST, not FIN
        writer.transport.abort()

    async with scripted(handler) as (port, _):
        with pytest.raises(http1.ConnectionLost):
            await get(pools(port))


@pytest.mark.both_loops
async def test_head_does_not_wait_for_the_body_its_length_announces(pools: Callable[..., http1.Pool]) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    async with scripted(keep_alive(head, ok())) as (port, peer):
        pool = pools(port)
        async with asyncio.timeout(1):
            assert await get(pool, "HEAD") == (200, b"")
        assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 1  # reused after HEAD: the next response gets a parser of its own


async def test_204_and_304_have_no_body_and_keep_the_connection(pools: Callable[..., http1.Pool]) -> None:
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    not_modified = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
    async with scripted(keep_alive(no_content, not_modified, ok())) as (port, peer):
        pool = pools(port)
        async with asyncio.timeout(1):
            assert await get(pool) == (204, b"")
            assert await get(pool) == (304, b"")
            assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 1


async def test_informational_responses_are_skipped(pools: Callable[..., http1.Pool]) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    async with scripted(keep_alive(early + ok(b"final"))) as (port, _):
        response = await pools(port).request("GET", "/x", [], None)
        try:
            assert response.status == 200
            assert response.headers == ((b"Content-Length", b"5"),)
            assert await response.read_all() == b"final"
        finally:
            response.close()


async def answer_once_then_close(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the first request of a connection; reads the next and closes without a byte, as a server that closes
    an idle keep-alive connection does when a request crosses its close."""
    conn: list[bytes] = []
    peer.connections.append(conn)
    await read_request(reader, peer, conn)
    writer.write(ok())
    await writer.drain()
    await read_request(reader, peer, conn)


async def test_a_stale_pooled_connection_is_retried_for_get(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(answer_once_then_close) as (port, peer):
        pool = pools(port)
        assert await get(pool) == (200, b"hello")
        assert await get(pool) == (200, b"hello")
    assert [len(c) for c in peer.connections] == [2, 1]


async def test_a_stale_pooled_connection_is_not_retried_for_post(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(answer_once_then_close) as (port, peer):
        pool = pools(port)
        assert await get(pool, "POST", b"{}") == (200, b"hello")
        with pytest.raises(http1.ConnectionLost) as caught:
            await get(pool, "POST", b"{}")
    assert caught.value.sent_nothing
    assert len(peer.connections) == 1  # a create is never sent twice


async def test_extra_bytes_after_a_response_retire_the_connection(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(ok() + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad")) as (port, peer):
        pool = pools(port)
        assert await get(pool) == (200, b"hello")
        assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 2


async def test_a_cancelled_request_closes_its_connection(pools: Callable[..., http1.Pool]) -> None:
    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn: list[bytes] = []
        peer.connections.append(conn)
        while await read_request(reader, peer, conn) is not None:
            if len(peer.connections) == 1:
                await asyncio.sleep(1)  # the first connection answers too late
            writer.write(ok())
            await writer.drain()

    async with scripted(handler) as (port, peer):
        pool = pools(port)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await get(pool)
        assert pool.open_connections == 0
        assert await get(pool) == (200, b"hello")  # on a new connection, never the late answer of the old one
    assert len(peer.connections) == 2


async def test_bodies_go_with_a_length_or_chunked(pools: Callable[..., http1.Pool]) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b""
        yield b"cd"

    async with scripted(keep_alive(ok())) as (port, peer):
        pool = pools(port)
        assert await get(pool, "POST", b"payload") == (200, b"hello")
        response = await pool.request("PUT", "/x", [], parts())
        await response.read_all()
        response.close()
        response = await pool.request("PUT", "/x", [("content-length", "4")], parts())
        await response.read_all()
        response.close()
    heads = peer.connections[0]
    assert b"content-length: 7\r\n" in heads[0]
    assert b"transfer-encoding: chunked\r\n" in heads[1]
    assert b"transfer-encoding" not in heads[2] and b"content-length: 4\r\n" in heads[2]
    assert peer.bodies == [b"payload", b"abcd", b"abcd"]


async def test_a_broken_request_body_fails_at_once(pools: Callable[..., http1.Pool]) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"first"
        raise ConnectionResetError("the client went away")

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    async with scripted(handler) as (port, _):
        pool = pools(port)
        async with asyncio.timeout(1):  # not a timeout: the failure ends the wait
            with pytest.raises(http1.ConnectionLost, match="incomplete request body"):
                await pool.request("POST", "/x", [], broken())
        assert pool.open_connections == 0


async def test_an_early_answer_stops_the_upload_and_retires_the_connection(pools: Callable[..., http1.Pool]) -> None:
    stop = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while not stop.is_set():
            yield b"x" * 1024
            await asyncio.sleep(0.001)

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn: list[bytes] = []
        peer.connections.append(conn)
        conn.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)

    async with scripted(handler) as (port, peer):
        pool = pools(port)
        async with asyncio.timeout(1):
            response = await pool.request("POST", "/x", [], endless())
            assert response.status == 413
            assert await response.read_all() == b""
            response.close()
        assert pool.open_connections == 0
    stop.set()


async def test_the_connection_limit_queues_requests(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(ok())) as (port, peer):
        pool = pools(port, limit=1)
        results = await asyncio.gather(*(get(pool) for _ in range(5)))
    assert results == [(200, b"hello")] * 5
    assert len(peer.connections) == 1


async def test_a_streamed_body_is_read_with_back_pressure(pools: Callable[..., http1.Pool]) -> None:
    size = 8 * 1024 * 1024

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, peer, [])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"y" * 65536)
            await writer.drain()

    async with scripted(handler) as (port, _):
        response = await pools(port).request("GET", "/x", [], None)
        try:
            first, whole = await response.read_up_to(1000)
            assert not whole and first == b""  # the length is known to be over the cap: nothing buffered
            await asyncio.sleep(0.3)  # a slow consumer: the client must stop reading, not buffer 8 MB
            held = response._connection.buffered
            assert held <= http1.HIGH_WATER + 512 * 1024, held
            total = 0
            while chunk := await response.read_chunk(65536):
                total += len(chunk)
            assert total == size
        finally:
            response.close()


async def test_a_non_latin1_target_is_sent_percent_encoded(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(ok())) as (port, peer):
        response = await pools(port).request("GET", "/orders/€?q=1", [], None)
        response.close()
    assert peer.connections[0][0].startswith(b"GET /orders/%E2%82%AC?q=1 HTTP/1.1\r\n")


async def test_garbage_is_an_invalid_response(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(b"\x00\x01 not http\r\n\r\n")) as (port, _):
        with pytest.raises(http1.ConnectionLost) as caught:
            await get(pools(port))
    assert caught.value.invalid


async def test_refused_is_connect_failed(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(ok())) as (port, _):
        pass
    with pytest.raises(http1.ConnectFailed) as caught:
        await get(pools(port))
    assert isinstance(caught.value.os_error, ConnectionRefusedError)


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 from a throwaway CA, which SSL_CERT_FILE makes trusted."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # read by ssl.create_default_context(), as in deployment
    return context


async def test_https_upstreams_are_verified_and_kept_alive(
    pools: Callable[..., http1.Pool], tls_server: ssl.SSLContext
) -> None:
    async with scripted(keep_alive(ok()), tls=tls_server) as (port, peer):
        pool = pools(port, tls=True)
        assert await get(pool) == (200, b"hello")
        assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 1


async def test_an_untrusted_certificate_fails_to_connect(
    pools: Callable[..., http1.Pool], tls_server: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    async with scripted(keep_alive(ok()), tls=tls_server) as (port, peer):
        with pytest.raises(http1.ConnectFailed, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await get(pools(port, tls=True))
    assert peer.connections in ([], [[]])  # nothing was ever sent in the clear


# -- issue 10: the audit's client-side defects ----------------------------------------------------------------------


@pytest.mark.both_loops
async def test_a_body_between_the_high_water_mark_and_the_cap_is_read_whole(pools: Callable[..., http1.Pool]) -> None:
    body = b"z" * (710 * 1024)

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, peer, [])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 65536):
            writer.write(body[start : start + 65536])
            await writer.drain()

    async with scripted(handler) as (port, _):
        async with asyncio.timeout(5):
            response = await pools(port).request("GET", "/x", [], None)
            try:
                await asyncio.sleep(0.2)  # nobody reads: reading pauses past the high-water mark
                data, whole = await response.read_up_to(1024 * 1024)  # then someone wants it all: reading resumes
            finally:
                response.close()
    assert whole and data == body


@pytest.mark.both_loops
async def test_trailers_are_kept_apart_from_the_head(pools: Callable[..., http1.Pool]) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: 1\r\n\r\n5\r\nhello\r\n0\r\n"
        b"Set-Cookie: injected=1\r\nLocation: http://evil.example/\r\n\r\n"
    )
    async with scripted(keep_alive(chunked, ok())) as (port, peer):
        pool = pools(port)
        response = await pool.request("GET", "/x", [], None)
        try:
            assert await response.read_all() == b"hello"
            assert response.headers == ((b"Transfer-Encoding", b"chunked"), (b"X-Head", b"1"))
            assert response.trailers == ((b"Set-Cookie", b"injected=1"), (b"Location", b"http://evil.example/"))
        finally:
            response.close()
        assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 1


@pytest.mark.both_loops
@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\nHTTP/1.1 200 OK\r\n"
        b"Content-Length: 23\r\n\r\nBYTES-FROM-OTHER-CLIENT",
        b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 100 Continue\r\n\r\n" * 11 + ok(),
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 40_000 + b"\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"Content-Length: 2\r\n\r\nok",
    ],
    ids=["101", "999", "600", "099", "11 interim", "40 kB head", "101 fields"],
)
async def test_invalid_responses_fail_and_their_connection_is_never_reused(
    pools: Callable[..., http1.Pool], response: bytes
) -> None:
    async with scripted(keep_alive(response, ok(b"next"))) as (port, peer):
        pool = pools(port)
        with pytest.raises(http1.ConnectionLost) as caught:
            await get(pool)
        assert caught.value.invalid and pool.open_connections == 0
        assert await get(pool) == (200, b"next")
    assert [len(conn) for conn in peer.connections] == [1, 1]


@pytest.mark.both_loops
async def test_interim_responses_up_to_the_cap_are_skipped(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(b"HTTP/1.1 100 Continue\r\n\r\n" * 10 + ok())) as (port, _):
        assert await get(pools(port)) == (200, b"hello")


@pytest.mark.both_loops
async def test_a_cancelled_waiter_passes_its_turn_on(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(ok())) as (port, peer):
        pool = pools(port, limit=1)
        response = await pool.request("GET", "/x", [], None)
        assert await response.read_all() == b"hello"
        second = asyncio.get_running_loop().create_task(get(pool))
        third = asyncio.get_running_loop().create_task(get(pool))
        await asyncio.sleep(0.05)  # both wait for the one connection
        response.close()  # back to the pool: `second` is woken ...
        second.cancel()  # ... and cancelled before it runs
        async with asyncio.timeout(2):
            assert await third == (200, b"hello")  # the turn passed on: no stall with an idle connection free
    assert second.cancelled()
    assert len(peer.connections) == 1


@pytest.mark.both_loops
async def test_every_idle_connection_is_closed_when_it_expires(pools: Callable[..., http1.Pool]) -> None:
    closed: list[int] = []

    async def handler(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn: list[bytes] = []
        peer.connections.append(conn)
        while await read_request(reader, peer, conn) is not None:
            await asyncio.sleep(0.05)  # so that the burst needs a connection per request
            writer.write(ok())
            await writer.drain()
        closed.append(len(conn))

    async with scripted(handler) as (port, peer):
        pool = pools(port, keepalive=0.3)
        assert await asyncio.gather(*(get(pool) for _ in range(20))) == [(200, b"hello")] * 20
        assert pool.open_connections == 20
        async with asyncio.timeout(3):
            while len(closed) < 20:  # with no further request: the sweep, not a pop, closes them
                await asyncio.sleep(0.05)
        assert pool.open_connections == 0
    assert len(peer.connections) == 20


@pytest.mark.both_loops
async def test_an_announced_keep_alive_timeout_closes_the_connection_sooner(
    pools: Callable[..., http1.Pool],
) -> None:
    async with scripted(keep_alive(ok(b"hello", b"Keep-Alive: timeout=1\r\n"))) as (port, peer):
        pool = pools(port, keepalive=30.0)
        assert await get(pool) == (200, b"hello")
        await asyncio.sleep(0.7)  # past half the announced second: the proxy must not risk the upstream's close
        assert pool.open_connections == 0
        assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 2


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"timeout=5, max=100", 5.0), (b"max=3,timeout=2", 2.0), (b"timeout=x", None), (b"max=1", None)],
)
def test_keep_alive_timeouts_are_parsed(value: bytes, seconds: float | None) -> None:
    from proxy.dataplane.http1.client import _keepalive_timeout

    assert _keepalive_timeout(value) == seconds


@pytest.mark.both_loops
async def test_an_unsafe_target_or_header_is_never_written(pools: Callable[..., http1.Pool]) -> None:
    async with scripted(keep_alive(ok())) as (port, peer):
        pool = pools(port)
        with pytest.raises(http1.UnsafeRequest):
            await pool.request("GET", "/orders/1007\r\nX-Injected: yes", [], None)
        with pytest.raises(http1.UnsafeRequest):
            await pool.request("GET", "/orders/1", [("x-id", "1\r\nX-Injected: yes")], None)
        with pytest.raises(http1.UnsafeRequest):
            await pool.request("GET", "/orders/1 HTTP/1.0", [], None)
        assert await get(pool) == (200, b"hello")
    assert len(peer.connections) == 1 and len(peer.connections[0]) == 1


@pytest.mark.both_loops
async def test_a_client_certificate_is_shown_when_asked(pools: Callable[..., http1.Pool], tmp_path: Path) -> None:
    from proxy.dataplane.forwarding import TlsOptions

    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    authority.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED  # only clients with a certificate from this CA
    bundle, cert = tmp_path / "ca.pem", tmp_path / "client.pem"
    authority.cert_pem.write_to_path(str(bundle))
    authority.issue_cert("shadowdiff.client").private_key_and_cert_chain_pem.write_to_path(str(cert))
    async with scripted(keep_alive(ok()), tls=server) as (port, peer):
        with pytest.raises((http1.ConnectFailed, http1.ConnectionLost)):
            await get(pools(port, tls=TlsOptions(ca_bundle=str(bundle)).context()))
        options = TlsOptions(ca_bundle=str(bundle), client_cert=str(cert))
        assert await get(pools(port, tls=options.context())) == (200, b"hello")


@pytest.mark.both_loops
async def test_verification_can_be_turned_off_for_a_test_bed(
    pools: Callable[..., http1.Pool], tls_server: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.dataplane.forwarding import TlsOptions

    monkeypatch.delenv("SSL_CERT_FILE")
    async with scripted(keep_alive(ok()), tls=tls_server) as (port, _):
        assert await get(pools(port, tls=TlsOptions(verify=False).context())) == (200, b"hello")


def test_an_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    from proxy.dataplane.forwarding import TlsOptions
    from proxy.errors import ConfigError

    with pytest.raises(ConfigError, match="'upstream_ca_bundle' has value"):
        TlsOptions(ca_bundle=str(tmp_path / "missing.pem")).context()


class _Transport:
    def __init__(self) -> None:
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


class _PoolStub:
    """What a Connection asks of its pool, recording whether it was put back."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.limits = http1.Limits()
        self.put: list[object] = []

    def put_back(self, connection: object) -> None:
        self.put.append(connection)

    def forget(self, connection: object) -> None:
        pass


def _connection() -> tuple[http1.Connection, _PoolStub, _Transport]:
    pool, transport = _PoolStub(), _Transport()
    connection = http1.Connection(pool)  # type: ignore[arg-type]
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.begin("GET")
    return connection, pool, transport


async def test_the_reads_of_a_body_of_known_length_are_kept_as_received() -> None:
    connection, pool, _ = _connection()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    middle, last = b"defg", b"hij"
    connection.data_received(middle)
    assert not connection.complete
    connection.data_received(last)
    assert connection.complete and connection.reusable
    held = list(connection._chunks)
    assert held[1] is middle and held[2] is last  # not parsed, not copied
    assert connection.take() == b"abcdefghij"
    connection.finish()
    assert pool.put == [connection]


async def test_bytes_after_a_body_of_known_length_keep_the_connection_from_the_pool() -> None:
    connection, pool, transport = _connection()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
    connection.data_received(b"cdefHTTP/1.1 200 OK\r\n")
    assert connection.complete
    assert connection.take() == b"abcdef"
    connection.finish()
    assert pool.put == [] and transport.closed


async def test_a_body_of_known_length_cut_short_fails_the_response() -> None:
    connection, _, _ = _connection()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    connection.data_received(b"cd")
    connection.connection_lost(None)
    with pytest.raises(http1.ConnectionLost):
        await connection.wait(0)
