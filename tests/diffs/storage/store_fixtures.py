"""Helpers shared by the store tests (a plain module: importing from conftest is ambiguous)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from diffs.exchange import (
    Comparison,
    DiffKind,
    ErrorKind,
    Exchange,
    FieldDiff,
    Headers,
    Outcome,
    RecordedRequest,
    Role,
    SideResponse,
)
from diffs.storage import Store
from tests.databases import fresh_schema

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Database:
    """Where a test's store lives: a URL, plus the PostgreSQL schema isolating it from concurrent runs."""

    url: str
    schema: str | None = None

    async def open(self, **options: Any) -> Store:
        return await Store.open(self.url, schema=self.schema, **options)

    def engine(self) -> AsyncEngine:
        """A separate engine on the same database, for looking at rows behind the store's back."""
        if self.schema is None:
            return create_async_engine(self.url)
        return create_async_engine(self.url, connect_args={"server_settings": {"search_path": self.schema}})


def side(
    role: Role = Role.PRIMARY,
    *,
    app: str = "v1",
    status: int | None = 200,
    body: bytes = b'{"id": 1, "total": "10.00"}',
    headers: Headers = (("content-type", "application/json"),),
    latency_ms: float = 12.5,
    error: ErrorKind = ErrorKind.NONE,
) -> SideResponse:
    return SideResponse(role, app, status, headers, body, latency_ms, error)


def comparison(
    *,
    outcome: Outcome = Outcome.MATCH,
    diffs: Iterable[tuple[str, Any, Any]] = (),
    endpoint: str = "GET /api/orders/{id}",
    service: str = "orders",
    started_at: datetime | None = None,
    exchange_id: str | None = None,
    request_headers: Headers = (("accept", "application/json"),),
    request_body: bytes = b"",
    query: str = "",
    primary: SideResponse | None = None,
    shadow: SideResponse | None | bool = True,
    noise: bool = False,
    skip_reason: str | None = None,
) -> Comparison:
    """A comparison with sensible defaults; `diffs` as (path, primary value, shadow value)."""
    number = next(_ids)
    exchange_id = exchange_id or f"req-{number:06d}"
    method, _, template = endpoint.partition(" ")
    exchange = Exchange(
        id=exchange_id,
        started_at=started_at or T0 + timedelta(milliseconds=number),
        service=service,
        request=RecordedRequest(method, template.replace("{id}", "1"), query, request_headers, request_body),
        primary=primary or side(),
        shadow=side(Role.SHADOW, app="v2") if shadow is True else (shadow or None),
        skip_reason=skip_reason,
    )
    field_diffs = tuple(FieldDiff(exchange_id, endpoint, path, DiffKind.CHANGED, p, s, noise) for path, p, s in diffs)
    if field_diffs and outcome is Outcome.MATCH:
        outcome = Outcome.DIFF
    return Comparison(exchange, endpoint, outcome, field_diffs)


class Forwarder:
    """A TCP forwarder to a database that a test can switch off (refusing and cutting connections) and on again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(sink)
            sink.transport.abort()


@contextlib.asynccontextmanager
async def postgres_schema(url: str) -> AsyncIterator[Database]:
    """A fresh schema on the test PostgreSQL, dropped afterwards, so concurrent runs never share tables."""
    async with fresh_schema(url) as schema:
        yield Database(url, schema)
