"""Writing comparisons and reading exchanges back: round trip, one transaction, keyset pagination, filters."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from store_fixtures import T0, Database, comparison, side

from diffs.exchange import DiffKind, ErrorKind, Outcome, Role
from diffs.storage import Cursor, RetentionPolicy, Store, rows
from proxy.errors import StoreError


async def test_round_trip_keeps_everything_a_reviewer_needs(store: Store) -> None:
    written = comparison(
        exchange_id="req-roundtrip",
        endpoint="POST /api/orders",
        diffs=[("root.total", "27.00", "27.0"), ("root.items[*].price", 1, None)],
        request_body=b'{"customer_id": 1}',
        query="expand=items",
        shadow=side(Role.SHADOW, app="v2", status=201, body=b'{"total": "27.0"}', latency_ms=30.0),
    )
    await store.write_batch([written])
    stored = await store.get_exchange("req-roundtrip")
    assert stored is not None
    summary = stored.summary
    assert (summary.service, summary.method, summary.path, summary.endpoint) == (
        "orders",
        "POST",
        "/api/orders",
        "POST /api/orders",
    )
    assert summary.started_at == written.exchange.started_at
    assert (summary.outcome, summary.diff_count, summary.noise_count, summary.bodies_kept) == (Outcome.DIFF, 2, 0, True)
    assert (summary.primary_status, summary.shadow_status, summary.shadow_latency_ms) == (200, 201, 30.0)
    assert stored.query == "expand=items"
    assert stored.request_headers == (("accept", "application/json"),)
    assert stored.request_body == b'{"customer_id": 1}'
    assert stored.primary.body == b'{"id": 1, "total": "10.00"}' and stored.primary.app == "v1"
    assert stored.shadow is not None and stored.shadow.body == b'{"total": "27.0"}'
    assert stored.shadow.error is ErrorKind.NONE and stored.secondary is None
    assert [(d.path, d.kind, d.primary_value, d.shadow_value) for d in stored.diffs] == [
        ("root.total", DiffKind.CHANGED, "27.00", "27.0"),
        ("root.items[*].price", DiffKind.CHANGED, 1, None),
    ]
    assert all(d.exchange_id == "req-roundtrip" for d in stored.diffs)


async def test_unknown_exchange_is_none(store: Store) -> None:
    assert await store.get_exchange("nope") is None


async def test_unmirrored_exchange_has_no_shadow(store: Store) -> None:
    await store.write_batch([comparison(exchange_id="solo", outcome=Outcome.SKIPPED, shadow=None, skip_reason="x")])
    stored = await store.get_exchange("solo")
    assert stored is not None and stored.shadow is None and stored.summary.skip_reason == "x"
    assert stored.summary.shadow_app is None and stored.summary.bodies_kept is True  # the first skip: an example


async def test_a_reused_request_id_is_kept_under_a_suffix(store: Store) -> None:
    await store.write_batch([comparison(exchange_id="client-id")])
    await store.write_batch([comparison(exchange_id="client-id"), comparison(exchange_id="client-id")])
    page = await store.list_exchanges()
    ids = sorted(item.id for item in page.items)
    assert len(ids) == 3 and ids[0] == "client-id"
    assert all(i.startswith("client-id#") for i in ids[1:]) and ids[1] != ids[2]


async def test_a_batch_is_one_transaction(store: Store, database: Database) -> None:
    engine = database.engine()
    async with engine.begin() as conn:
        if store.dialect == "sqlite":
            await conn.execute(
                text("CREATE TRIGGER refuse BEFORE INSERT ON field_diffs BEGIN SELECT RAISE(ABORT, 'refused'); END")
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            await conn.execute(
                text("CREATE TRIGGER refuse BEFORE INSERT ON field_diffs FOR EACH ROW EXECUTE FUNCTION refuse()")
            )
    await engine.dispose()
    with pytest.raises(StoreError, match="refused"):
        await store.write_batch([comparison(), comparison(diffs=[("root.a", 1, 2)])])
    assert await store.count_exchanges() == 0


async def test_keyset_pages_walk_every_exchange_once_newest_first(database: Database) -> None:
    store = await database.open(retention=RetentionPolicy(match_examples_per_endpoint=100))
    try:
        await _walk_pages(store)
    finally:
        await store.close()


async def _walk_pages(store: Store) -> None:
    same_instant = T0 + timedelta(seconds=5)
    batch = [comparison(started_at=T0 + timedelta(seconds=i)) for i in range(7)]
    batch += [comparison(started_at=same_instant, exchange_id=f"tie-{i}") for i in range(3)]
    await store.write_batch(batch)
    seen: list[str] = []
    cursor: Cursor | None = None
    pages = 0
    while True:
        page = await store.list_exchanges(limit=3, before=cursor)
        seen += [item.id for item in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor.encode())
    assert pages == 4
    assert sorted(seen) == sorted(c.exchange.id for c in batch) and len(seen) == len(set(seen))
    expected = sorted(batch, key=lambda c: (c.exchange.started_at, c.exchange.id), reverse=True)
    assert seen == [c.exchange.id for c in expected]


async def test_filters(store: Store) -> None:
    await store.write_batch(
        [
            comparison(exchange_id="o1", service="orders", started_at=T0),
            comparison(exchange_id="o2", service="orders", diffs=[("root.x", 1, 2)], started_at=T0 + timedelta(1)),
            comparison(
                exchange_id="p1",
                service="products",
                endpoint="GET /api/products/{id}",
                outcome=Outcome.SHADOW_ERROR,
                shadow=side(Role.SHADOW, app="v2", status=None, error=ErrorKind.TIMEOUT),
                started_at=T0 + timedelta(2),
            ),
        ]
    )

    async def ids(**filters: object) -> list[str]:
        return [item.id for item in (await store.list_exchanges(**filters)).items]  # type: ignore[arg-type]

    assert await ids() == ["p1", "o2", "o1"]
    assert await ids(service="orders") == ["o2", "o1"]
    assert await ids(endpoint="GET /api/products/{id}") == ["p1"]
    assert await ids(outcome=Outcome.DIFF) == ["o2"]
    assert await ids(outcome="shadow_error") == ["p1"]
    assert await ids(since=T0 + timedelta(1)) == ["p1", "o2"]
    assert await ids(until=T0 + timedelta(1)) == ["o1"]
    assert await ids(service="orders", outcome="match") == ["o1"]
    p1 = (await store.list_exchanges(service="products")).items[0]
    assert p1.shadow_error is ErrorKind.TIMEOUT and p1.outcome is Outcome.SHADOW_ERROR
    assert await store.count_exchanges() == 3


async def test_noise_diffs_are_counted_apart(store: Store) -> None:
    await store.write_batch([comparison(exchange_id="n", diffs=[("root.created_at", "a", "b")], noise=True)])
    stored = await store.get_exchange("n")
    assert stored is not None
    assert (stored.summary.diff_count, stored.summary.noise_count) == (0, 1) and stored.diffs[0].noise


async def test_long_values_are_cut_to_a_json_string(store: Store) -> None:
    await store.write_batch([comparison(exchange_id="big", diffs=[("root.blob", "x" * 10_000, ["y"] * 5000)])])
    stored = await store.get_exchange("big")
    assert stored is not None
    primary, shadow = stored.diffs[0].primary_value, stored.diffs[0].shadow_value
    assert isinstance(primary, str) and primary.endswith("…") and len(primary) <= 4100
    assert isinstance(shadow, str) and shadow.startswith('["y"')


def test_cursor_tokens_round_trip_and_refuse_garbage() -> None:
    cursor = Cursor(T0, "req-1|odd")
    assert Cursor.decode(cursor.encode()) == cursor
    with pytest.raises(ValueError):
        Cursor.decode("not a cursor")


async def test_a_large_batch_lets_the_event_loop_run_while_its_rows_are_prepared(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await database.open(retention=RetentionPolicy(match_examples_per_endpoint=10_000))
    try:
        await _large_batch(store, monkeypatch)
    finally:
        await store.close()


async def _large_batch(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # The proxy's requests share this loop: a batch of thousands must not be prepared in one turn of it.
    turns = 0
    seen: list[int] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    prepare = rows.exchange_values

    def counted(*args: Any) -> dict[str, Any]:
        seen.append(turns)
        return prepare(*args)

    monkeypatch.setattr(rows, "exchange_values", counted)
    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)
    try:
        await store.write_batch([comparison(exchange_id=f"big-{i}", diffs=[]) for i in range(1000)])
    finally:
        stop.set()
        await task
    assert len(seen) == 1000
    assert seen[-1] - seen[0] >= 3  # the loop turned at least once every 250 rows
    assert await store.count_exchanges() == 1000
