"""A stand-in upstream: a bare `asyncio.Protocol` HTTP/1.1 server answering every request with one fixed 1 KB JSON body.

No framework, no per-request allocation beyond the parse, so it is not what the benchmark measures. It can also answer
late (`delay`) or never (`stall`), to play a sick shadow. `GET /__stats` reports how many requests it has served.
With `--big-kib N`, paths under /big answer a JSON list of about N KiB whose every item depends on `--big-seed`:
two stand-ins with different seeds differ in every item, with the same seed they answer identical bytes.
Two more paths answer differently, for the body rows: `/bench/big` a 700 KiB body with its length, `/bench/stream` a
chunked body of STREAM_CHUNKS parts, each written in its own event-loop turn after the head (a stream, not a body
that arrives whole).

    python -m bench.upstream --port 0 [--delay 2 | --stall] [--big-kib 700 --big-seed 1]    # prints "port N"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

STATS_PATH = b"/__stats"
MAX_HEAD = 64 * 1024


def _body() -> bytes:
    items = [
        {"sku": f"SKU-{i:04d}", "name": f"Benchmark item number {i}", "unit_price": "19.99", "quantity": i % 5 + 1}
        for i in range(11)
    ]
    doc = {"id": 42, "customer_id": 7, "status": "confirmed", "currency": "EUR", "items": items, "total": "899.55"}
    return json.dumps(doc, separators=(",", ":")).encode()


BODY = _body()


def _response(body: bytes, *, close: bool = False) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Server: bench-upstream\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + body


def big_body(kib: int, seed: int) -> bytes:
    """A JSON document of about `kib` KiB: items whose name, price and stock all depend on `seed`."""
    items, size, i = [], 0, 0
    while size < kib * 1024:
        item = {
            "id": i,
            "sku": f"SKU-{i:06d}",
            "name": f"Item {i}, variant {seed}",
            "price": f"{(i * 13 + seed * 7) % 10000 / 100:.2f}",
            "stock": (i * 31 + seed) % 500,
        }
        items.append(item)
        size += len(json.dumps(item, separators=(",", ":"))) + 1
        i += 1
    return json.dumps({"items": items}, separators=(",", ":")).encode()


BIG_PREFIX = b"/big"
RESPONSE = _response(BODY)
RESPONSE_CLOSE = _response(BODY, close=True)
BIG_PATH = b"/bench/big"
BIG_BODY = bytes(range(256)) * (700 * 4)  # 700 KiB
BIG_RESPONSE = _response(BIG_BODY)
STREAM_PATH = b"/bench/stream"
STREAM_CHUNKS = 8
STREAM_PART = b"data: " + b"x" * 1018 + b"\n\n"  # 1 KiB events
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nServer: bench-upstream\r\nContent-Type: text/event-stream\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
)
STREAM_CHUNK = b"%x\r\n%s\r\n" % (len(STREAM_PART), STREAM_PART)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass
class UpstreamState:
    """What every connection shares: the behaviour and the request count."""

    delay: float = 0.0
    stall: bool = False
    big: bytes = b""
    """The whole response (head and body) for paths under /big, when there is one."""
    requests: int = 0
    connections: set[_Connection] = field(default_factory=set)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parse heads (and Content-Length bodies), answer in order."""

    def __init__(self, state: UpstreamState) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self.state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._send(BAD_REQUEST, close=True)
                return
            head = bytes(self.buffer[:end]).lower()
            length = _content_length(head)
            if length is None:  # chunked or malformed: not something a GET benchmark sends
                self._send(BAD_REQUEST, close=True)
                return
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        line_end = head.find(b"\r\n")
        request_line = head if line_end < 0 else head[:line_end]
        parts = request_line.split()
        if len(parts) != 3:
            self._send(BAD_REQUEST, close=True)
            return
        close = b"\r\nconnection: close" in head or (parts[2] == b"http/1.0" and b"connection: keep-alive" not in head)
        if parts[1] == STATS_PATH:
            body = json.dumps({"requests": self.state.requests}).encode()
            self._send(_response(body, close=close), close=close)
            return
        self.state.requests += 1
        if self.state.stall:
            return
        if parts[1] == STREAM_PATH and not close and not self.state.delay:
            self._send(STREAM_HEAD)
            asyncio.get_running_loop().call_soon(self._stream, STREAM_CHUNKS)
            return
        if self.state.big and parts[1].startswith(BIG_PREFIX) and not close:
            response = self.state.big
        elif parts[1] == BIG_PATH:
            response = BIG_RESPONSE if not close else _response(BIG_BODY, close=True)
        else:
            response = RESPONSE_CLOSE if close else RESPONSE
        if self.state.delay > 0:
            asyncio.get_running_loop().call_later(self.state.delay, self._send, response, close)
        else:
            self._send(response, close=close)

    def _stream(self, left: int) -> None:
        """One part of a streamed body per event-loop turn, then the last chunk."""
        if left:
            self._send(STREAM_CHUNK)
            asyncio.get_running_loop().call_soon(self._stream, left - 1)
        else:
            self._send(b"0\r\n\r\n")

    def _send(self, data: bytes, close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if close:
            self.transport.close()


def _content_length(head: bytes) -> int | None:
    """The request body length from a lower-cased head; None when it cannot be framed by Content-Length."""
    if b"\r\ntransfer-encoding:" in head:
        return None
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    start = at + len(b"\r\ncontent-length:")
    stop = head.find(b"\r\n", start)
    raw = head[start:] if stop < 0 else head[start:stop]
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass
class RunningUpstream:
    """A started upstream: where it listens and its shared state."""

    port: int
    state: UpstreamState

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serve(
    port: int = 0, *, delay: float = 0.0, stall: bool = False, big: bytes = b""
) -> AsyncIterator[RunningUpstream]:
    """Listen on 127.0.0.1:`port` (0 picks one) until the block exits; close every connection on the way out."""
    state = UpstreamState(delay=delay, stall=stall, big=_response(big) if big else b"")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(state), "127.0.0.1", port, backlog=2048, reuse_address=True)
    try:
        bound: int = server.sockets[0].getsockname()[1]
        yield RunningUpstream(bound, state)
    finally:
        server.close()
        for connection in list(state.connections):
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()


async def _main(port: int, delay: float, stall: bool, big: bytes) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(port, delay=delay, stall=stall, big=big) as upstream:
        print(f"port {upstream.port}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Run one upstream in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="answer after this many seconds")
    parser.add_argument("--stall", action="store_true", help="read requests, never answer")
    parser.add_argument("--big-kib", type=int, default=0, help="answer paths under /big with ~N KiB of JSON")
    parser.add_argument("--big-seed", type=int, default=1, help="what the big body's items depend on")
    args = parser.parse_args(argv)
    big = big_body(args.big_kib, args.big_seed) if args.big_kib else b""
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, just slower
        asyncio.run(_main(args.port, args.delay, args.stall, big))
    else:
        uvloop.run(_main(args.port, args.delay, args.stall, big))
    sys.exit(0)


if __name__ == "__main__":
    main()
