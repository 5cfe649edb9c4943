"""Forwarding: one keep-alive connection pool per upstream app; send one request, read its answer within bounds.

The one module that touches the HTTP client (`proxy.dataplane.http1`) and its exceptions. They leave it as
`UpstreamUnavailable` or `UpstreamTimeout` (`proxy.errors`) whose `kind` is the exchange's `ErrorKind`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from diffs.exchange import ErrorKind
from proxy.dataplane import http1
from proxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

RawResponseHeaders = tuple[tuple[bytes, bytes], ...]
Body = bytes | AsyncIterable[bytes] | None
STREAM_CHUNK = 64 * 1024
# Idle pooled connections are closed before the upstream would close them (uvicorn: 5 s), so a request is never
# written to a connection the upstream is closing at that moment (it would fail as a reset).
KEEPALIVE_SECONDS = 4.0


class ConnectFailed(UpstreamUnavailable):
    kind: ClassVar[ErrorKind] = ErrorKind.CONNECT


class ConnectionLost(UpstreamUnavailable):
    """Reset, closed early, or answered with something that is not HTTP."""

    kind: ClassVar[ErrorKind] = ErrorKind.RESET


class TimedOut(UpstreamTimeout):
    kind: ClassVar[ErrorKind] = ErrorKind.TIMEOUT


def error_kind(exc: UpstreamError) -> ErrorKind:
    kind = getattr(exc, "kind", None)
    if isinstance(kind, ErrorKind):
        return kind
    return ErrorKind.TIMEOUT if isinstance(exc, UpstreamTimeout) else ErrorKind.RESET


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream's response: status, headers as received, and the body (all of it, or a prefix and `rest`)."""

    status: int
    headers: RawResponseHeaders
    body: bytes
    latency: float
    """Seconds from sending to the last byte read here (the head and prefix, when `rest` is streamed)."""
    truncated: bool = False
    """The body is larger than the cap: `body` is empty or a prefix, and the rest was streamed or discarded."""
    rest: BodyStream | None = None


class BodyStream:
    """The rest of a too-large body, streamed chunk by chunk; always `aclose()` it."""

    def __init__(self, upstream: Upstream, response: http1.Response, timeout: float) -> None:
        self._upstream = upstream
        self._response = response
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._response
        try:
            while True:
                # Each chunk within the timeout, not the whole body: a large body to a slow client takes long.
                async with asyncio.timeout(self._timeout):
                    chunk = await response.read_chunk(STREAM_CHUNK)
                if not chunk:
                    return
                yield chunk
        except (http1.ConnectionLost, OSError, TimeoutError) as exc:
            response.close()
            raise self._upstream.failure(exc, self._timeout) from exc

    async def aclose(self) -> None:
        self._response.close()


class Upstream:
    """One upstream app (v1, v2 or the secondary) and its keep-alive connection pool."""

    def __init__(self, app: str, base_url: str, *, connections: int = 0, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.app = app
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host = parts.netloc
        self._tls = parts.scheme == "https"
        self._address = (parts.hostname or "127.0.0.1", parts.port or (443 if self._tls else 80))
        self._prefix = parts.path
        self._connections = connections
        self._keepalive = keepalive
        self._pool: http1.Pool | None = None

    def __repr__(self) -> str:
        return f"Upstream({self.app!r}, {self.base_url!r})"

    async def open(self) -> None:
        if self._pool is None:
            host, port = self._address
            self._pool = http1.Pool(host, port, tls=self._tls, limit=self._connections, keepalive=self._keepalive)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()

    def failure(self, exc: BaseException, timeout: float) -> UpstreamError:
        """Map a client or socket failure to ours."""
        where = f"{self.app} ({self.base_url})"
        if isinstance(exc, TimeoutError):
            return TimedOut(self.app, f"{where} did not answer within {timeout:g} s")
        if isinstance(exc, http1.ConnectFailed):
            if isinstance(exc.os_error, ConnectionRefusedError):
                return ConnectFailed(self.app, f"{where} refused the connection")
            return ConnectFailed(self.app, f"{where} could not be reached: {exc}")
        if isinstance(exc, http1.ConnectionLost) and exc.invalid:
            return ConnectionLost(self.app, f"{where} sent an invalid HTTP response")
        return ConnectionLost(self.app, f"{where} closed the connection before the response was complete")

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Body,
        *,
        timeout: float,
        max_body: int,
        stream: bool,
    ) -> Answer:
        """Send `method target` and read the answer within `timeout` seconds.

        A body above `max_body` bytes is handed back as `rest` to stream when `stream` is true, or else
        discarded (the connection is closed rather than read to the end). `headers` without a Host get the
        upstream's own host:port.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"{self!r} is not open")
        if not any(len(name) == 4 and name.lower() == "host" for name, _ in headers):
            headers = [*headers, ("host", self.host)]
        started = time.perf_counter()
        response: http1.Response | None = None
        try:
            async with asyncio.timeout(timeout):
                response = await pool.request(method, self._prefix + target, headers, body)
                data, whole = await response.read_up_to(max_body)
            latency = time.perf_counter() - started
            if whole:
                return Answer(response.status, response.headers, data, latency)
            if stream:
                rest = BodyStream(self, response, timeout)
                held, response = response, None  # the stream owns it now
                return Answer(held.status, held.headers, data, latency, truncated=True, rest=rest)
            return Answer(response.status, response.headers, b"", latency, truncated=True)
        except (http1.ConnectFailed, http1.ConnectionLost, OSError, TimeoutError) as exc:
            raise self.failure(exc, timeout) from exc
        finally:
            if response is not None:
                response.close()
