"""Retention: a bounded number of examples stored per (endpoint, path) and hour; pruning every table, oldest first."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from store_fixtures import T0, Database, comparison, postgres_schema, side

from diffs.exchange import Comparison, ErrorKind, Outcome, Role
from diffs.id_pairs import IdPair
from diffs.report import Window
from diffs.storage import RetentionPolicy, Store, queries
from diffs.storage.retention import ExampleQuota, error_key

POLICY = RetentionPolicy(examples_per_field=2, match_examples_per_endpoint=1, max_exchanges=5, prune_batch=2)


async def _kept(store: Store) -> dict[str, bool]:
    page = await store.list_exchanges(limit=1000)
    return {item.id: item.bodies_kept for item in page.items}


async def test_only_the_first_examples_of_each_field_are_stored(database: Database) -> None:
    store = await database.open(retention=POLICY)
    try:
        await store.write_batch([comparison(exchange_id=f"a{i}", diffs=[("root.total", i, i + 1)]) for i in range(3)])
        await store.write_batch([comparison(exchange_id="b0", diffs=[("root.total", 0, 1), ("root.tax", 0, 1)])])
        await store.write_batch([comparison(exchange_id="c0", diffs=[("root.total", 0, 1)], endpoint="GET /other")])
        kept = await _kept(store)
        assert kept == {"a0": True, "a1": True, "b0": True, "c0": True}  # a2: its only path had 2 examples
        assert await store.get_exchange("a2") is None
        a0 = await store.get_exchange("a0")
        assert a0 is not None and a0.primary.body is not None and a0.primary.headers and a0.diffs
        assert a0.request_headers == (("accept", "application/json"),)
        totals = await queries.totals(store, Window())
        assert sum(sum(t.outcomes.values()) for t in totals.values()) == 5  # all five are counted
    finally:
        await store.close()


async def test_matches_shadow_errors_and_skips_have_their_own_bounds(database: Database) -> None:
    store = await database.open(retention=POLICY)
    timeout = side(Role.SHADOW, app="v2", status=None, error=ErrorKind.TIMEOUT, body=b"")
    try:
        await store.write_batch(
            [comparison(exchange_id=f"m{i}") for i in range(3)]
            + [comparison(exchange_id=f"e{i}", outcome=Outcome.SHADOW_ERROR, shadow=timeout) for i in range(3)]
            + [
                comparison(exchange_id=f"s{i}", outcome=Outcome.SKIPPED, shadow=None, skip_reason="sampled_out")
                for i in range(2)
            ]
        )
        assert sorted(await _kept(store)) == ["e0", "e1", "m0", "s0"]
    finally:
        await store.close()


async def test_counts_survive_a_restart(database: Database) -> None:
    now = datetime.now(UTC)
    first = await database.open(retention=POLICY)
    await first.write_batch(
        [comparison(exchange_id=f"a{i}", diffs=[("root.total", 1, 2)], started_at=now) for i in range(2)]
    )
    await first.close()
    second = await database.open(retention=POLICY)
    try:
        await second.write_batch([comparison(exchange_id="a2", diffs=[("root.total", 1, 2)], started_at=now)])
        assert "a2" not in await _kept(second)
    finally:
        await second.close()


def test_examples_start_again_every_period() -> None:
    quota = ExampleQuota(POLICY)
    hour = T0.replace(minute=0, second=0, microsecond=0)

    def at(when: datetime) -> Comparison:
        return comparison(diffs=[("root.total", 1, 2)], started_at=when)

    assert [bool(quota.reserve(at(hour + timedelta(minutes=m)))) for m in range(3)] == [True, True, False]
    assert quota.count(("GET /api/orders/{id}", "root.total"), hour) == 2
    assert [bool(quota.reserve(at(hour + timedelta(hours=1, minutes=m)))) for m in range(3)] == [True, True, False]
    assert not quota.reserve(at(hour + timedelta(minutes=59)))  # the previous hour is still counted: full
    for n in range(2, 2 + ExampleQuota.PERIODS_KEPT):
        assert quota.reserve(at(hour + timedelta(hours=n)))
    assert quota.count(("GET /api/orders/{id}", "root.total"), hour) == 0  # forgotten: the oldest of too many
    assert error_key("timeout") == "<shadow_error:timeout>"


async def test_prune_keeps_the_newest_max_exchanges(database: Database) -> None:
    store = await database.open(retention=replace(POLICY, match_examples_per_endpoint=100))
    try:
        batch = [comparison(exchange_id=f"x{i}", started_at=T0 + timedelta(seconds=i)) for i in range(8)]
        batch[0] = comparison(exchange_id="x0", started_at=T0, diffs=[("root.a", 1, 2)])
        await store.write_batch(batch)
        assert await store.prune(now=T0 + timedelta(hours=1)) == 3
        assert store.last_prune is not None and store.last_prune.exchanges == 3
        assert await store.count_exchanges() == 5
        assert sorted(await _kept(store)) == [f"x{i}" for i in range(3, 8)]
        assert await store.get_exchange("x0") is None
        assert await store.prune() == 0
    finally:
        await store.close()


async def test_prune_by_age_and_pruned_examples_free_their_slots(database: Database) -> None:
    policy = RetentionPolicy(
        examples_per_field=1,
        match_examples_per_endpoint=5,
        example_period=7 * 86400,
        max_exchanges=1000,
        max_age=timedelta(days=1),
        prune_batch=2,
    )
    store = await database.open(retention=policy)
    now = datetime.now(UTC)
    try:
        old = [comparison(exchange_id=f"old{i}", started_at=now - timedelta(days=2)) for i in range(3)]
        old[0] = comparison(exchange_id="old0", started_at=now - timedelta(days=2), diffs=[("root.a", 1, 2)])
        await store.write_batch([*old, comparison(exchange_id="new0", started_at=now)])
        assert await store.prune() == 3
        assert list(await _kept(store)) == ["new0"]
        await store.write_batch([comparison(exchange_id="new1", diffs=[("root.a", 1, 2)], started_at=now)])
        assert "new1" in await _kept(store)  # old0 held the only slot for root.a this week; pruning freed it
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


async def test_every_other_table_is_bounded_too(database: Database) -> None:
    policy = RetentionPolicy(
        max_correlations=3,
        correlation_max_age=timedelta(days=1),
        max_promotions=2,
        rollup_max_age=timedelta(days=7),
        event_max_age=timedelta(hours=1),
    )
    store = await database.open(retention=policy)
    engine = database.engine()
    now = datetime.now(UTC)
    try:
        await store.write_batch([comparison(started_at=now - timedelta(days=8)), comparison(started_at=now)])
        await store.save_id_pairs([IdPair("orders", "/orders", "v1", i, "v2", 100 + i) for i in range(5)])
        for n in range(4):
            await store.record_promotion("orders", "v1" if n % 2 == 0 else "v2", "v2" if n % 2 == 0 else "v1", "", "a")
        await store.record_promotion("ai", "v1", "v2", "", "a")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE id_pairs SET created_at = :old WHERE from_id = '0'"),
                {
                    "old": (now - timedelta(days=2)).replace(tzinfo=None)
                    if database.schema is None
                    else now - timedelta(days=2)
                },
            )
        assert (await store.compact(now=now + timedelta(hours=2)) or 0) >= 2  # at least the old one's hour and day
        await store.prune(now=now + timedelta(hours=2))
        pruned = store.last_prune
        assert pruned is not None and not pruned.skipped
        assert (
            pruned.correlations == 2 and pruned.promotions == 2 and pruned.rollups == 3 and pruned.events == 6
        )  # 5 promotions, 1 of pairs
        assert [p.id for p in await store.list_promotions("orders")][:2] == [4, 3]
        assert await store.get_primaries() == {"orders": "v1", "ai": "v2"}  # the newest rows stay
        assert sorted(p.from_id for p in await store.load_id_pairs()) == [2, 3, 4]
        found = await queries.totals(store, Window())
        assert sum(sum(t.outcomes.values()) for t in found.values()) == 1  # the 8-day-old minute, hour, day went
    finally:
        await engine.dispose()
        await store.close()


async def test_only_kept_exchanges_get_a_row(database: Database) -> None:
    store = await database.open(retention=POLICY)
    engine = database.engine()
    try:
        await store.write_batch([comparison(exchange_id=f"m{i}") for i in range(3)])
        async with engine.connect() as conn:
            ids = (await conn.execute(text("SELECT exchange_id FROM exchange_payloads"))).scalars().all()
            stored = (await conn.execute(text("SELECT id FROM exchanges"))).scalars().all()
        assert ids == stored == ["m0"]  # one match example per endpoint; m1 and m2 are only counted
        assert await store.get_exchange("m1") is None
    finally:
        await engine.dispose()
        await store.close()


async def test_one_pruner_at_a_time_across_replicas(postgres_url: str) -> None:
    async with postgres_schema(postgres_url) as database:
        store = await database.open(retention=RetentionPolicy(max_exchanges=0, match_examples_per_endpoint=10))
        other = database.engine()
        try:
            await store.write_batch([comparison(exchange_id=f"p{i}") for i in range(3)])
            async with other.connect() as conn:  # another replica's pruner, mid-pass
                key = "hashtext('shadowdiff.prune.' || current_schema())"
                assert (await conn.execute(text(f"SELECT pg_try_advisory_lock({key})"))).scalar_one()
                assert await store.prune() == 0
                assert store.last_prune is not None and store.last_prune.skipped
                await conn.execute(text(f"SELECT pg_advisory_unlock({key})"))
            assert await store.prune() == 3 and await store.count_exchanges() == 0
        finally:
            await other.dispose()
            await store.close()
