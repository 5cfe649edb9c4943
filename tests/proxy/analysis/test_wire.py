"""proxy.analysis.wire: an exchange crosses the channel whole, bodies untouched and never re-encoded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from diffs.exchange import ErrorKind, Exchange, Role
from proxy.analysis import wire
from tests.factories import exchange, failed, primary, request, secondary, shadow


def through(parts: list[bytes]) -> tuple[int, object, memoryview]:
    data = b"".join(parts)
    (size,) = wire.LENGTH.unpack_from(data)
    assert len(data) == 4 + size
    return wire.split(data[4:])


@pytest.mark.parametrize(
    "item",
    [
        exchange(),
        exchange(
            request=request("POST", "/api/orders", query="a=1&b=%20", json={"n": 1}, body_truncated=True),
            primary=primary(body=bytes(range(256)) * 3, headers=(("set-cookie", "[REDACTED]"),), status=201),
            shadow=failed(Role.SHADOW, ErrorKind.TIMEOUT),
            secondary=secondary(body="naïve ✓".encode(), body_truncated=True),
            started_at=datetime(2026, 11, 28, 14, 48, 58, 123456, tzinfo=UTC),
            skip_reason=None,
        ),
        exchange(shadow=None, skip_reason="sampled_out"),
        exchange(run="replay-20261129-1"),
    ],
)
def test_an_exchange_round_trips_exactly(item: Exchange) -> None:
    kind, meta, bodies = through(wire.exchange_parts(item))
    assert kind == wire.EXCHANGE
    assert wire.read_exchange(meta, bodies) == item


def test_bodies_are_handed_to_the_transport_as_they_are() -> None:
    big = b"x" * 700_000
    item = exchange(primary=primary(body=big), shadow=shadow(body=big))
    parts = wire.exchange_parts(item)
    assert parts[2] is big and parts[3] is big  # the same objects: nothing copied or re-encoded on the loop


def test_a_drop_record_has_no_bodies_and_says_why() -> None:
    item = exchange(primary=primary(body=b"y" * 10_000))
    parts = wire.dropped_parts(item, "queue_full")
    assert sum(len(p) for p in parts) < 1_000
    kind, meta, bodies = through(parts)
    recorded = wire.read_exchange(meta, bodies)
    assert kind == wire.DROPPED and recorded.skip_reason == "queue_full" and recorded.id == item.id
    assert recorded.primary.body == b"" and recorded.primary.status == item.primary.status


def test_pairs_and_progress_frames() -> None:
    kind, meta, _ = through(wire.pairs_parts("orders", [(7, 1007), ("ORD-1", "ORD-9")]))
    assert kind == wire.PAIRS and meta == ["orders", [[7, 1007], ["ORD-1", "ORD-9"]]]
    kind, meta, _ = through(wire.progress_parts({"settled": 3}))
    assert kind == wire.PROGRESS and meta == {"settled": 3}
