"""The analysis channel's frames: exchanges, drop records, id pairs one way; progress the other.

A frame is `<length u32><kind u8><meta length u32><meta: orjson><bodies>`. Bodies travel as they are, after the
metadata that gives their lengths, so the serving loop never re-encodes a body: `exchange_parts` returns the head
and the body objects themselves, for `transport.writelines`. Measured (bench/handoff_bench.py): building and
encoding the metadata costs ~2 µs an exchange whatever the body size; pickling the whole exchange ~28 µs for 1 KiB
bodies and ~360 µs for 700 KiB ones (it copies them).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from diffs.exchange import ErrorKind, Exchange, RecordedRequest, Role, SideResponse

EXCHANGE = 1
"""Compare and store this exchange."""
DROPPED = 2
"""Store a `dropped` row for this exchange (its bodies are not sent): it was not compared."""
PAIRS = 3
"""Id pairs the data plane learned: `[service, [[primary, shadow], ...]]`."""
SETTINGS = 4
"""The first frame to the analysis process: its settings, pickled (both ends run this code)."""
PROGRESS = 5
"""From the analysis process: what it has settled and counted since its last report (see `Progress`)."""

_HEAD = struct.Struct("<IBI")
HEAD_SIZE = _HEAD.size
LENGTH = struct.Struct("<I")


def frame(kind: int, meta: bytes, *bodies: bytes) -> list[bytes]:
    """A frame as parts to write one after the other (the bodies are not copied)."""
    size = 1 + 4 + len(meta) + sum(len(b) for b in bodies)
    return [_HEAD.pack(size, kind, len(meta)) + meta, *bodies]


def _side(side: SideResponse | None) -> tuple[Any, ...] | None:
    if side is None:
        return None
    return (side.role, side.app, side.status, side.headers, len(side.body), side.latency_ms, side.error,
            side.body_truncated)  # fmt: skip


def _meta(exchange: Exchange, *, bodies: bool, reason: str | None = None) -> bytes:
    request = exchange.request
    return orjson.dumps(
        (
            exchange.id,
            exchange.started_at,
            exchange.service,
            exchange.skip_reason if reason is None else reason,
            (request.method, request.path, request.query, request.headers,
             len(request.body) if bodies else 0, request.body_truncated),
            _side(exchange.primary) if bodies else _bodyless(exchange.primary),
            _side(exchange.shadow) if bodies else _bodyless(exchange.shadow),
            _side(exchange.secondary) if bodies else _bodyless(exchange.secondary),
            exchange.run,
        )
    )  # fmt: skip


def _bodyless(side: SideResponse | None) -> tuple[Any, ...] | None:
    if side is None:
        return None
    return (side.role, side.app, side.status, side.headers, 0, side.latency_ms, side.error, side.body_truncated)


def exchange_parts(exchange: Exchange) -> list[bytes]:
    """An EXCHANGE frame: metadata, then the request's and each side's body, untouched."""
    bodies = [exchange.request.body, exchange.primary.body]
    if exchange.shadow is not None:
        bodies.append(exchange.shadow.body)
    if exchange.secondary is not None:
        bodies.append(exchange.secondary.body)
    return frame(EXCHANGE, _meta(exchange, bodies=True), *bodies)


def dropped_parts(exchange: Exchange, reason: str) -> list[bytes]:
    """A DROPPED frame: the exchange without its bodies, `reason` as its skip reason."""
    return frame(DROPPED, _meta(exchange, bodies=False, reason=reason))


def pairs_parts(service: str, pairs: Sequence[tuple[int | str, int | str]]) -> list[bytes]:
    return frame(PAIRS, orjson.dumps((service, pairs)))


def progress_parts(progress: dict[str, Any]) -> list[bytes]:
    return frame(PROGRESS, orjson.dumps(progress))


def split(payload: bytes) -> tuple[int, Any, memoryview]:
    """A frame without its length prefix → (kind, decoded metadata, the bodies that follow it)."""
    view = memoryview(payload)
    kind = view[0]
    (meta_size,) = LENGTH.unpack_from(view, 1)
    meta = orjson.loads(view[5 : 5 + meta_size]) if meta_size else None
    return kind, meta, view[5 + meta_size :]


def _read_side(data: Any, bodies: memoryview, offset: int) -> tuple[SideResponse | None, int]:
    if data is None:
        return None, offset
    role, app, status, headers, size, latency_ms, error, truncated = data
    body = bytes(bodies[offset : offset + size])
    side = SideResponse(
        Role(role), app, status, tuple((n, v) for n, v in headers), body, latency_ms, ErrorKind(error), truncated
    )
    return side, offset + size


def read_exchange(meta: Any, bodies: memoryview) -> Exchange:
    """The exchange of an EXCHANGE or DROPPED frame (a DROPPED one has empty bodies)."""
    exchange_id, started_at, service, skip_reason, request, primary, shadow, secondary, run = meta
    method, path, query, headers, size, truncated = request
    recorded = RecordedRequest(
        method, path, query, tuple((n, v) for n, v in headers), bytes(bodies[:size]), body_truncated=truncated
    )
    first, offset = _read_side(primary, bodies, size)
    assert first is not None
    second, offset = _read_side(shadow, bodies, offset)
    third, offset = _read_side(secondary, bodies, offset)
    return Exchange(
        exchange_id, datetime.fromisoformat(started_at), service, recorded, first, second, third, skip_reason, run
    )
