"""Stand-in V1/V2 apps, recordings written the way other tools write them, and servers the CLI tests can reach."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from proxy.config import Settings, load_settings
from proxy.replay.formats import GOR_SEPARATOR
from proxy.replay.requests import Bad
from tests.proxy.upstreams import Receive, Scope, Send, read_all, respond
from tests.servers import run_server


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float
    answered: float = 0.0
    status: int = 0


@dataclass
class Shop:
    """Products and orders. Order ids count from `first` (V1 and V2 generate different ids); `broken` product ids
    get a wrong price (the V2 bug a replay must catch); `create_delay` slows creates down."""

    name: str
    first: int = 1
    broken: frozenset[int] = frozenset()
    create_delay: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.next_id = self.first

    def seen(self, method: str | None = None) -> list[str]:
        return [f"{h.method} {h.path}" for h in self.hits if method is None or h.method == method]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        hit = Hit(scope["method"], scope["path"], headers, b"", time.perf_counter())
        self.hits.append(hit)
        hit.body = await read_all(receive)
        hit.status, body = await self.answer(hit)
        await respond(send, hit.status, orjson.dumps(body))
        hit.answered = time.perf_counter()

    async def answer(self, hit: Hit) -> tuple[int, Any]:
        parts = hit.path.strip("/").split("/")
        if parts[:2] == ["api", "products"] and len(parts) == 3 and parts[2].isdigit():
            number = int(parts[2])
            if number > 100:
                return 404, {"detail": "Product not found"}
            return 200, {"id": number, "price": "99.00" if number in self.broken else "10.00"}
        if parts == ["api", "orders"] and hit.method == "POST":
            if self.create_delay:
                await asyncio.sleep(self.create_delay)
            order = {"id": self.next_id, "status": "new", **json.loads(hit.body or b"{}")}
            self.orders[self.next_id] = order
            self.next_id += 1
            return 201, order
        if parts[:2] == ["api", "orders"] and len(parts) == 3 and parts[2].isdigit() and int(parts[2]) in self.orders:
            order = self.orders[int(parts[2])]
            if hit.method == "PUT":
                order.update(json.loads(hit.body or b"{}"))
            return 200, order
        return 404, {"detail": "Not found"}


def replay_settings(v1: str, v2: str, database: Path, **overrides: Any) -> Settings:
    url = f"sqlite+aiosqlite:///{database}"
    return load_settings(overrides={"v1_url": v1, "v2_url": v2, "database_url": url, **overrides}, environ={})


class Lines:
    """A replay view that keeps what it was shown."""

    def __init__(self) -> None:
        self.bads: list[Bad] = []
        self.updates = 0
        self.title = ""

    def bad(self, item: Bad) -> None:
        self.bads.append(item)

    def start(self, tally: Any, title: str) -> None:
        self.title = title

    def update(self, tally: Any) -> None:
        self.updates += 1

    def stop(self, tally: Any) -> None:
        pass


def har_file(
    path: Path, requests: list[tuple[str, str, dict[str, str], bytes | None]], start: float = 1_790_000_000
) -> Path:
    """A HAR 1.2 file as a browser writes one: absolute URLs, one entry per request, 100 ms apart."""
    entries = []
    for i, (method, target, headers, body) in enumerate(requests):
        request: dict[str, Any] = {
            "method": method,
            "url": f"http://shop.test{target}",
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": k, "value": v} for k, v in headers.items()],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": len(body or b""),
        }
        if body is not None:
            request["postData"] = {"mimeType": headers.get("content-type", ""), "text": body.decode()}
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i / 10)) + f".{int(i % 10 * 100):03d}Z"
        entries.append(
            {"startedDateTime": stamp, "time": 1, "request": request, "response": {}, "cache": {}, "timings": {}}
        )
    document = {"log": {"version": "1.2", "creator": {"name": "tests", "version": "1"}, "entries": entries}}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def gor_file(
    path: Path, requests: list[bytes], *, compress: bool = False, start_ns: int = 1_790_000_000_000_000_000
) -> Path:
    """A GoReplay file: each raw request after its `1 <id> <ns> <latency>` line, then the separator."""
    data = b"".join(
        b"1 %024x %d 0\n" % (i, start_ns + i * 50_000_000) + raw + GOR_SEPARATOR for i, raw in enumerate(requests)
    )
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@contextlib.contextmanager
def served(*apps: Any) -> Iterator[list[str]]:
    """Each app on a real uvicorn server, in a thread with its own event loop, for tests that run the CLI in the
    main thread (which starts an event loop of its own)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()

    async def start() -> list[str]:
        return [await stack.enter_async_context(run_server(app)) for app in apps]

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(15)
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
