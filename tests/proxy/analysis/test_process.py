"""proxy.analysis.process.Inbound: frames come out whole and in order however the socket cuts them."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

from proxy.analysis import process, wire


def frames(count: int, rng: random.Random) -> list[tuple[int, Any, bytes]]:
    sizes = [0, 1, 3, 700, 5_000, process.READ - 1, process.READ + 7, process.BUFFER + 3, 900 * 1024]
    out = []
    for n in range(count):
        body = rng.randbytes(rng.choice(sizes))
        out.append((wire.EXCHANGE if n % 3 else wire.PAIRS, {"n": n, "size": len(body)}, body))
    return out


async def feed(sock: socket.socket, data: bytes, rng: random.Random) -> None:
    """Writes `data` in pieces of random sizes (a few bytes to a few hundred KiB), letting the reader run between."""
    loop = asyncio.get_running_loop()
    at = 0
    while at < len(data):
        piece = rng.choice((1, 3, 4, 5, 17, 1000, 70_000, 300_000))
        await loop.sock_sendall(sock, data[at : at + piece])
        at += piece
        await asyncio.sleep(0)
    sock.shutdown(socket.SHUT_WR)


async def test_frames_cut_anywhere_come_out_whole_in_order() -> None:
    rng = random.Random(5)
    sent = frames(60, rng)
    settings = (wire.SETTINGS, None, b"pickled settings")
    blob = b"".join(
        b"".join(wire.frame(kind, b"" if meta is None else wire.orjson.dumps(meta), body))
        for kind, meta, body in [settings, *sent]
    )
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.setblocking(False)
    inbound = await process.connect(ours)
    try:
        feeding = asyncio.create_task(feed(theirs, blob, rng))
        first = await inbound.first()
        assert first == settings
        await asyncio.sleep(0.05)  # frames arrive meanwhile; they wait for a handler, none is lost
        got: list[tuple[int, Any, bytes]] = []
        inbound.handle(lambda kind, meta, bodies: got.append((kind, meta, bytes(bodies))))
        await asyncio.wait_for(inbound.done, 30)
        await feeding
    finally:
        inbound.transport.close()
        theirs.close()
    assert [(k, m) for k, m, _ in got] == [(k, m) for k, m, _ in sent]
    assert [b for _, _, b in got] == [b for _, _, b in sent]


async def test_a_handler_that_fails_ends_the_stream_with_its_error() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    inbound = await process.connect(ours)

    def fail(kind: int, meta: Any, bodies: memoryview) -> None:
        raise ValueError("bad frame")

    try:
        inbound.handle(fail)
        theirs.sendall(b"".join(wire.frame(wire.EXCHANGE, b"[1]", b"x")))
        try:
            await asyncio.wait_for(inbound.done, 5)
        except ValueError as exc:
            assert str(exc) == "bad frame"
        else:
            raise AssertionError("the handler's error was not raised")
    finally:
        inbound.transport.close()
        theirs.close()
