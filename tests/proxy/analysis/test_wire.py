"""proxy.analysis.wire: an exchange crosses the channel whole, bodies untouched and never re-encoded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from diffs.exchange import ErrorKind, Exchange, Role, SentRequest
from diffs.id_pairs import IdPair
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
        # What each side was sent: the primary the client's request, the shadow its own ids (a rewritten body after
        # its response body), the secondary an empty rewritten body (not the same as the client's, None).
        exchange(
            request=request("POST", "/posts/7/comments", json={"post_id": 7, "text": "hi"}),
            primary=replace(
                primary({"id": 1}, status=201),
                sent=SentRequest("/posts/7/comments", (("host", "v1:8001"), ("content-type", "application/json"))),
            ),
            shadow=replace(
                shadow({"id": "c-9"}, status=201),
                sent=SentRequest(
                    "/posts/5rCadNROXW8/comments?x=%20",
                    (("host", "v2:8002"), ("x-shadow-request", "1")),
                    b'{"post_id":"5rCadNROXW8","text":"hi"}',
                ),
            ),
            secondary=replace(secondary({"id": 1}), sent=SentRequest("/posts/7/comments", (), b"")),
        ),
    ],
)
def test_an_exchange_round_trips_exactly(item: Exchange) -> None:
    kind, meta, bodies = through(wire.exchange_parts(item))
    assert kind == wire.EXCHANGE
    back = wire.read_exchange(meta, bodies)
    assert back == item
    sides = [s for s in (back.primary, back.shadow, back.secondary) if s is not None]
    # Members, not their strings (which compare equal): the comparer tests `side.error is ErrorKind.DROPPED`.
    assert all(type(s.role) is Role and type(s.error) is ErrorKind for s in sides)
    headers = [h for s in sides for h in s.headers] + list(back.request.headers)
    assert all(type(h) is tuple for h in headers)


def test_a_header_that_is_no_pair_is_refused() -> None:
    item = exchange()
    _, meta, bodies = through(wire.exchange_parts(item))
    meta[4][3].append(["x-only-a-name"])  # type: ignore[index]
    with pytest.raises(ValueError):
        wire.read_exchange(meta, bodies)


def test_bodies_are_handed_to_the_transport_as_they_are() -> None:
    big, other = b"x" * 700_000, b"y" * 700_000
    item = exchange(primary=primary(body=big), shadow=shadow(body=other))
    parts = wire.exchange_parts(item)
    assert parts[2] is big and parts[3] is other  # the same objects: nothing copied or re-encoded on the loop


def test_a_body_that_is_the_primarys_is_sent_once() -> None:
    big = b"x" * 700_000
    item = exchange(
        primary=primary(body=big),
        shadow=shadow(body=bytes(bytearray(big))),  # equal bytes, another object
        secondary=replace(secondary(body=big), sent=SentRequest("/a", (), b"rewritten")),
    )
    parts = wire.exchange_parts(item)
    assert sum(len(p) for p in parts) < len(big) + 2_000
    kind, meta, bodies = through(parts)
    assert wire.read_exchange(meta, bodies) == item


def test_bodies_that_differ_from_the_primarys_only_at_the_end_are_all_sent() -> None:
    item = exchange(primary=primary(body=b"x" * 1000 + b"a"), shadow=shadow(body=b"x" * 1000 + b"b"))
    parts = wire.exchange_parts(item)
    assert sum(len(p) for p in parts) > 2_000
    kind, meta, bodies = through(parts)
    assert wire.read_exchange(meta, bodies) == item


def test_a_drop_record_has_no_bodies_and_says_why() -> None:
    item = exchange(primary=primary(body=b"y" * 10_000))
    parts = wire.dropped_parts(item, "queue_full")
    assert sum(len(p) for p in parts) < 1_000
    kind, meta, bodies = through(parts)
    recorded = wire.read_exchange(meta, bodies)
    assert kind == wire.DROPPED and recorded.skip_reason == "queue_full" and recorded.id == item.id
    assert recorded.primary.body == b"" and recorded.primary.status == item.primary.status


def test_a_drop_record_carries_nothing_of_what_was_sent() -> None:
    sent = SentRequest("/api/orders/1007", (("host", "v2"),), b'{"order_id": 1007}')
    item = exchange(shadow=replace(shadow({"id": 1}), sent=sent))
    kind, meta, bodies = through(wire.dropped_parts(item, "queue_full"))
    recorded = wire.read_exchange(meta, bodies)
    assert recorded.shadow is not None and recorded.shadow.sent is None and recorded.shadow.body == b""


def test_pairs_and_progress_frames() -> None:
    pairs = [
        IdPair("orders", "/api/orders", "v1", 7, "v2", 1007),
        IdPair("blog", "/posts/{}/comments", "v2", "c-9", "secondary", 3),
    ]
    kind, meta, _ = through(wire.pairs_parts(pairs))
    assert kind == wire.PAIRS
    read = wire.read_pairs(meta)
    assert read == pairs  # resources, sides and each id's type (7 an int, "c-9" a string) survive
    assert [type(p.from_id) for p in read] == [int, str] and [type(p.to_id) for p in read] == [int, int]
    kind, meta, _ = through(wire.progress_parts({"settled": 3}))
    assert kind == wire.PROGRESS and meta == {"settled": 3}
