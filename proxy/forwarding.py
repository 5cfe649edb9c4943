"""Forwarding: one aiohttp connection pool per upstream app; send one request, read its answer within bounds.

The one module that touches aiohttp's exceptions. They leave it as `UpstreamUnavailable` or `UpstreamTimeout`
(`proxy.errors`) whose `kind` is the exchange's `ErrorKind`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from diffs.exchange import ErrorKind
from proxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

RawResponseHeaders = tuple[tuple[bytes, bytes], ...]
Body = bytes | AsyncIterable[bytes] | None
STREAM_CHUNK = 64 * 1024
# Idle pooled connections are closed before the upstream would close them (uvicorn: 5 s), so a request is never
# written to a connection the upstream is closing at that moment (it would fail as a reset).
KEEPALIVE_SECONDS = 4.0
# Consulted by aiohttp after `update_auto_headers`: keeps it from adding a Content-Type for a body.
_NO_AUTO_HEADERS: CIMultiDict[None] = CIMultiDict((("Content-Type", None),))
_BODYLESS_STATUS = frozenset((204, 304))
# Deadlines are asyncio.timeout in `send` (and per chunk in `BodyStream`): aiohttp's own per-read timers would
# be rescheduled on every socket read, for nothing.
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None)


class ForwardedRequest(aiohttp.ClientRequest):
    """A request that carries only the client's headers.

    aiohttp adds Accept, Accept-Encoding, User-Agent and Content-Type when the caller sends none; a proxy must not.
    Doing it here rather than with `skip_auto_headers` also spares the copy of the headers aiohttp makes for that.
    """

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = _NO_AUTO_HEADERS


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

    def __init__(self, upstream: Upstream, response: aiohttp.ClientResponse, timeout: float) -> None:
        self._upstream = upstream
        self._response = response
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                # Each chunk within the timeout, not the whole body: a large body to a slow client takes long.
                async with asyncio.timeout(self._timeout):
                    chunk = await content.read(STREAM_CHUNK)
                if not chunk:
                    return
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._upstream.failure(exc, self._timeout) from exc

    async def aclose(self) -> None:
        self._response.release()


class Upstream:
    """One upstream app (v1, v2 or the secondary) and its keep-alive connection pool."""

    def __init__(self, app: str, base_url: str, *, connections: int = 0, keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.app = app
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self._connections = connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Upstream({self.app!r}, {self.base_url!r})"

    async def open(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self._connections, limit_per_host=0, keepalive_timeout=self._keepalive, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # compressed bodies pass through byte for byte
            cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies must never reach another's request
            request_class=ForwardedRequest,
            timeout=_NO_TIMEOUT,
            trust_env=False,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def failure(self, exc: BaseException, timeout: float) -> UpstreamError:
        """Map an aiohttp or socket failure to ours."""
        where = f"{self.app} ({self.base_url})"
        if isinstance(exc, TimeoutError):
            return TimedOut(self.app, f"{where} did not answer within {timeout:g} s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            if isinstance(exc.os_error, ConnectionRefusedError):
                return ConnectFailed(self.app, f"{where} refused the connection")
            return ConnectFailed(self.app, f"{where} could not be reached: {exc.os_error.strerror or exc}")
        if isinstance(exc, aiohttp.ClientResponseError):
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
        discarded (the connection is closed rather than read to the end).
        """
        session = self._session
        if session is None:
            raise RuntimeError(f"{self!r} is not open")
        started = time.perf_counter()
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(timeout):
                response = await session.request(
                    method,
                    URL(self.base_url + target, encoded=True),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                )
                length = response.content_length
                bodyless = method == "HEAD" or response.status in _BODYLESS_STATUS
                if bodyless or (length is not None and length <= max_body):
                    data = await response.read()
                    return Answer(response.status, response.raw_headers, data, time.perf_counter() - started)
                prefix = bytearray()
                if length is None:
                    async for chunk in response.content.iter_any():
                        prefix += chunk
                        if len(prefix) > max_body:
                            break
                    else:
                        response.release()
                        return Answer(
                            response.status, response.raw_headers, bytes(prefix), time.perf_counter() - started
                        )
            latency = time.perf_counter() - started
            if stream:
                rest = BodyStream(self, response, timeout)
                held, response = response, None  # the stream owns it now
                return Answer(held.status, held.raw_headers, bytes(prefix), latency, truncated=True, rest=rest)
            return Answer(response.status, response.raw_headers, b"", latency, truncated=True)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self.failure(exc, timeout) from exc
        finally:
            if response is not None and not response.closed:
                response.close()
