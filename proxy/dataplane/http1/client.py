"""A lean HTTP/1.1 client for the hot path: keep-alive connections to one upstream, responses parsed by httptools.

Why not aiohttp here (it was the hot path's client until this module): a proxied request makes two upstream calls,
and aiohttp spends ~70 µs of CPU on each (measured on the benchmark's stand-in, 16 in flight) on machinery the proxy
does not use: cookie jars, redirects, auto headers, decompression, tracing, timers per read. One request on an
`asyncio.Protocol` with httptools (uvicorn's own parser) costs ~15 µs. What is left is only what a proxy needs:

- one request at a time per connection; idle connections reused newest first and closed when they expire: after
  `keepalive` seconds, or sooner when the upstream announced `Keep-Alive: timeout=N` (a sweep closes every expired
  one, so a burst does not leave its sockets open);
- the body read with back-pressure: reading pauses while more than `HIGH_WATER` bytes wait for the consumer and
  resumes whenever the consumer needs more;
- a request body as bytes, or streamed (with the client's Content-Length, else chunked);
- a response held to `Limits`: the head's size and field count, the number of interim (1xx) responses; trailers
  kept apart from the head; a 101 (never asked for), or a status outside 100-599, is an invalid response;
- failures as `ConnectFailed`, `ConnectionLost` (reset, early close, not HTTP) and no timeout of its own: the caller
  bounds each call with `asyncio.timeout`, and any call that does not finish cleanly closes its connection.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterable
from dataclasses import dataclass

import httptools

from proxy.dataplane.http1 import wire

Headers = list[tuple[str, str]]
RawHeaders = tuple[tuple[bytes, bytes], ...]
# Reading pauses when this much body is buffered and nobody reads it; resumes below the low mark.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# A small request body goes out in the same write as the head.
_JOIN_LIMIT = 64 * 1024
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
_NO_LENGTH_STATUS = frozenset((204, 304))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one upstream response may hold before it counts as invalid."""

    max_head: int = 32 * 1024
    """Bytes of status line and header fields (and of the interim responses before them)."""
    max_fields: int = 100
    """Header fields in the head; also trailer fields after a chunked body."""
    max_interim: int = 10
    """1xx responses before the final one (100 Continue, 103 Early Hints)."""


class ConnectFailed(Exception):
    """No connection could be made; `os_error` says why."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(os_error.strerror or str(os_error))
        self.os_error = os_error


class ConnectionLost(Exception):
    """The connection broke before the response was complete; `invalid` when the peer did not speak HTTP."""

    def __init__(self, message: str, *, invalid: bool = False, sent_nothing: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid
        self.sent_nothing = sent_nothing
        """Not one byte of the response arrived: a stale pooled connection, safe to retry when idempotent."""


class _Invalid(Exception):
    """Raised inside a parser callback to stop parsing an invalid response."""


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time. The pool owns it between requests."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._limits = pool.limits
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.expires = 0.0
        """When an idle connection is closed rather than reused (loop time)."""
        self.keepalive_hint: float | None = None
        """The upstream's own idle timeout, when it announced one (`Keep-Alive: timeout=N`)."""
        self.used = False
        # The current response; reset by `begin`.
        self._parser: httptools.HttpResponseParser | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.content_length: int | None = None
        self.head_done = False
        self.complete = False
        self.reusable = False
        self._body_left = 0
        """Body bytes still to come of a response with a Content-Length: those reads skip the parser (below)."""
        self._keep_alive = False
        self._head_only = False
        self._informational = False
        self._interim = 0
        self._head_bytes = 0
        self._head_size = 0
        self._trailer_size = 0
        self._read_size = 0
        self._in_trailers = False
        self._until_eof = False
        self._has_length = False
        self._chunked = False
        self._close_token = False
        self._received = False
        self._error: ConnectionLost | None = None
        self._invalid: str | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._want = 0
        self._reading_paused = False
        self._extra = False
        self._spoiled = False
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        left = self._body_left
        if left and self._parser is not None:
            # Inside a body of known length, every byte is body: kept as received, neither parsed nor copied by
            # httptools (a 700 KiB body costs ~3 copies less). The parser is not fed again for this response.
            self._take_body(data, left)
            return
        parser = self._parser
        if parser is None or self.complete:
            # Bytes nobody asked for: the connection cannot be trusted with another request.
            self._spoiled = True
            if parser is None:
                self._close()
            return
        self._received = True
        head_done = self.head_done
        self._read_size = len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._invalid = self._invalid or "switched protocols without being asked to"
        except httptools.HttpParserError:
            self._invalid = self._invalid or "sent an invalid HTTP response"
        if not head_done and not self.head_done and self._invalid is None:
            # Counted per read, not per field: a single huge field is refused before it is held whole.
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_head:
                self._invalid = f"sent a response head over {self._limits.max_head} bytes"
        if self._invalid is not None:
            self._spoiled = True
            self._fail(ConnectionLost(self._invalid, invalid=True))
            self._close()
            return
        if (
            not self.complete
            and self.buffered > HIGH_WATER
            and self.buffered > self._want
            and not self._reading_paused
            and self.transport is not None
        ):
            self._reading_paused = True
            self.transport.pause_reading()

    def _take_body(self, data: bytes, left: int) -> None:
        size = len(data)
        if size > left:
            # Bytes after the body: a response nobody asked for follows; the connection is not reused.
            self._spoiled = True
            data, size = data[:left], left
        self._received = True
        self._chunks.append(data)
        self.buffered += size
        self._body_left = left = left - size
        if not left:
            self._message_complete(reusable=self._keep_alive)
            return
        self._wake_if(self.buffered > self._want)
        if self.buffered > HIGH_WATER and self.buffered > self._want and not self._reading_paused:
            if self.transport is not None:
                self._reading_paused = True
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if self._parser is not None and not self.complete:
            if self._until_eof and self.head_done and exc is None:
                self._message_complete(reusable=False)
            else:
                self._fail(ConnectionLost("closed the connection", sent_nothing=not self._received))
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionLost("closed the connection while the request was sent"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            # A second response to one request: whatever it is, the connection is done after this one.
            self._extra = True
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._extra:
            return
        value = value.rstrip(b" \t")  # llhttp drops leading whitespace only; a field value has neither (RFC 9112)
        if self._in_trailers:
            # Trailer fields stay trailers: never merged into the head the client gets.
            self.trailers.append((name, value))
            self._trailer_size += len(name) + len(value)
            if len(self.trailers) > self._limits.max_fields or self._trailer_size > self._limits.max_head:
                self._invalid = f"sent trailers over {self._limits.max_fields} fields or {self._limits.max_head} bytes"
                raise _Invalid
            return
        self.headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            self._has_length = True
            self.content_length = int(value) if value.isdigit() else None
        elif lower == b"transfer-encoding":
            # Only chunked, once: another coding would reach the client undeclared (TE is hop-by-hop).
            if self._chunked or value.strip().lower() != b"chunked":
                self._invalid = "sent a Transfer-Encoding other than chunked"
                raise _Invalid
            self._chunked = True
        elif lower == b"connection":
            if b"close" in value.lower():
                self._close_token = True
        elif lower == b"keep-alive":
            self.keepalive_hint = _keepalive_timeout(value)

    def on_headers_complete(self) -> None:
        if self._extra:
            return
        assert self._parser is not None
        headers, limits = self.headers, self._limits
        if len(headers) > limits.max_fields:
            self._invalid = f"sent more than {limits.max_fields} header fields"
            raise _Invalid
        if self._head_bytes + self._read_size > limits.max_head:
            # A head that may have come whole in one large read: measured here, once (small reads never get here).
            self._head_size += sum(len(name) + len(value) + 4 for name, value in headers)
            if self._head_size > limits.max_head:
                self._invalid = f"sent a response head over {limits.max_head} bytes"
                raise _Invalid
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:
            self._invalid = f"sent status {status:03d}, outside 100-599"
            raise _Invalid
        if status < 200:
            if status == 101:
                # The proxy never asks to switch protocols (Upgrade is hop-by-hop): what follows is not HTTP.
                self._invalid = "switched protocols without being asked to"
                raise _Invalid
            self._interim += 1
            if self._interim > self._limits.max_interim:
                self._invalid = f"sent more than {self._limits.max_interim} interim responses"
                raise _Invalid
            self._informational = True  # 100 Continue, 103 Early Hints: wait for the real response
            self.headers = []
            self._has_length = self._chunked = self._close_token = False
            self.keepalive_hint = None
            return
        self.status = status
        self.head_done = True
        self._in_trailers = True
        self._until_eof = not self._has_length and not self._chunked and status not in _NO_LENGTH_STATUS
        if (
            self._has_length
            and self.content_length
            and not self._chunked
            and not self._head_only
            and status not in _NO_LENGTH_STATUS
        ):
            # The parser counts this body down from here (on_body); later reads bypass it (`data_received`).
            self._body_left = self.content_length
            self._keep_alive = self._parser.should_keep_alive()
        if self._head_only:
            # A HEAD response has no body whatever its length says: it ends here. The next response gets a parser
            # of its own, so the connection is reusable on the head's own terms.
            version = self._parser.get_http_version()
            self._message_complete(reusable=not self._close_token and version == "1.1")
        else:
            self._wake_if(True)

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self._spoiled = True  # a body after a HEAD response: the stream is out of step
            return
        if self._body_left:
            self._body_left -= len(body)
        self._chunks.append(body)
        self.buffered += len(body)
        self._wake_if(self.buffered > self._want)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if not self.complete and not self._extra:
            assert self._parser is not None
            self._message_complete(reusable=self._parser.should_keep_alive())

    # the request, for `Pool.request` and `Response`

    def begin(self, method: str) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers = []
        self.trailers = []
        self._chunks.clear()
        self.buffered = 0
        self.content_length = None
        self._body_left = 0
        self.head_done = self.complete = self.reusable = False
        self._head_only = method == "HEAD"
        self._informational = self._until_eof = self._has_length = self._chunked = self._received = False
        self._in_trailers = self._close_token = self._extra = self._spoiled = False
        self._interim = self._head_bytes = self._head_size = self._trailer_size = 0
        self._error = None
        self._invalid = None
        self._want = 0

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise ConnectionLost("closed the connection", sent_nothing=True)
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionLost("closed the connection while the request was sent")
        if self._write_paused:
            self._drain = self._loop.create_future()
            await self._drain

    async def wait(self, want: int) -> None:
        """Until the head has arrived and more than `want` body bytes are buffered (or the body is complete)."""
        while True:
            if self._error is not None:
                raise self._error
            if self.complete or (self.head_done and self.buffered > want):
                self._want = 0
                return
            self._want = want
            if self._reading_paused:
                # Paused while nobody asked for more; now someone does (without this, a body between the high
                # water mark and `want` would wait for ever).
                self._resume(force=True)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take(self) -> bytes:
        """Every body byte buffered so far."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        self._resume()
        return data

    def take_some(self, limit: int) -> bytes:
        """Up to about `limit` buffered body bytes (whole chunks, at least one)."""
        chunks = self._chunks
        parts = [chunks.popleft()]
        size = len(parts[0])
        while chunks and size + len(chunks[0]) <= limit:
            part = chunks.popleft()
            parts.append(part)
            size += len(part)
        self.buffered -= size
        self._resume()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _resume(self, *, force: bool = False) -> None:
        if (
            self._reading_paused
            and (force or self.buffered < LOW_WATER)
            and self.transport is not None
            and not self.closed
        ):
            self._reading_paused = False
            self.transport.resume_reading()

    def _message_complete(self, *, reusable: bool) -> None:
        self.complete = True
        self.reusable = reusable
        self._wake_if(True)

    def spoil(self) -> None:
        """The request was not sent whole: the connection must not carry another one."""
        self._spoiled = True

    def fail(self, error: ConnectionLost) -> None:
        """Fail the request in progress with `error` and close the connection."""
        self._spoiled = True
        self._fail(error)
        self._close()

    def _fail(self, error: ConnectionLost) -> None:
        if self._error is None and not self.complete:
            self._error = error
            self._wake_if(True)

    def _wake_if(self, condition: bool) -> None:
        waiter = self._waiter
        if condition and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def finish(self) -> None:
        """Back to the pool when the response was read to its end and the upstream keeps the connection open."""
        self._parser = None
        if self.complete and self.reusable and not self._spoiled and not self.closed and not self._reading_paused:
            self._pool.put_back(self)
        else:
            self.abort()

    def abort(self) -> None:
        self._parser = None
        self._close()
        self._pool.forget(self)


def _keepalive_timeout(value: bytes) -> float | None:
    """`timeout=N` from a Keep-Alive header (RFC 2068 §19.7.1.1), else None."""
    for part in value.split(b","):
        key, _, number = part.strip().partition(b"=")
        if key.strip().lower() == b"timeout":
            try:
                seconds = float(number.strip())
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


class Response:
    """The head of an upstream's answer; its body is read with `read_all`, `read_up_to` or `read_chunk`, then
    `close()` (back to the pool if it was read to its end) or `abort()` (never reused)."""

    __slots__ = ("_connection", "status", "headers", "_closed")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.status = connection.status
        self.headers: RawHeaders = tuple(connection.headers)
        self._closed = False

    @property
    def complete(self) -> bool:
        return self._connection.complete

    @property
    def content_length(self) -> int | None:
        return self._connection.content_length

    @property
    def trailers(self) -> RawHeaders:
        """Trailer fields after a chunked body (known once it is complete); never part of `headers`."""
        return tuple(self._connection.trailers)

    def take_buffered(self) -> bytes:
        """The body bytes that have arrived so far, without waiting."""
        return self._connection.take()

    async def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        """(The body, True) if it is at most `limit` bytes, else (a prefix of it, possibly empty, False)."""
        connection = self._connection
        length = connection.content_length
        if length is not None and length > limit and not connection.complete:
            return b"", False
        await connection.wait(limit)
        data = connection.take()
        return data, connection.complete and len(data) <= limit

    async def read_all(self) -> bytes:
        connection = self._connection
        await connection.wait(1 << 62)
        return connection.take()

    async def read_chunk(self, limit: int) -> bytes:
        """The next part of the body (up to about `limit` bytes), or b"" at its end."""
        connection = self._connection
        await connection.wait(0)
        if connection.buffered:
            return connection.take_some(limit)
        return b""

    def close(self) -> None:
        """Done with it: the connection goes back to the pool if the body was read to its end, else is closed."""
        if not self._closed:
            self._closed = True
            self._connection.finish()

    def abort(self) -> None:
        """Done with it, and its connection is closed whatever state it is in (the client went away)."""
        if not self._closed:
            self._closed = True
            self._connection.abort()


class Pool:
    """Keep-alive connections to one upstream (scheme, host, port)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool | ssl.SSLContext = False,
        limit: int = 0,
        keepalive: float = 4.0,
        limits: Limits = Limits(),
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host
        self.port = port
        if isinstance(tls, ssl.SSLContext):
            self._ssl: ssl.SSLContext | None = tls
        else:
            self._ssl = ssl.create_default_context() if tls else None
        self.limits = limits
        self._limit = limit
        self._keepalive = keepalive
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._idle) + len(self._busy)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def request(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes | AsyncIterable[bytes] | None,
    ) -> Response:
        """Send the request and wait for the response's head. Cancelling it (a timeout) closes the connection.

        `wire.UnsafeRequest` (before anything is sent) when the head would not be valid HTTP/1.1.
        """
        head, chunked = _head(method, target, headers, body)
        # A pooled connection the upstream closed just now fails with nothing received: retry once on a fresh one
        # when that cannot repeat a side effect. A POST is never sent twice.
        retry = method in _IDEMPOTENT and not isinstance(body, AsyncIterable)
        while True:
            connection = await self._acquire()
            reused = connection.used
            connection.used = True
            try:
                return await self._exchange(connection, method, head, body, chunked)
            except ConnectionLost as exc:
                connection.abort()
                if retry and reused and exc.sent_nothing:
                    retry = False
                    continue
                raise
            except BaseException:
                connection.abort()
                raise

    async def _exchange(
        self,
        connection: Connection,
        method: str,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        chunked: bool,
    ) -> Response:
        connection.begin(method)
        if isinstance(body, AsyncIterable):
            connection.write(head)
            sender = self.loop.create_task(_send_body(connection, body, chunked=chunked))
            try:
                await connection.wait(-1)  # a failed send fails this wait too
            finally:
                if not sender.done():
                    # Answered (or given up) before the whole body was sent: the connection cannot be reused.
                    sender.cancel()
                    connection.spoil()
                elif not sender.cancelled():
                    sender.exception()  # retrieved here; the wait above has already raised it if it mattered
        else:
            if body and len(body) > _JOIN_LIMIT:
                connection.write(head)
                connection.write(body)
            else:
                connection.write(head + body if body else head)
            await connection.wait(-1)
        return Response(connection)

    async def _acquire(self) -> Connection:
        if self._closed:
            raise RuntimeError("the pool is closed")
        idle = self._idle
        if idle:
            now = self.loop.time()
            while idle:
                connection = idle.pop()
                if connection.closed:
                    continue
                if now >= connection.expires:
                    connection.abort()
                    continue
                self._busy.add(connection)
                return connection
        while self._limit and len(self._busy) >= self._limit:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled before it ran: the turn goes to the next waiter
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            if idle:
                return await self._acquire()
        connection = Connection(self)
        self._busy.add(connection)
        try:
            await self.loop.create_connection(
                lambda: connection,
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self._ssl else None,
            )
        except OSError as exc:
            self.forget(connection)
            raise ConnectFailed(exc) from exc
        except BaseException:
            self.forget(connection)
            raise
        return connection

    def put_back(self, connection: Connection) -> None:
        self._busy.discard(connection)
        if self._closed:
            connection.abort()
            return
        keep = self._keepalive
        hint = connection.keepalive_hint
        if hint is not None:
            # Close before the upstream does: a request must never cross the upstream's own idle close.
            keep = min(keep, hint - 1.0 if hint >= 2.0 else hint / 2)
        connection.expires = self.loop.time() + keep
        self._idle.append(connection)
        if self._sweep is None:
            self._sweep = self.loop.call_at(connection.expires, self._close_expired)
        self._wake_one()

    def _close_expired(self) -> None:
        """Close every idle connection past its time (not only the one a request would pop next)."""
        self._sweep = None
        now = self.loop.time()
        for connection in [c for c in self._idle if c.expires <= now or c.closed]:
            connection.abort()
        if self._idle and not self._closed:
            self._sweep = self.loop.call_at(min(c.expires for c in self._idle), self._close_expired)

    def forget(self, connection: Connection) -> None:
        if connection in self._busy:
            self._busy.discard(connection)
            self._wake_one()
        elif connection in self._idle:
            self._idle.remove(connection)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close every connection, idle or busy."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connection in [*self._idle, *self._busy]:
            connection.abort()
        self._idle.clear()
        self._busy.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the pool is closed"))
        self._waiters.clear()


async def _send_body(connection: Connection, body: AsyncIterable[bytes], *, chunked: bool) -> None:
    try:
        async for chunk in body:
            if not chunk:
                continue
            connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await connection.drain()
        if chunked:
            connection.write(b"0\r\n\r\n")
    except ConnectionLost as exc:
        connection.fail(exc)
        raise
    except Exception as exc:
        # The client's body broke off (it went away): the upstream got a partial request, so the connection goes.
        error = ConnectionLost(f"got an incomplete request body ({type(exc).__name__})")
        connection.fail(error)
        raise error from exc


def _head(method: str, target: str, headers: Headers, body: bytes | AsyncIterable[bytes] | None) -> tuple[bytes, bool]:
    """The request head, and whether the body goes chunked (see `wire.request_head`)."""
    return wire.request_head(method, target, headers, body)
