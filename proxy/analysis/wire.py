"""The analysis channel's frames: exchanges, drop records, id pairs one way; progress the other.

A frame is `<length u32><kind u8><meta length u32><meta: orjson><bodies>`. Bodies travel as they are, after the
metadata that gives their lengths, so the serving loop never re-encodes a body: `exchange_parts` returns the head
and the body objects themselves, for `transport.writelines`. Measured (bench/handoff_bench.py): building and
encoding the metadata costs ~2 µs an exchange whatever the body size; pickling the whole exchange ~28 µs for 1 KiB
bodies and ~360 µs for 700 KiB ones (it copies them).

What a side was sent (`SideResponse.sent`) travels with it: its target and headers in the metadata, and a request
body the proxy rewrote (that side's own ids) as one more body part right after the side's response body.

A shadow's or secondary's body that is byte for byte the primary's (the usual case: most responses match) is not
sent again: its length is `SAME_AS_PRIMARY` and the reader takes the primary's. Telling costs a length comparison,
and a memcmp only when the lengths are equal (~20 µs for 700 KiB); sending it again cost the serving loop the
kernel's copy into the socket (~170 µs for 700 KiB) and the analysis process reading and copying it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from diffs.exchange import ErrorKind, Exchange, RecordedRequest, Role, SentRequest, SideResponse
from diffs.id_pairs import IdPair

EXCHANGE = 1
"""Compare and store this exchange."""
DROPPED = 2
"""Store a `dropped` row for this exchange (its bodies are not sent): it was not compared."""
PAIRS = 3
"""Id pairs the data plane learned: `[[service, resource, from_side, from_id, to_side, to_id], ...]`, ids typed."""
SETTINGS = 4
"""The first frame to the analysis process: its settings, pickled (both ends run this code)."""
PROGRESS = 5
"""From the analysis process: what it has settled and counted since its last report (see `Progress`)."""

_HEAD = struct.Struct("<IBI")
HEAD_SIZE = _HEAD.size
LENGTH = struct.Struct("<I")
SAME_AS_PRIMARY = -1
"""A side's body length in the metadata: its body is the primary's, not sent again."""


def frame(kind: int, meta: bytes, *bodies: bytes) -> list[bytes]:
    """A frame as parts to write one after the other (the bodies are not copied)."""
    size = 1 + 4 + len(meta) + sum(len(b) for b in bodies)
    return [_HEAD.pack(size, kind, len(meta)) + meta, *bodies]


def _sent(sent: SentRequest | None) -> tuple[Any, ...] | None:
    """(target, headers, length of the rewritten body or None: the client's body as it was)."""
    if sent is None:
        return None
    return (sent.target, sent.headers, None if sent.body is None else len(sent.body))


def _side(side: SideResponse | None, *, same: bool = False) -> tuple[Any, ...] | None:
    if side is None:
        return None
    return (side.role, side.app, side.status, side.headers, SAME_AS_PRIMARY if same else len(side.body),
            side.latency_ms, side.error, side.body_truncated, _sent(side.sent))  # fmt: skip


def _same_body(side: SideResponse | None, primary: bytes) -> bool:
    return side is not None and bool(primary) and side.body == primary


def _meta(
    exchange: Exchange, *, bodies: bool, reason: str | None = None, same: tuple[bool, bool] = (False, False)
) -> bytes:
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
            _side(exchange.shadow, same=same[0]) if bodies else _bodyless(exchange.shadow),
            _side(exchange.secondary, same=same[1]) if bodies else _bodyless(exchange.secondary),
            exchange.run,
        )
    )  # fmt: skip


def _bodyless(side: SideResponse | None) -> tuple[Any, ...] | None:
    if side is None:
        return None
    # No bodies, so no rewritten request body and no `sent`: a drop record is there for its row, not for review.
    return (side.role, side.app, side.status, side.headers, 0, side.latency_ms, side.error, side.body_truncated, None)


def _side_bodies(side: SideResponse, bodies: list[bytes], *, same: bool = False) -> None:
    if not same:
        bodies.append(side.body)
    if side.sent is not None and side.sent.body is not None:
        bodies.append(side.sent.body)


def exchange_parts(exchange: Exchange) -> list[bytes]:
    """An EXCHANGE frame: metadata, then the request's and each side's body (and rewritten request body), untouched;
    a body that is the primary's is not repeated (`SAME_AS_PRIMARY`)."""
    bodies = [exchange.request.body]
    primary = exchange.primary.body
    _side_bodies(exchange.primary, bodies)
    same = (_same_body(exchange.shadow, primary), _same_body(exchange.secondary, primary))
    if exchange.shadow is not None:
        _side_bodies(exchange.shadow, bodies, same=same[0])
    if exchange.secondary is not None:
        _side_bodies(exchange.secondary, bodies, same=same[1])
    return frame(EXCHANGE, _meta(exchange, bodies=True, same=same), *bodies)


def dropped_parts(exchange: Exchange, reason: str) -> list[bytes]:
    """A DROPPED frame: the exchange without its bodies, `reason` as its skip reason."""
    return frame(DROPPED, _meta(exchange, bodies=False, reason=reason))


def pairs_parts(pairs: Sequence[IdPair]) -> list[bytes]:
    """A PAIRS frame; orjson keeps each id's JSON type (7 stays an int, "7" a string), as pairs are compared typed."""
    return frame(
        PAIRS, orjson.dumps([(p.service, p.resource, p.from_side, p.from_id, p.to_side, p.to_id) for p in pairs])
    )


def read_pairs(meta: Any) -> list[IdPair]:
    return [IdPair(*fields) for fields in meta]


def progress_parts(progress: dict[str, Any]) -> list[bytes]:
    return frame(PROGRESS, orjson.dumps(progress))


def split(payload: bytes | memoryview) -> tuple[int, Any, memoryview]:
    """A frame without its length prefix → (kind, decoded metadata, the bodies that follow it)."""
    view = memoryview(payload)
    kind = view[0]
    (meta_size,) = LENGTH.unpack_from(view, 1)
    meta = orjson.loads(view[5 : 5 + meta_size]) if meta_size else None
    return kind, meta, view[5 + meta_size :]


_ROLES = {role.value: role for role in Role}
_ERRORS = {kind.value: kind for kind in ErrorKind}
"""Enum members by value: a dict lookup, where calling the enum costs ~2 µs (four a frame)."""


def _headers(pairs: list[list[str]]) -> tuple[tuple[str, str], ...]:
    headers = tuple(map(tuple, pairs))
    if any(len(pair) != 2 for pair in headers):
        raise ValueError("a header is not a (name, value) pair")
    return headers  # type: ignore[return-value]


def _read_side(data: Any, bodies: memoryview, offset: int, primary: bytes = b"") -> tuple[SideResponse | None, int]:
    if data is None:
        return None, offset
    role, app, status, headers, size, latency_ms, error, truncated, sent_meta = data
    if size == SAME_AS_PRIMARY:
        body = primary
    else:
        body = bytes(bodies[offset : offset + size])
        offset += size
    sent = None
    if sent_meta is not None:
        target, sent_headers, sent_size = sent_meta
        sent_body = None
        if sent_size is not None:
            sent_body = bytes(bodies[offset : offset + sent_size])
            offset += sent_size
        sent = SentRequest(target, _headers(sent_headers), sent_body)
    side = SideResponse(_ROLES[role], app, status, _headers(headers), body, latency_ms, _ERRORS[error], truncated, sent)
    return side, offset


def read_exchange(meta: Any, bodies: memoryview) -> Exchange:
    """The exchange of an EXCHANGE or DROPPED frame (a DROPPED one has empty bodies)."""
    exchange_id, started_at, service, skip_reason, request, primary, shadow, secondary, run = meta
    method, path, query, headers, size, truncated = request
    recorded = RecordedRequest(method, path, query, _headers(headers), bytes(bodies[:size]), body_truncated=truncated)
    first, offset = _read_side(primary, bodies, size)
    assert first is not None
    second, offset = _read_side(shadow, bodies, offset, first.body)
    third, offset = _read_side(secondary, bodies, offset, first.body)
    return Exchange(
        exchange_id, datetime.fromisoformat(started_at), service, recorded, first, second, third, skip_reason, run
    )
