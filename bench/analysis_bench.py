"""`python -m bench.analysis_bench`: what one exchange costs the analysis process (CPU), frame to stored verdict.

Frames as the data plane writes them (proxy.analysis.wire) go through a Unix socket into the analysis process's own
loop (`proxy.analysis.process.consume`) and `Analyzer`, on a SQLite store in a temporary directory. The clock is
the process's CPU time (every thread: the loop and SQLite's, less the thread that feeds the socket), from the first
frame until the last exchange is written. Stages are timed apart too: decoding a frame (`wire.split` +
`wire.read_exchange`), and decoding plus `Analyzer.exchange` without the socket. Cases: byte-identical 1 KiB bodies
(the usual case), 1 KiB bodies with one field changed, byte-identical 700 KiB bodies. Each exchange has its own id
and path (one endpoint template), as under load. The clock starts after a warm-up of `WARM_UP` exchanges of the
same case, which fills retention's example slots of the hour: what is measured is the steady state, where exchanges
are counted, not kept.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from diffs.exchange import Exchange, RecordedRequest, Role, SideResponse
from diffs.storage import Store
from proxy.analysis import process, wire
from proxy.analysis.analyzer import Analyzer
from proxy.config import Settings, load_settings

Case = Callable[[int], Exchange]
WARM_UP = 64
"""Exchanges analysed and written before the clock starts (more than any example quota of one endpoint)."""


def _body(kib: int, changed: bool = False) -> bytes:
    items, size, i = [], 0, 0
    while size < kib * 1024:
        items.append({"id": i, "name": f"Item {i}", "price": f"{i % 1000 / 10:.2f}"})
        size += 40
        i += 1
    if changed:
        items[0]["price"] = "999.99"
    return orjson.dumps({"items": items})


def _case(primary_body: bytes, shadow_body: bytes) -> Case:
    headers = (("content-type", "application/json"), ("x-request-id", "bench"))
    started = datetime.now(UTC)

    def make(n: int) -> Exchange:
        request = RecordedRequest("GET", f"/api/orders/{n}", "", (("accept", "*/*"),), b"")
        primary = SideResponse(Role.PRIMARY, "v1", 200, headers, primary_body, 3.2)
        shadow = SideResponse(Role.SHADOW, "v2", 200, headers, bytes(shadow_body), 2.9)  # its own object, as read
        return Exchange(f"bench-{n}", started, "orders", request, primary, shadow)

    return make


def cases() -> dict[str, Case]:
    small, big = _body(1), _body(700)
    return {
        "equal 1 KiB bodies": _case(small, small),
        "1 KiB bodies, one field differs": _case(small, _body(1, changed=True)),
        "equal 700 KiB bodies": _case(big, big),
    }


def _frames(make: Case, count: int) -> list[bytes]:
    return [b"".join(wire.exchange_parts(make(n))) for n in range(count)]


def _settings(directory: Path) -> Settings:
    return load_settings(overrides={"database_url": f"sqlite+aiosqlite:///{directory / 'store.db'}"}, environ={})


def decode_cost(frames: list[bytes]) -> float:
    """µs CPU per frame for `wire.split` + `wire.read_exchange` (the frame without its length prefix)."""
    payloads = [f[4:] for f in frames]
    started = time.process_time()
    for payload in payloads:
        _, meta, bodies = wire.split(payload)
        wire.read_exchange(meta, bodies)
    return (time.process_time() - started) / len(frames) * 1e6


async def _analyzer(directory: Path, make: Case) -> tuple[Analyzer, Store]:
    """An analyzer on a fresh store, warmed up: its example slots for `make`'s endpoint are taken."""
    settings = _settings(directory)
    store = await Store.from_settings(settings)
    analyzer = Analyzer(settings, store)
    await analyzer.start()
    for n in range(WARM_UP):
        analyzer.exchange(make(-1 - n))
    await analyzer.writer.flush()
    return analyzer, store


async def analyze_cost(make: Case, frames: list[bytes]) -> float:
    """µs CPU per frame for decoding, `Analyzer.exchange` and writing (rollups and the examples kept), no socket."""
    with tempfile.TemporaryDirectory() as directory:
        analyzer, store = await _analyzer(Path(directory), make)
        try:
            payloads = [f[4:] for f in frames]
            started = time.process_time()
            for n, payload in enumerate(payloads):
                _, meta, bodies = wire.split(payload)
                analyzer.exchange(wire.read_exchange(meta, bodies))
                if n % 64 == 63:
                    await asyncio.sleep(0)  # let the writer run, as the process does between frames
            await analyzer.writer.flush()
            spent = time.process_time() - started
        finally:
            await analyzer.aclose(5)
            await store.close()
    return spent / len(frames) * 1e6


async def process_cost(make: Case, frames: list[bytes]) -> float:
    """µs CPU per frame for the analysis process's loop: frames read from a Unix socket, analysed and written."""
    with tempfile.TemporaryDirectory() as directory:
        analyzer, store = await _analyzer(Path(directory), make)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        blob = b"".join(frames)
        feeding = [0.0]

        def feed() -> None:  # the data plane's side: its CPU is taken off the process's below
            started = time.thread_time()
            theirs.sendall(blob)
            theirs.shutdown(socket.SHUT_WR)
            feeding[0] = time.thread_time() - started

        try:
            inbound = await process.connect(ours)
            feeder = threading.Thread(target=feed, daemon=True)
            started = time.process_time()
            feeder.start()
            await process.consume(inbound, analyzer)
            await analyzer.writer.flush()
            feeder.join(5)
            spent = time.process_time() - started - feeding[0]
            inbound.transport.close()
        finally:
            theirs.close()
            await analyzer.aclose(5)
            await store.close()
    return spent / len(frames) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="exchanges per 1 KiB case (700 KiB: a tenth)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is shown")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    print("| exchange | decode | decode + analyse + store | process loop (socket) |\n|---|---:|---:|---:|")
    for label, make in cases().items():
        count = args.count // 10 if "700" in label else args.count
        frames = _frames(make, count)
        decode = min(decode_cost(frames) for _ in range(args.repeat))
        analyse = min(run(analyze_cost(make, frames)) for _ in range(args.repeat))
        loop = min(run(process_cost(make, frames)) for _ in range(args.repeat))
        print(f"| {label} | {decode:,.1f} | {analyse:,.1f} | {loop:,.1f} |")


if __name__ == "__main__":
    main()
