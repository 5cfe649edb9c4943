"""Inkwell V1 (primary), V2 (shadow) and a second V1 (secondary) on ephemeral ports behind a whole shadowdiff."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from diffs.exchange import FieldDiff
from diffs.storage import Store, StoredExchange
from proxy.config import load_settings
from tests.servers import run_server, run_shadowdiff
from tests.thirdparty_pair import v1, v2

SERVICE = "blog"
PREFIXES = ["/posts", "/comments", "/users", "/products", "/stats"]
Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass
class Received:
    """One request as an Inkwell server got it."""

    method: str
    target: str
    """Raw path, and `?query` when there is one."""
    headers: dict[str, str]
    body: bytes


class Recording:
    """ASGI wrapper: what each request looked like on arrival (the shadow's view of the proxy's rewrites)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received: list[Received] = []

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.received.append(Received(scope["method"], f"{raw}?{query}" if query else raw, headers, b"".join(chunks)))
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def again() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, again, send)

    def targets(self, method: str | None = None) -> list[str]:
        return [r.target for r in self.received if method is None or r.method == method]


@dataclass
class Inkwell:
    proxy: str
    admin: str
    store_url: str
    v1: Recording
    v2: Recording
    secondary: Recording | None
    client: httpx.AsyncClient
    seen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def v2_data(self) -> v2.Store:
        data: v2.Store = self.v2.app.state.data
        return data

    @property
    def secondary_data(self) -> v1.Data:
        assert self.secondary is not None
        data: v1.Data = self.secondary.app.state.data
        return data

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request through the proxy, then wait until its exchange is stored (so the next one is ordered after)."""
        response = await self.client.request(method, self.proxy + path, **kwargs)
        self.seen += 1
        await self.stored(self.seen)
        return response

    async def stored(self, count: int, timeout: float = 10.0) -> list[StoredExchange]:
        """Every stored exchange, oldest first, once at least `count` are there."""
        store = await Store.open(self.store_url)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    page = await store.list_exchanges(limit=500)
                    if len(page.items) >= count:
                        break
                    await asyncio.sleep(0.05)
            found = []
            for summary in reversed(page.items):
                exchange = await store.get_exchange(summary.id)
                assert exchange is not None
                found.append(exchange)
            return found
        finally:
            await store.close()

    async def exchange(self, method: str, target: str) -> StoredExchange:
        """The newest stored exchange for this request (path with its query)."""
        for exchange in reversed(await self.stored(self.seen)):
            s = exchange.summary
            full = f"{s.path}?{exchange.query}" if exchange.query else s.path
            if s.method == method and full == target:
                return exchange
        raise AssertionError(f"no stored exchange for {method} {target}")

    async def promote(self, to: str) -> None:
        body = {"to": to, "reason": "test", "actor": "tests"}
        response = await self.client.post(f"{self.admin}/api/services/{SERVICE}/promote", json=body)
        assert response.status_code == 200, response.text


def diffs_at(exchange: StoredExchange, path: str) -> list[FieldDiff]:
    return [d for d in exchange.diffs if d.path == path]


@contextlib.asynccontextmanager
async def inkwell(
    tmp_path: Path, *, secondary: bool = True, patch_delay: float = 0.0, **overrides: Any
) -> AsyncIterator[Inkwell]:
    """The pair (and a secondary V1 with its own copy of the data) behind shadowdiff, one service `blog`."""
    first, second = Recording(v1.create_app()), Recording(v2.create_app(patch_delay=patch_delay))
    third = Recording(v1.create_app()) if secondary else None
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}"
    async with contextlib.AsyncExitStack() as stack:
        u1 = await stack.enter_async_context(run_server(first))
        u2 = await stack.enter_async_context(run_server(second))
        u3 = await stack.enter_async_context(run_server(third)) if third is not None else None
        settings = load_settings(
            overrides={
                "v1_url": u1,
                "v2_url": u2,
                "secondary_url": u3,
                "port": 0,
                "admin_port": 0,
                "database_url": store_url,
                "drain_seconds": 2,
                "services": {SERVICE: {"prefixes": PREFIXES}},
                **overrides,
            },
            environ={},
        )
        server = await stack.enter_async_context(run_shadowdiff(settings))
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield Inkwell(server.proxy_url, server.admin_url, store_url, first, second, third, client)
