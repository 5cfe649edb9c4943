"""Bytes on the wire: raw-socket upstreams that record exactly what they receive, and raw-socket clients.

An upstream here is a plain TCP server: each request it reads is parsed by h11 (a strict, independent HTTP/1.1
implementation) after its raw bytes are recorded, and a script decides what bytes go back, valid or not. A client
writes exact bytes and parses what comes back with h11 too, so neither end shares code with the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import h11

MAX_EVENT = 64 * 1024 * 1024  # the upstream must be able to record whatever the proxy forwards


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Read and drop until the peer closes (EOF or reset); False if the connection is still open after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@dataclass
class Received:
    """One request as a raw upstream read it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    """Names lower-cased by h11, values as sent, in order."""
    body: bytes
    trailers: list[tuple[str, str]]

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass
class Link:
    """One connection to a raw upstream: every byte it received and the requests parsed from them."""

    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    raw: bytearray = field(default_factory=bytearray)
    requests: list[Received] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the proxy closed (or reset) this connection."""

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def wait_closed_by_peer(self, timeout: float) -> bool:
        """Read (and drop) until the proxy closes this connection; False if it is still open after `timeout`."""
        if not await read_until_closed(self.reader, timeout):
            return False
        self.closed.set()
        return True


Script = Callable[[Received, Link], Awaitable[bytes | None]]


def answer(data: bytes) -> Script:
    """Every request is answered with these exact bytes."""

    async def script(request: Received, link: Link) -> bytes | None:
        return data

    return script


def ok(body: bytes = b"ok", *headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        b"".join(h + b"\r\n" for h in headers),
        body,
    )


class RawUpstream:
    """A TCP server that parses each request with h11 and answers with whatever bytes `script` returns."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or answer(ok())
        self.links: list[Link] = []
        self.arrived = asyncio.Event()
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def requests(self) -> list[Received]:
        return [request for link in self.links for request in link.requests]

    async def wait_requests(self, count: int, timeout: float = 5.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for link in self.links:
            link.writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = Link(writer, reader)
        self.links.append(link)
        pending = b""
        try:
            while True:
                parsed = await self._read_request(reader, link, pending)
                if parsed is None:
                    break
                request, pending = parsed
                link.requests.append(request)
                self.arrived.set()
                reply = await self.script(request, link)
                if reply is not None:
                    writer.write(reply)
                await writer.drain()
                if writer.is_closing():
                    break
        except (ConnectionError, h11.RemoteProtocolError):
            pass
        except asyncio.CancelledError:
            pass  # stopped at the end of the test: a normal end for a connection handler
        finally:
            link.closed.set()
            self.arrived.set()
            writer.close()
            self._tasks.discard(task)

    async def _read_request(
        self, reader: asyncio.StreamReader, link: Link, pending: bytes
    ) -> tuple[Received, bytes] | None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_EVENT)
        if pending:
            conn.receive_data(pending)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                link.raw += data
                conn.receive_data(data)
                if not data:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                received = Received(
                    request.method.decode(),
                    request.target.decode("latin-1"),
                    [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw_items()],
                    bytes(body),
                    [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()],
                )
                return received, conn.trailing_data[0]
            elif isinstance(event, h11.ConnectionClosed):
                return None


@dataclass
class Reply:
    """A response as a raw client parsed it (with h11)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    interim: list[int] = field(default_factory=list)

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


class RawClient:
    """One TCP connection to the proxy: write exact bytes, read responses parsed by h11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._buffer = b""

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[RawClient]:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            yield cls(reader, writer)
        finally:
            writer.transport.abort()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_reply(self, method: str = "GET", timeout: float = 5.0) -> Reply:
        """The next response; h11 is told the method so that HEAD responses are framed right."""
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_EVENT)
        conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        if self._buffer:
            conn.receive_data(self._buffer)  # (b"" would mean EOF to h11)
        interim: list[int] = []
        head: h11.Response | None = None
        body = bytearray()
        async with asyncio.timeout(timeout):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await self.reader.read(65536)
                    if not data and head is None:
                        raise ConnectionError("the proxy closed the connection without a response")
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.InformationalResponse):
                    interim.append(event.status_code)
                elif isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert head is not None
                    self._buffer = conn.trailing_data[0]
                    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers.raw_items()]
                    return Reply(head.status_code, headers, bytes(body), interim)
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("the proxy closed the connection without a response")

    async def closed_by_peer(self, timeout: float) -> bool:
        """True once the proxy has closed the connection (EOF or reset) within `timeout`, discarding what it sent."""
        return await read_until_closed(self.reader, timeout)


async def exchange(url: str, data: bytes, *, method: str = "GET", timeout: float = 5.0) -> Reply:
    """One connection, these bytes, one response."""
    async with RawClient.connect(url) as client:
        await client.send(data)
        return await client.read_reply(method, timeout)


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
