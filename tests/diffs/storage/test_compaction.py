"""Compaction: hour and day rows computed from minute rows once a period ended; reports exact before and after, and
when a late write reopens a compacted hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from store_fixtures import Database, comparison

from diffs.report import Window
from diffs.storage import Store, queries

T = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
"""Traffic from 22:30 to 01:30 the next day: hours and a day boundary to compact."""
WINDOWS = [
    Window(),
    Window(since=T + timedelta(minutes=17), until=T + timedelta(hours=2, minutes=41)),
    Window(since=T + timedelta(hours=1, minutes=30), until=T + timedelta(hours=3)),
]


async def _snapshot(store: Store) -> list[dict[tuple[str, str, str], tuple[int, int, int]]]:
    out = []
    for window in WINDOWS:
        found = await queries.totals(store, window, now=T + timedelta(days=2))
        out.append({k: (sum(t.outcomes.values()), t.noisy_match, sum(t.primary.counts)) for k, t in found.items()})
    return out


async def _rows(database: Database) -> dict[int, int]:
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            grains = (await conn.execute(text("SELECT grain, count(*) FROM rollups GROUP BY grain"))).all()
            pending = (await conn.execute(text("SELECT count(*) FROM rollup_pending"))).scalar_one()
    finally:
        await engine.dispose()
    return {**{int(g): int(n) for g, n in grains}, 0: int(pending)}


async def test_reports_are_the_same_before_and_after_compaction_and_after_a_late_write(database: Database) -> None:
    store = await database.open()
    try:
        batch = [
            comparison(
                started_at=T + timedelta(seconds=47 * n),
                endpoint="GET /api/orders/{id}" if n % 3 else "GET /api/orders",
                diffs=[("root.total", 1, 2)] if n % 7 == 0 else (),
            )
            for n in range(230)  # ~3 hours
        ]
        await store.write_batch(batch)
        before = await _snapshot(store)
        assert sum(n for n, _, _ in before[0].values()) == 230
        rows = await _rows(database)
        assert rows.get(3600, 0) == rows.get(86400, 0) == 0 and rows[0] == 4 + 2  # 4 hours and 2 days pending

        # Mid-way: only what ended (and settled) is compacted; the open hour and day stay pending.
        assert await store.compact(now=T + timedelta(hours=1, minutes=40)) == 3  # 22:00, 23:00 and that day
        assert await _snapshot(store) == before
        assert await store.compact(now=T + timedelta(days=3)) == 3  # 00:00, 01:00 and the second day
        rows = await _rows(database)
        assert rows[0] == 0 and rows[3600] == 4 * 2 and rows[86400] == 2 * 2  # per endpoint
        assert await _snapshot(store) == before

        # A writer that held counts through an outage writes them late, into an hour already compacted.
        late = comparison(started_at=T + timedelta(minutes=45), endpoint="GET /api/orders")
        await store.write_batch([late])
        assert (await _rows(database))[0] == 2  # its hour and its day are pending again
        after_late = await _snapshot(store)
        assert sum(n for n, _, _ in after_late[0].values()) == 231
        assert sum(n for n, _, _ in after_late[1].values()) == sum(n for n, _, _ in before[1].values()) + 1
        assert await store.compact(now=T + timedelta(days=3)) == 2
        assert await _snapshot(store) == after_late and (await _rows(database))[0] == 0
    finally:
        await store.close()
