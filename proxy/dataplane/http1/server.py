"""The client-facing HTTP/1.1 protocol: uvicorn's httptools protocol held to a front proxy's limits and timeouts.

uvicorn's public configuration bounds the idle time between requests (`timeout_keep_alive`) but not how long a
request head may take, how large it may be, or what happens to request trailers; and its httptools protocol appends
trailer fields that arrive with the head to `scope["headers"]`. This thin subclass of `HttpToolsProtocol` (uvicorn
is pinned to 0.54.x in pyproject.toml for it; `tests/proxy/dataplane/http1/test_server.py` checks every hook it
relies on) adds, with nginx's defaults:

- `header_timeout`: a request head must arrive whole within it, counted from the connection's start or from the
  first byte after an idle keep-alive gap (nginx `client_header_timeout`); idle connections close silently, partial
  heads get a 408;
- a request line over `max_header_line` is a 414; a header line over it, a head over `max_header_size` or over
  `max_header_count` fields is a 431 (nginx `large_client_header_buffers 4 8k`);
- request trailers are dropped, never merged into the head;
- HTTP/1.1 without exactly one Host, or HTTP/1.0 with two, is a 400; a Transfer-Encoding other than `chunked` a 501;
- an Upgrade request is answered as plain HTTP (Upgrade is hop-by-hop) and its connection closed after the answer:
  bytes after it are never parsed as requests, never tunnelled;
- TCP_NODELAY on every connection, whatever the event loop (asyncio sets it only on sockets made with
  IPPROTO_TCP: uvicorn issue 3149);
- a client that goes away cancels the task of the request in progress, when the app registered it
  (`HANDLER_TASK`), so its upstream exchange is cancelled and that upstream connection closed;
- refusals are written, then the connection is closed after a short lingering read, so the client reads the status
  instead of a reset;
- a response start marked `BODY_FOLLOWS` (the app sends its body right after it) is held and written with the
  first body message, in one write: one send(2) a response instead of two (~15 µs of CPU a request, measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

log = logging.getLogger("shadowdiff.http")

HANDLER_TASK = "shadowdiff.handler_task"
"""Scope key: the app stores its task here to be cancelled if the client goes away before the response is done."""
CLIENT_GONE = "shadowdiff.client_gone"
"""Scope key set to True before that cancellation, so the app can tell it from any other."""
BODY_FOLLOWS = "shadowdiff.body_follows"
"""Key of an `http.response.start` message: its first body message follows at once, so the head waits to go out
with it. Without it the head is written at once (a stream's head must not wait for its first chunk)."""
LINGER_SECONDS = 2.0
"""After a refusal, how long the client's remaining bytes are read and dropped before the connection closes."""

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
}


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How long a request head may take and how large it may be (nginx's defaults)."""

    header_timeout: float = 60.0
    max_header_line: int = 8 * 1024
    """The request line, and each header line."""
    max_header_size: int = 32 * 1024
    max_header_count: int = 100


class _Refused(Exception):
    """Raised in a parser callback: the request is answered with `status` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_JOIN_LIMIT = 16 * 1024
"""Up to this size a held head and its body are joined into one buffer; above it, handed over as two (writev)."""


class _HeldHead:
    """Stands in for the transport while uvicorn makes a response head that is to wait for its body."""

    __slots__ = ("head",)

    def __init__(self) -> None:
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        self.head = data if self.head is None else self.head + data


class _HeadFirst:
    """Stands in for the transport while uvicorn writes a body: the held head goes out in the same write."""

    __slots__ = ("transport", "head")

    def __init__(self, transport: asyncio.Transport, head: bytes) -> None:
        self.transport = transport
        self.head: bytes | None = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, None
        if head is None:
            self.transport.write(data)
        elif len(data) <= _JOIN_LIMIT:
            self.transport.write(head + data)
        else:
            self.transport.writelines((head, data))

    def flush(self) -> None:
        """Write the head if no body write took it (uvicorn refused the message, or wrote nothing)."""
        head, self.head = self.head, None
        if head is not None and not self.transport.is_closing():
            self.transport.write(head)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)  # close(), is_closing(): the real transport's


class ProxyCycle(RequestResponseCycle):
    """uvicorn's request-response cycle; a start marked `BODY_FOLLOWS` is written with the first body message."""

    _held: bytes | None = None

    async def send(self, message: ASGISendEvent) -> None:
        held = self._held
        if held is not None:
            self._held = None
            transport = self.transport
            joined = _HeadFirst(transport, held)
            self.transport = joined  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
                joined.flush()
            return
        if message["type"] == "http.response.start" and message.get(BODY_FOLLOWS) and not self.response_started:
            transport = self.transport
            holder = _HeldHead()
            self.transport = holder  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            self._held = holder.head
            return
        await super().send(message)


class ProxyProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; `protocol_class(limits)` makes one for given limits."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_since: float | None = None
        """When the head in progress began (or the connection opened); None when no head is awaited."""
        self._linger: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        """Between requests or inside a head: a read that starts now is all head bytes."""
        self._head_bytes = 0
        """Bytes of the reads that started while a head was awaited (reset when a message completes): never more
        than the head's size, at most one read less."""
        self._read_size = 0
        self._head_started = False
        self._trailer_size = 0
        self._trailer_fields = 0
        self._hosts = 0
        self._chunked = False
        self._in_trailers = False
        self._refusal: _Refused | None = None
        self._discarding = False

    # connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One timer per connection, re-armed only when it fires: arming one per request would cost ~2 µs each.
        self._head_since = self.loop.time()
        self._arm_header_timer(self._head_since + self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            task = cycle.scope.get(HANDLER_TASK)
            if isinstance(task, asyncio.Task) and not task.done():
                cycle.scope[CLIENT_GONE] = True  # type: ignore[literal-required]
                task.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        self._read_size = size = len(data)
        if self._awaiting_head:
            self._head_bytes += size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse_upgrade()
            return
        except httptools.HttpParserError:
            refusal, self._refusal = self._refusal, None
            if refusal is None:
                log.debug("invalid HTTP request from %s", self.client)
                refusal = _Refused(400, "Invalid HTTP request.")
            self._refuse(refusal)
            return
        # Counted per read: a huge field is refused before httptools has held all of it.
        if self._awaiting_head and self._head_bytes > self.limits.max_header_size:
            self._refuse(_Refused(431, "Request header fields too large."))

    def shutdown(self) -> None:
        self._cancel_timers()
        super().shutdown()

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_since = self.loop.time()  # from the head's first byte, wherever in a read it starts
        self._awaiting_head = self._head_started = True
        self._hosts = 0
        self._chunked = self._in_trailers = False

    def on_url(self, url: bytes) -> None:
        self.url += url  # as uvicorn's on_url, without the call
        if len(self.url) > self.limits.max_header_line:
            self._refusal = _Refused(414, "Request-URI too long.")
            raise self._refusal

    def on_header(self, name: bytes, value: bytes) -> None:
        # Sizes and counts are checked once per head (on_headers_complete), not here: this runs for every field.
        if self._in_trailers:
            # Request trailers are dropped (the upstreams get the body without them), but bounded all the same.
            self._trailer_size += len(name) + len(value) + 4
            self._trailer_fields += 1
            limits = self.limits
            if self._trailer_fields > limits.max_header_count or self._trailer_size > limits.max_header_size:
                self._refusal = _Refused(431, "Request trailer fields too large.")
                raise self._refusal
            return
        name = name.lower()
        if name == b"host":
            self._hosts += 1
        elif name == b"transfer-encoding":
            # Only chunked, once: any other coding would be dropped on the way (nginx answers 501 too).
            if self._chunked or value.strip().lower() != b"chunked":
                self._refusal = _Refused(501, "Transfer-Encoding other than chunked is not supported.")
                raise self._refusal
            self._chunked = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        limits, headers = self.limits, self.headers
        if len(headers) > limits.max_header_count:
            self._refusal = _Refused(431, "Too many request header fields.")
            raise self._refusal
        if self._head_bytes + self._read_size > limits.max_header_line:
            # The reads this head came in could hold a line over the limit: measure (small heads never get here).
            sizes = [len(name) + len(value) + 4 for name, value in headers]
            if max(sizes, default=0) > limits.max_header_line or sum(sizes) > limits.max_header_size:
                self._refusal = _Refused(431, "Request header fields too large.")
                raise self._refusal
        hosts = self._hosts
        if hosts > 1 or (hosts == 0 and self.parser.get_http_version() == "1.1"):
            self._refusal = _Refused(400, "A request needs exactly one Host header.")
            raise self._refusal
        super().on_headers_complete()
        # uvicorn made the cycle as its own class; ours only adds to `send` (no state of its own but `_held`).
        self.cycle.__class__ = ProxyCycle
        self._awaiting_head = self._head_started = False
        self._head_since = None
        self._in_trailers = True
        self._trailer_size = self._trailer_fields = 0

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True  # the next byte begins a head
        self._head_bytes = 0

    # refusals and timeouts

    def _refuse(self, refusal: _Refused) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.more_body:
                # The request in progress broke off in its body or trailers: it cannot be answered in order.
                self._discarding = True
                self.transport.close()
                return
            # A response to an earlier request is on its way: refuse once it (and any queued behind it) is sent.
            # The latest cycle's completion means all of them are; it calls this instead of on_response_complete.
            self._discarding = True
            self._cancel_timers()

            def then_refuse() -> None:
                self.on_response_complete()
                self._write_refusal(refusal)

            cycle.on_response = then_refuse
            return
        self._write_refusal(refusal)

    def _write_refusal(self, refusal: _Refused) -> None:
        if self.transport.is_closing():
            return
        body = refusal.reason.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (refusal.status, _REASONS[refusal.status], len(body), body)
        )
        self._linger_close()

    def _linger_close(self) -> None:
        """Close after the client has read what was sent: stop writing, drop what it still sends, then close."""
        self._discarding = True
        self._cancel_timers()
        self._unset_keepalive_if_required()
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
            self._linger = self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _refuse_upgrade(self) -> None:
        """An Upgrade request: answered as plain HTTP; nothing after it on this connection is read."""
        self._discarding = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
        else:
            self.transport.close()

    def _arm_header_timer(self, when: float) -> None:
        self._header_timer = self.loop.call_at(when, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._discarding or self.transport.is_closing():
            return
        since, timeout = self._head_since, self.limits.header_timeout
        now = self.loop.time()
        if since is None or now < since + timeout:
            # No head in progress (a response is being made, or uvicorn's keep-alive timer watches the idle
            # connection), or one that still has time: look again when it would run out.
            self._arm_header_timer((now if since is None else since) + timeout)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # the next head is late: no further request on this connection
            self._discarding = True
            return
        if not self._head_started:
            self.transport.close()  # nothing asked: an idle close, as at the end of a keep-alive wait
        else:
            self._write_refusal(_Refused(408, "The request head did not arrive in time."))

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._linger):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._linger = None


def protocol_class(limits: ServerLimits) -> type[ProxyProtocol]:
    """A `ProxyProtocol` subclass bound to `limits`, for `uvicorn.Config(http=...)`."""
    return type("ProxyProtocol", (ProxyProtocol,), {"limits": limits})
