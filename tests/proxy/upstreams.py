"""Stand-in upstreams and a recording sink for the proxy's tests: small raw ASGI apps and raw asyncio servers."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from diffs.exchange import Exchange
from proxy.config import Settings, load_settings
from proxy.dataplane.app import create_proxy_app
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.routing import StaticPrimaries
from proxy.runtime.server import server_options
from tests.servers import free_port, run_server

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes
    at: float
    """time.perf_counter() when the request's head arrived."""


async def read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = headers if headers is not None else [(b"content-type", b"application/json")]
    if not any(name == b"content-length" for name, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Recorder:
    """A raw ASGI upstream that records what it receives and answers through `handler` (default: echo as JSON)."""

    def __init__(
        self,
        name: str,
        handler: Callable[[Seen, Send], Awaitable[None]] | None = None,
        *,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.seen: list[Seen] = []
        self.delay = delay
        self.arrived = asyncio.Event()
        self._released = asyncio.Event()
        self._handler = handler or self.echo

    def release(self) -> None:
        """End every delay now (so a stalled stand-in does not hold its server's shutdown)."""
        self._released.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        at = time.perf_counter()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        raw_path = scope.get("raw_path")
        seen = Seen(
            scope["method"],
            raw_path.decode() if raw_path else scope["path"],
            scope["query_string"].decode(),
            dict(headers),
            headers,
            b"",
            at,
        )
        seen.body = await read_all(receive)
        self.seen.append(seen)
        self.arrived.set()
        if self.delay and not self._released.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.delay)
        await self._handler(seen, send)

    async def echo(self, seen: Seen, send: Send) -> None:
        body = orjson.dumps(
            {
                "app": self.name,
                "method": seen.method,
                "path": seen.path,
                "query": seen.query,
                "body": seen.body.decode(),
            }
        )
        await respond(send, 200, body, [(b"content-type", b"application/json"), (b"x-upstream", self.name.encode())])


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def fixed(
    status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> Callable[[Seen, Send], Awaitable[None]]:
    async def handler(seen: Seen, send: Send) -> None:
        await respond(send, status, body, headers)

    return handler


GZIP_TEXT = b'{"greeting": "hello", "padding": "' + b"x" * 2000 + b'"}'
GZIP_BODY = gzip.compress(GZIP_TEXT, mtime=0)


def gzipped() -> Callable[[Seen, Send], Awaitable[None]]:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-encoding", b"gzip"),
        (b"vary", b"Accept-Encoding"),
        (b"x-custom", b"kept"),
        (b"x-custom", b"twice"),
    ]
    return fixed(200, GZIP_BODY, headers)


def chunked(parts: list[bytes]) -> Callable[[Seen, Send], Awaitable[None]]:
    """A body without Content-Length, sent in parts (uvicorn chunks it)."""

    async def handler(seen: Seen, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return handler


class OrdersApp:
    """An orders service whose ids count from `first`: V1 and V2 stand-ins generate different ids."""

    def __init__(self, name: str, first: int, *, create_delay: float = 0.0) -> None:
        self.name = name
        self.next_id = first
        self.create_delay = create_delay
        self.orders: dict[int, dict[str, Any]] = {}
        self.recorder = Recorder(name, self.handle)

    async def handle(self, seen: Seen, send: Send) -> None:
        parts = seen.path.strip("/").split("/")  # api, orders, {id}
        if seen.method == "POST" and len(parts) == 2:
            if self.create_delay:
                await asyncio.sleep(self.create_delay)
            data = orjson.loads(seen.body)
            order = {"id": self.next_id, "customer_id": data.get("customer_id"), "status": "new", "app": self.name}
            order["item"] = {"item_id": self.next_id * 10, "sku": data.get("sku", "A")}
            self.orders[self.next_id] = order
            self.next_id += 1
            await respond(send, 201, orjson.dumps(order))
            return
        if len(parts) == 3 and parts[2].isdigit() and int(parts[2]) in self.orders:
            order = self.orders[int(parts[2])]
            if seen.method == "PUT":
                order.update(orjson.loads(seen.body))
            await respond(send, 200, orjson.dumps(order))
            return
        await respond(send, 404, orjson.dumps({"detail": "not found", "path": seen.path}))


@contextlib.asynccontextmanager
async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A plain TCP server, for upstreams that misbehave below HTTP."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(ConnectionError):
                await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers with bytes that are not HTTP."""
    await _read_head(reader)
    writer.write(b"\x00\x01 this is not http at all \xff\r\n\r\n")
    await writer.drain()
    writer.close()


async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Promises 1000 bytes, sends 10, then resets the connection."""
    await _read_head(reader)
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"partial":')
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.transport.abort()


def down_url() -> str:
    """A URL where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


class ListSink:
    """Collects exchanges; `wait(n)` returns once n have arrived."""

    def __init__(self, *, accept: bool = True) -> None:
        self.exchanges: list[Exchange] = []
        self.accept = accept
        self._changed = asyncio.Event()

    def submit(self, exchange: Exchange) -> bool:
        if not self.accept:
            return False
        self.exchanges.append(exchange)
        self._changed.set()
        return True

    async def wait(self, count: int = 1, timeout: float = 3.0) -> list[Exchange]:
        async with asyncio.timeout(timeout):
            while len(self.exchanges) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.exchanges


def settings_for(v1: str, v2: str, **overrides: Any) -> Settings:
    return load_settings(overrides={"v1_url": v1, "v2_url": v2, **overrides}, environ={})


@dataclass
class Stack:
    url: str
    sink: ListSink
    metrics: ProxyMetrics
    app: Any
    correlator: IdCorrelator | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def proxy(self) -> Any:
        return self.app.proxy


@contextlib.asynccontextmanager
async def proxy_stack(
    settings: Settings,
    *,
    sink: Any = None,
    correlator: IdCorrelator | None = None,
    primaries: Any = None,
    **options: Any,
) -> AsyncIterator[Stack]:
    """The proxy on a real uvicorn server in front of the given settings' upstreams."""
    sink = sink if sink is not None else ListSink()
    metrics = ProxyMetrics(CollectorRegistry())
    app = create_proxy_app(
        settings,
        primaries=primaries or StaticPrimaries(settings.services),
        sink=sink,
        metrics=metrics,
        correlator=correlator,
        **options,
    )
    # As the real server runs it (the proxy's HTTP/1.1 protocol and limits; the client gets the primary's Date and
    # Server headers, not a second pair).
    options = server_options(settings, proxy=True)
    options["log_level"] = "warning"
    async with run_server(app, **options) as url:
        yield Stack(url, sink, metrics, app, correlator)


def sample(metrics: ProxyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
