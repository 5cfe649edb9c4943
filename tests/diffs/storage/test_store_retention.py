"""Retention: bodies kept for a bounded number of examples per (endpoint, path); pruning oldest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from store_fixtures import T0, Database, comparison, side

from diffs.exchange import ErrorKind, Outcome, Role
from diffs.storage import RetentionPolicy, Store
from diffs.storage.retention import MATCH_KEY, ExampleQuota, error_key

POLICY = RetentionPolicy(examples_per_field=2, match_examples_per_endpoint=1, max_exchanges=5, prune_batch=2)


async def _kept(store: Store) -> dict[str, bool]:
    page = await store.list_exchanges(limit=1000)
    return {item.id: item.bodies_kept for item in page.items}


async def test_bodies_kept_for_the_first_examples_of_each_field(database: Database) -> None:
    store = await database.open(retention=POLICY)
    try:
        await store.write_batch([comparison(exchange_id=f"a{i}", diffs=[("root.total", i, i + 1)]) for i in range(3)])
        await store.write_batch([comparison(exchange_id="b0", diffs=[("root.total", 0, 1), ("root.tax", 0, 1)])])
        await store.write_batch([comparison(exchange_id="c0", diffs=[("root.total", 0, 1)], endpoint="GET /other")])
        kept = await _kept(store)
        assert kept == {"a0": True, "a1": True, "a2": False, "b0": True, "c0": True}
        a2 = await store.get_exchange("a2")
        assert a2 is not None
        assert a2.request_body is None and a2.primary.body is None and a2.shadow and a2.shadow.body is None
        # The summary and the diff stay; headers and bodies only for examples (no payload row at all).
        assert a2.diffs and a2.summary.bodies_kept is False
        assert a2.request_headers == () and a2.primary.headers == () and a2.shadow.headers == ()
        assert a2.primary.status == 200 and a2.shadow.app == "v2"
        a0 = await store.get_exchange("a0")
        assert a0 is not None and a0.primary.body is not None and a0.primary.headers
        assert a0.request_headers == (("accept", "application/json"),)
    finally:
        await store.close()


async def test_matches_and_shadow_errors_have_their_own_bounds(database: Database) -> None:
    store = await database.open(retention=POLICY)
    timeout = side(Role.SHADOW, app="v2", status=None, error=ErrorKind.TIMEOUT, body=b"")
    try:
        await store.write_batch(
            [comparison(exchange_id=f"m{i}") for i in range(3)]
            + [comparison(exchange_id=f"e{i}", outcome=Outcome.SHADOW_ERROR, shadow=timeout) for i in range(3)]
            + [comparison(exchange_id="s0", outcome=Outcome.SKIPPED, shadow=None, skip_reason="sampled_out")]
        )
        kept = await _kept(store)
        assert [kept[f"m{i}"] for i in range(3)] == [True, False, False]
        assert [kept[f"e{i}"] for i in range(3)] == [True, True, False]
        assert kept["s0"] is False
    finally:
        await store.close()


async def test_counts_survive_a_restart(database: Database) -> None:
    first = await database.open(retention=POLICY)
    await first.write_batch([comparison(exchange_id=f"a{i}", diffs=[("root.total", 1, 2)]) for i in range(2)])
    await first.close()
    second = await database.open(retention=POLICY)
    try:
        await second.write_batch([comparison(exchange_id="a2", diffs=[("root.total", 1, 2)])])
        assert (await _kept(second))["a2"] is False
    finally:
        await second.close()


async def test_a_failed_batch_does_not_use_up_examples() -> None:
    quota = ExampleQuota(POLICY)
    batch = [comparison(diffs=[("root.total", 1, 2)]) for _ in range(3)]
    assert [bool(k) for k in quota.plan(batch)] == [True, True, False]
    assert [bool(k) for k in quota.plan(batch)] == [True, True, False]  # nothing committed: same answer
    quota.commit(quota.plan(batch[:1]))
    assert quota.count(("GET /api/orders/{id}", "root.total")) == 1
    assert quota.count(("GET /api/orders/{id}", MATCH_KEY)) == 0
    assert error_key("timeout") == "<shadow_error:timeout>"


async def test_prune_keeps_the_newest_max_exchanges(database: Database) -> None:
    store = await database.open(retention=POLICY)
    try:
        batch = [comparison(exchange_id=f"x{i}", started_at=T0 + timedelta(seconds=i)) for i in range(8)]
        batch[0] = comparison(exchange_id="x0", started_at=T0, diffs=[("root.a", 1, 2)])
        await store.write_batch(batch)
        assert await store.prune(now=T0 + timedelta(hours=1)) == 3
        assert await store.count_exchanges() == 5
        assert sorted(await _kept(store)) == [f"x{i}" for i in range(3, 8)]
        assert await store.get_exchange("x0") is None
        assert await store.prune() == 0
    finally:
        await store.close()


async def test_prune_by_age_and_pruned_examples_free_their_slots(database: Database) -> None:
    policy = RetentionPolicy(examples_per_field=1, max_exchanges=1000, max_age=timedelta(days=1), prune_batch=2)
    store = await database.open(retention=policy)
    now = datetime.now(UTC)
    try:
        old = [comparison(exchange_id=f"old{i}", started_at=now - timedelta(days=2)) for i in range(3)]
        old[0] = comparison(exchange_id="old0", started_at=now - timedelta(days=2), diffs=[("root.a", 1, 2)])
        await store.write_batch([*old, comparison(exchange_id="new0", started_at=now)])
        assert await store.prune() == 3
        assert list(await _kept(store)) == ["new0"]
        await store.write_batch([comparison(exchange_id="new1", diffs=[("root.a", 1, 2)], started_at=now)])
        assert (await _kept(store))["new1"] is True  # old0 held the only slot for root.a; pruning freed it
    finally:
        await store.close()


async def test_pruning_removes_children_too(database: Database) -> None:
    store = await database.open(retention=RetentionPolicy(max_exchanges=0))
    engine = database.engine()
    try:
        await store.write_batch([comparison(exchange_id="gone", diffs=[("root.a", 1, 2)], started_at=T0)])
        assert await store.prune() == 1
        async with engine.connect() as conn:
            for table in ("exchanges", "exchange_payloads", "field_diffs", "body_examples"):
                assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 0, table
    finally:
        await engine.dispose()
        await store.close()


async def test_only_kept_exchanges_get_a_payload_row(database: Database) -> None:
    store = await database.open(retention=POLICY)
    engine = database.engine()
    try:
        await store.write_batch([comparison(exchange_id=f"m{i}") for i in range(3)])
        async with engine.connect() as conn:
            ids = (await conn.execute(text("SELECT exchange_id FROM exchange_payloads"))).scalars().all()
        assert ids == ["m0"]  # one match example per endpoint; m1 and m2 are summary rows only
        m1 = await store.get_exchange("m1")
        assert m1 is not None and m1.summary.outcome is Outcome.MATCH and m1.primary.body is None
    finally:
        await engine.dispose()
        await store.close()
