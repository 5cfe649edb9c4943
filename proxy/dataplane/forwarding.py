"""Forwarding: one keep-alive connection pool per upstream app; send one request, read its answer within bounds.

The one module that touches the HTTP client (`proxy.dataplane.http1`) and its exceptions. They leave it as
`UpstreamUnavailable` or `UpstreamTimeout` (`proxy.errors`) whose `kind` is the exchange's `ErrorKind`, or as
`UnsafeRequest` when the request was not sent because it would not have been valid HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from diffs.exchange import ErrorKind
from proxy.dataplane import http1
from proxy.errors import ConfigError, UpstreamError, UpstreamTimeout, UpstreamUnavailable

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


class UnsafeRequest(UpstreamUnavailable):
    """Not sent: a request line or header would not be valid HTTP/1.1 (a rewritten id holding CR/LF, ...)."""

    kind: ClassVar[ErrorKind] = ErrorKind.RESET


def error_kind(exc: UpstreamError) -> ErrorKind:
    kind = getattr(exc, "kind", None)
    if isinstance(kind, ErrorKind):
        return kind
    return ErrorKind.TIMEOUT if isinstance(exc, UpstreamTimeout) else ErrorKind.RESET


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How https:// upstreams are trusted and what this proxy shows them."""

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    def context(self) -> ssl.SSLContext:
        """The client context; ConfigError naming the setting when a file cannot be used."""
        try:
            context = ssl.create_default_context(cafile=self.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"Config 'upstream_ca_bundle' has value {self.ca_bundle!r}. {_why(exc)}.") from None
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert is not None:
            try:
                context.load_cert_chain(self.client_cert, self.client_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"Config 'upstream_client_cert' has value {self.client_cert!r}. {_why(exc)}."
                ) from None
        return context


class _Deadline:
    """`asyncio.timeout(delay)` for the hot path: the same outcome (the task is cancelled when `delay` runs out, and
    that cancellation leaves the block as TimeoutError unless someone else also cancelled the task), without the
    rescheduling and state machine the stdlib one carries (~2 us less a use; two uses a proxied request)."""

    __slots__ = ("_loop", "_delay", "_task", "_handle", "_expired")

    def __init__(self, delay: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._delay = delay
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False

    async def __aenter__(self) -> None:
        task = self._task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a task")
        self._handle = self._loop.call_later(self._delay, self._expire)

    def _expire(self) -> None:
        self._handle = None
        self._expired = True
        assert self._task is not None
        self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        handle = self._handle
        if handle is not None:
            handle.cancel()
            self._handle = None
        if self._expired:
            assert self._task is not None
            if self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
                raise TimeoutError


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream's response: status, headers as received, and the body (all of it, or a prefix and `rest`)."""

    status: int
    headers: RawResponseHeaders
    body: bytes
    latency: float
    """Seconds from sending to the last byte read here (to the head and what came with it, when `rest` follows)."""
    truncated: bool = False
    """The body is known to be larger than the cap: `body` is empty or a prefix, and the rest streamed or dropped."""
    rest: BodyStream | None = None
    """The body still to come, when it did not arrive whole with the head (or was over the cap)."""


class BodyStream:
    """The rest of a body, chunk by chunk as it arrives; always `close()` (read to its end) or `abort()` it."""

    def __init__(self, upstream: Upstream, response: http1.Response, timeout: float) -> None:
        self._upstream = upstream
        self._response = response
        self._timeout = timeout

    async def read(self) -> bytes:
        """The next chunk, or b"" at the end of the body; UpstreamError when the upstream fails or falls silent."""
        response = self._response
        try:
            # Each chunk within the timeout, not the whole body: a stream of events or a large body to a slow
            # client may take long; an upstream silent for the whole timeout is cut (nginx proxy_read_timeout).
            async with _Deadline(self._timeout):
                return await response.read_chunk(STREAM_CHUNK)
        except (http1.ConnectionLost, OSError, TimeoutError) as exc:
            response.abort()
            raise self._upstream.failure(exc, self._timeout) from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    def close(self) -> None:
        """Done: back to the pool when the body was read to its end, else closed."""
        self._response.close()

    async def aclose(self) -> None:
        self._response.close()

    def abort(self) -> None:
        """Stop reading and close the upstream connection (the client went away, or the stream failed)."""
        self._response.abort()


class Upstream:
    """One upstream app (v1, v2 or the secondary) and its keep-alive connection pool."""

    def __init__(
        self,
        app: str,
        base_url: str,
        *,
        connections: int = 0,
        keepalive: float = KEEPALIVE_SECONDS,
        tls: TlsOptions | None = None,
        limits: http1.Limits | None = None,
    ) -> None:
        self.app = app
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host = parts.netloc
        self.origin = f"{parts.scheme}://{parts.netloc}"
        """scheme://host:port as the upstream names itself in absolute URLs (Location, Link)."""
        self._tls = (tls or TlsOptions()).context() if parts.scheme == "https" else None
        self._address = (parts.hostname or "127.0.0.1", parts.port or (443 if self._tls else 80))
        self._prefix = parts.path
        self._connections = connections
        self._keepalive = keepalive
        self._limits = limits or http1.Limits()
        self._pool: http1.Pool | None = None

    def __repr__(self) -> str:
        return f"Upstream({self.app!r}, {self.base_url!r})"

    async def open(self) -> None:
        if self._pool is None:
            host, port = self._address
            self._pool = http1.Pool(
                host,
                port,
                tls=self._tls or False,
                limit=self._connections,
                keepalive=self._keepalive,
                limits=self._limits,
            )

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
        if isinstance(exc, http1.UnsafeRequest):
            return UnsafeRequest(self.app, f"request to {where} not sent: {exc}")
        if isinstance(exc, http1.ConnectionLost) and exc.invalid:
            return ConnectionLost(self.app, f"{where} sent an invalid HTTP response ({exc})")
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
        wait_body: bool = True,
    ) -> Answer:
        """Send `method target` and read the answer within `timeout` seconds.

        `wait_body`: the body is read (up to `max_body` bytes) before returning; a body above `max_body` is handed
        back as `rest` to stream when `stream` is true, or else discarded (the connection is closed rather than read
        to the end). Without `wait_body` (`stream` must then be true), a body of unknown length is not waited for:
        what came with the head is `body`, and `rest` streams the remainder as it arrives. `headers` without a Host
        get the upstream's own host:port.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError(f"{self!r} is not open")
        if not any(len(name) == 4 and name.lower() == "host" for name, _ in headers):
            headers = [*headers, ("host", self.host)]
        started = time.perf_counter()
        response: http1.Response | None = None
        try:
            async with _Deadline(timeout):
                response = await pool.request(method, self._prefix + target, headers, body)
                length = response.content_length
                if wait_body or (length is not None and length <= max_body):
                    # A known, small body is read whole (one response to the client, with its length): streaming
                    # is for bodies of unknown length (events) and bodies over the cap.
                    data, whole = await response.read_up_to(max_body)
                else:
                    data, whole = response.take_buffered(), response.complete
            latency = time.perf_counter() - started
            if whole:
                # Arrived whole with the head, yet over the cap: relayed whole, but not a comparable copy.
                return Answer(response.status, response.headers, data, latency, truncated=len(data) > max_body)
            if stream:
                rest = BodyStream(self, response, timeout)
                held, response = response, None  # the stream owns it now
                return Answer(held.status, held.headers, data, latency, truncated=wait_body, rest=rest)
            return Answer(response.status, response.headers, b"", latency, truncated=True)
        except (http1.ConnectFailed, http1.ConnectionLost, http1.UnsafeRequest, OSError, TimeoutError) as exc:
            raise self.failure(exc, timeout) from exc
        finally:
            if response is not None:
                response.close()
