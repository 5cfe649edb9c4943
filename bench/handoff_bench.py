"""`python -m bench.handoff_bench`: what handing one exchange to the analysis process costs the serving loop (CPU).

Encodings compared, for an exchange with 1 KiB bodies and one with 700 KiB bodies: the channel's (orjson metadata,
bodies passed on as they are: proxy.analysis.wire), pickle of the metadata with the same raw bodies, msgpack of it
(when installed), and pickle of the whole exchange (which copies every body into the pickle). Then the channel's
frames written to a Unix socket that another thread drains: encoding, the transport's writes and the kernel's copy.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from diffs.exchange import Exchange, RecordedRequest, Role, SideResponse
from proxy.analysis import wire


def _exchange(body: bytes) -> Exchange:
    headers = (("content-type", "application/json"), ("x-request-id", "bench-1"))
    request = RecordedRequest("GET", "/api/orders/7", "", (("accept", "*/*"),), b"")
    primary = SideResponse(Role.PRIMARY, "v1", 200, headers, body, 3.2)
    shadow = SideResponse(Role.SHADOW, "v2", 200, headers, body, 2.9)
    return Exchange("bench-1", datetime.now(UTC), "orders", request, primary, shadow)


def _body(kib: int) -> bytes:
    items, size, i = [], 0, 0
    while size < kib * 1024:
        items.append({"id": i, "name": f"Item {i}", "price": f"{i % 1000 / 10:.2f}"})
        size += 40
        i += 1
    return orjson.dumps({"items": items})


def _meta(exchange: Exchange) -> tuple[Any, ...]:
    def side(s: SideResponse | None) -> tuple[Any, ...] | None:
        if s is None:
            return None
        return (s.role.value, s.app, s.status, s.headers, len(s.body), s.latency_ms, s.error.value, s.body_truncated)

    r = exchange.request
    return (exchange.id, exchange.started_at.isoformat(), exchange.service, exchange.skip_reason,
            (r.method, r.path, r.query, r.headers, len(r.body), r.body_truncated),
            side(exchange.primary), side(exchange.shadow), side(exchange.secondary))  # fmt: skip


def _time(action: Callable[[], object], seconds: float) -> float:
    """µs per call, best of three runs of `seconds` / 3 each."""
    best = float("inf")
    for _ in range(3):
        calls, started = 0, time.process_time()
        deadline = started + seconds / 3
        while time.process_time() < deadline:
            for _ in range(50):
                action()
            calls += 50
        best = min(best, (time.process_time() - started) / calls * 1e6)
    return best


def encodings(exchange: Exchange) -> dict[str, Callable[[], object]]:
    cases: dict[str, Callable[[], object]] = {
        "channel: orjson metadata + raw bodies": lambda: wire.exchange_parts(exchange),
        "pickle metadata + raw bodies": lambda: pickle.dumps(_meta(exchange), 5),
        "pickle of the whole exchange": lambda: pickle.dumps(exchange, 5),
    }
    try:
        import msgpack  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        cases["msgpack metadata + raw bodies"] = lambda: msgpack.packb(_meta(exchange))
    return cases


async def _socket_cost(exchange: Exchange, count: int) -> float:
    """CPU µs per exchange on this loop for encoding and writing frames to a Unix socket drained elsewhere."""
    ours, theirs = socket.socketpair()

    def drain() -> None:
        while theirs.recv(1 << 20):
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_unix_connection(asyncio.Protocol, sock=ours)
    started = time.thread_time()
    for n in range(count):
        transport.writelines(wire.exchange_parts(exchange))
        if n % 16 == 0:
            while transport.get_write_buffer_size() > 8 * 1024 * 1024:
                await asyncio.sleep(0.001)
    while transport.get_write_buffer_size():
        await asyncio.sleep(0.001)
    spent = time.thread_time() - started
    transport.close()
    theirs.shutdown(socket.SHUT_RDWR)
    reader.join(5)
    theirs.close()
    return spent / count * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.handoff_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per case")
    args = parser.parse_args(argv)
    print("| exchange | encoding | µs CPU per exchange |\n|---|---|---:|")
    sizes = {"1 KiB bodies": _exchange(_body(1)), "700 KiB bodies": _exchange(_body(700))}
    for label, exchange in sizes.items():
        for name, action in encodings(exchange).items():
            print(f"| {label} | {name} | {_time(action, args.seconds):,.1f} |")
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    for label, exchange, count in (("1 KiB bodies", sizes["1 KiB bodies"], 20_000),
                                   ("700 KiB bodies", sizes["700 KiB bodies"], 300)):  # fmt: skip
        cost = run(_socket_cost(exchange, count))
        print(f"| {label} | channel frames written to a Unix socket (serving thread only) | {cost:,.1f} |")


if __name__ == "__main__":
    main()
