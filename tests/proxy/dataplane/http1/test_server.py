"""proxy.dataplane.http1.server: uvicorn's httptools protocol held to limits and timeouts, driven with raw bytes.

The app behind it is a small echo, so these tests see the protocol alone; tests/proxy/dataplane/test_wire_audit.py
drives the same protocol in front of the whole proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from proxy.dataplane.http1.server import (
    BODY_FOLLOWS,
    CLIENT_GONE,
    HANDLER_TASK,
    ProxyCycle,
    ProxyProtocol,
    ServerLimits,
    protocol_class,
)
from tests.proxy.wire import RawClient, exchange
from tests.servers import run_server

pytestmark = pytest.mark.both_loops

Scope = dict[str, Any]


class Echo:
    """Answers each request with its method, target, headers and body as JSON; records tasks it saw cancelled."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.cancelled: list[bool] = []
        self.started = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        scope[HANDLER_TASK] = asyncio.current_task()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.started.set()
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(bool(scope.get(CLIENT_GONE)))
            return
        answer = orjson.dumps(
            {
                "target": scope["raw_path"].decode()
                + ("?" + scope["query_string"].decode() if scope["query_string"] else ""),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "body": body.decode(),
            }
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def serving(app: Any = None, **limits: Any) -> AsyncIterator[str]:
    options = {"http": protocol_class(ServerLimits(**limits)), "ws": "none", "lifespan": "off"}
    async with run_server(app or Echo(), **options) as url:
        yield url


def test_the_uvicorn_internals_the_protocol_relies_on_are_there() -> None:
    # pyproject.toml pins uvicorn to 0.54.x for this subclass; a new version must pass this before the pin moves.
    assert uvicorn.__version__.startswith("0.54.")
    for name in (
        "data_received",
        "connection_made",
        "connection_lost",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_message_complete",
        "on_response_complete",
        "shutdown",
        "_unset_keepalive_if_required",
    ):
        assert callable(getattr(HttpToolsProtocol, name)), name
    assert issubclass(ProxyProtocol, HttpToolsProtocol)
    cycle_fields = RequestResponseCycle.__init__.__code__.co_names
    for name in ("scope", "keep_alive", "more_body", "response_complete", "disconnected"):
        assert name in cycle_fields, name


async def test_a_request_gets_through_with_its_headers_in_order() -> None:
    async with serving() as url:
        reply = await exchange(url, b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-One: 1\r\nContent-Length: 2\r\n\r\nhi")
    answer = orjson.loads(reply.body)
    assert answer["target"] == "/a?b=1" and answer["body"] == "hi"
    assert answer["headers"] == [["host", "x"], ["x-one", "1"], ["content-length", "2"]]


async def test_request_trailers_are_dropped_even_in_the_heads_read() -> None:
    request = (
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
        b"Authorization: Bearer injected\r\n\r\n"
    )
    async with serving() as url:
        reply = await exchange(url, request)
    answer = orjson.loads(reply.body)
    assert answer["body"] == "hello"
    assert ["authorization", "Bearer injected"] not in answer["headers"]


async def test_http_1_0_may_omit_host() -> None:
    async with serving() as url:
        reply = await exchange(url, b"GET /old HTTP/1.0\r\n\r\n")
    assert reply.status == 200


async def test_expect_100_continue_still_works() -> None:
    async with serving() as url, RawClient.connect(url) as client:
        await client.send(b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        async with asyncio.timeout(3):
            assert (await client.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
        await client.send(b"body")
        reply = await client.read_reply()
    assert orjson.loads(reply.body)["body"] == "body"


async def test_a_refused_request_after_a_pipelined_one_waits_for_its_answer() -> None:
    async with serving(Echo(delay=0.2)) as url, RawClient.connect(url) as client:
        await client.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        first = await client.read_reply()
        second = await client.read_reply()
        assert await client.closed_by_peer(3.0)
    assert first.status == 200 and orjson.loads(first.body)["target"] == "/first"
    assert second.status == 400 and second.header("connection") == ["close"]


async def test_a_refusal_is_readable_while_the_client_is_still_sending() -> None:
    async with serving() as url, RawClient.connect(url) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 40_000)
        reply = await client.read_reply()
        for _ in range(5):  # the client keeps writing for a while: its bytes are read and dropped, no reset
            await client.send(b"a" * 10_000)
        assert await client.closed_by_peer(5.0)
    assert reply.status == 431


async def test_limits_are_configurable() -> None:
    async with serving(max_header_count=3, max_header_line=300) as url:
        ok = await exchange(url, b"GET / HTTP/1.1\r\nHost: a\r\nX-1: 1\r\nX-2: 2\r\n\r\n")
        many = await exchange(url, b"GET / HTTP/1.1\r\nHost: a\r\nX-1: 1\r\nX-2: 2\r\nX-3: 3\r\n\r\n")
        long = await exchange(url, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (ok.status, many.status, long.status) == (200, 431, 414)


async def test_an_upgrade_request_is_served_plainly_and_nothing_after_it_is_read() -> None:
    async with serving() as url, RawClient.connect(url) as client:
        await client.send(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        reply = await client.read_reply()
        assert await client.closed_by_peer(3.0)
    assert reply.status == 200 and orjson.loads(reply.body)["target"] == "/ws"


async def test_a_late_next_head_does_not_cut_the_response_in_progress() -> None:
    async with serving(Echo(delay=0.6), header_timeout=0.3) as url, RawClient.connect(url) as client:
        await client.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n")
        reply = await client.read_reply()
        assert await client.closed_by_peer(3.0)
    assert reply.status == 200 and orjson.loads(reply.body)["target"] == "/slow"


async def test_a_client_that_goes_away_cancels_its_request() -> None:
    app = Echo(delay=10.0)
    async with serving(app) as url:
        async with RawClient.connect(url) as client:
            await client.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.wait_for(app.started.wait(), 3)
        async with asyncio.timeout(3):
            while not app.cancelled:
                await asyncio.sleep(0.01)
    assert app.cancelled == [True]


@pytest.mark.parametrize(("sent", "status"), [(b"", None), (b"GE", 408), (b"GET / HTTP/1.1\r\nHost: a\r\n", 408)])
async def test_a_slow_head_gets_a_408_and_an_idle_connection_a_silent_close(sent: bytes, status: int | None) -> None:
    async with serving(header_timeout=0.3) as url, RawClient.connect(url) as client:
        await client.send(sent)
        if status is None:
            assert await client.reader.read() == b""
        else:
            assert (await client.read_reply()).status == status


async def test_a_large_body_read_with_the_start_of_the_next_head_is_not_taken_for_a_large_head() -> None:
    body = b"b" * 100_000
    async with serving() as url, RawClient.connect(url) as client:
        await client.send(
            b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body) + b"GET /sec"
        )
        first = await client.read_reply()
        await client.send(b"ond HTTP/1.1\r\nHost: a\r\n\r\n")
        second = await client.read_reply()
    assert first.status == 200 and len(orjson.loads(first.body)["body"]) == len(body)
    assert second.status == 200 and orjson.loads(second.body)["target"] == "/second"


class _Recorder:
    """A transport that records each write call (a writelines call as the list of its buffers)."""

    def __init__(self) -> None:
        self.calls: list[bytes | list[bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.calls.append([bytes(part) for part in data])

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _cycle(transport: _Recorder, *, keep_alive: bool = True) -> ProxyCycle:
    import logging

    return ProxyCycle(
        scope={"method": "GET", "type": "http"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


def _start(length: int, **extra: Any) -> Any:
    return {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % length)], **extra}


HEAD_5 = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


async def test_a_head_whose_body_follows_goes_out_with_it_in_one_write() -> None:
    transport = _Recorder()
    cycle = _cycle(transport)
    await cycle.send(_start(5, **{BODY_FOLLOWS: True}))
    assert transport.calls == []
    await cycle.send({"type": "http.response.body", "body": b"hello"})
    assert transport.calls == [HEAD_5 + b"hello"]
    assert cycle.response_complete


async def test_a_head_without_the_mark_is_written_at_once() -> None:
    # A stream's head must reach the client before its first chunk, whenever that comes.
    transport = _Recorder()
    cycle = _cycle(transport)
    await cycle.send(_start(5))
    assert transport.calls == [HEAD_5]
    await cycle.send({"type": "http.response.body", "body": b"hello"})
    assert transport.calls == [HEAD_5, b"hello"]


async def test_a_large_body_goes_out_with_its_head_in_one_call_uncopied() -> None:
    transport = _Recorder()
    cycle = _cycle(transport, keep_alive=False)
    body = b"x" * (700 * 1024)
    await cycle.send(_start(len(body), **{BODY_FOLLOWS: True}))
    await cycle.send({"type": "http.response.body", "body": body})
    assert len(transport.calls) == 1
    head, sent = transport.calls[0]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and sent == body
    assert transport.closed  # the close after a non-keep-alive response still reaches the real transport


async def test_a_held_head_is_still_written_when_the_body_message_is_refused() -> None:
    transport = _Recorder()
    cycle = _cycle(transport)
    await cycle.send(_start(5, **{BODY_FOLLOWS: True}))
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.body", "body": b"too long"})
    assert transport.calls == [HEAD_5]


async def test_the_protocol_serves_requests_with_its_own_cycle() -> None:
    seen: list[type] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(type(send.__self__))
        await receive()
        await send(_start(2, **{BODY_FOLLOWS: True}))
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(app) as url:
        reply = await exchange(url, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert reply.status == 200 and reply.body == b"ok"
    assert seen and all(issubclass(kind, ProxyCycle) for kind in seen)
