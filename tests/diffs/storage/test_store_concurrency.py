"""Several processes on one SQLite file, the pruning task, and index use for every exchange listing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import event
from store_fixtures import T0, comparison

from diffs.report import Window
from diffs.storage import Cursor, RetentionPolicy, Store, queries
from diffs.storage.pruning import Pruner

WORKER = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {fixtures!r})
    from store_fixtures import comparison
    from diffs.storage import Store

    async def main(url, name):
        store = await Store.open(url)
        try:
            for i in range(20):
                await store.write_batch([comparison(exchange_id=f"{{name}}-{{i}}-{{k}}") for k in range(25)])
                if i % 5 == 0:
                    await store.record_promotion("orders", "v1", "v2", f"{{name}} {{i}}", name)
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_worker_processes_write_one_sqlite_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    script = WORKER.format(fixtures=str(Path(__file__).parent))
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, url, f"w{n}", stderr=subprocess.PIPE)
        for n in range(3)
    ]
    results = [await w.communicate() for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [err.decode()[-2000:] for _, err in results]
    store = await Store.open(url)
    try:
        totals = await queries.totals(store, Window())
        assert sum(sum(t.outcomes.values()) for t in totals.values()) == 3 * 20 * 25  # every count, merged
        assert await store.count_exchanges() == 3 * 5  # each process keeps its 5 match examples this hour
        assert len(await store.list_promotions(limit=100)) == 3 * 4
    finally:
        await store.close()


async def test_pruner_runs_in_the_background_until_closed(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'p.db'}", retention=RetentionPolicy(max_exchanges=2))
    pruner = Pruner(store, interval=0.01)
    try:
        await store.write_batch([comparison() for _ in range(5)])
        pruner.start()
        async with asyncio.timeout(5):
            # The pruner counts its deletions once prune() returns, a moment after the rows are gone.
            while pruner.deleted < 3:
                await asyncio.sleep(0.01)
        assert await store.count_exchanges() == 2
        assert pruner.deleted == 3 and pruner.failures == 0
    finally:
        await pruner.aclose()
        await store.close()


class _Failing:
    def __init__(self) -> None:
        self.calls = 0

    async def prune(self) -> int:
        self.calls += 1
        raise RuntimeError("database gone")


async def test_pruner_survives_failures() -> None:
    failing = _Failing()
    pruner = Pruner(failing, interval=0.01)
    pruner.start()
    async with asyncio.timeout(5):
        while failing.calls < 3:
            await asyncio.sleep(0.01)
    await pruner.aclose()
    assert pruner.failures >= 3


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "ix_exchanges_started"),
        ({"service": "orders"}, "ix_exchanges_service_started"),
        ({"endpoint": "GET /api/orders/{id}"}, "ix_exchanges_endpoint_started"),
        ({"outcome": "diff"}, "ix_exchanges_outcome_started"),
    ],
)
async def test_sqlite_pages_seek_an_index_and_never_sort(tmp_path: Path, filters: dict[str, str], index: str) -> None:
    # Deep pages stay as fast as the first at a million exchanges only if SQLite seeks the index at the cursor and
    # reads `limit` rows in index order: no full scan, no temporary sort.
    store = await Store.open(f"sqlite:///{tmp_path / 'plan.db'}")
    statements: list[tuple[str, tuple[object, ...]]] = []
    engine = store._engine.sync_engine

    def capture(conn: object, cursor: object, statement: str, parameters: tuple[object, ...], *_: object) -> None:
        if statement.startswith("SELECT") and "FROM exchanges" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        await store.list_exchanges(**filters, before=Cursor(T0, "x"), limit=10)  # type: ignore[arg-type]
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    try:
        (statement, parameters), *_ = statements
        async with store._engine.connect() as conn:
            explained = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = " ".join(row[-1] for row in explained)
    finally:
        await store.close()
    assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan
    assert "started_at<?" in plan.replace(" ", ""), plan  # the cursor bounds the index range


async def test_many_stores_creating_one_sqlite_file_at_once(tmp_path: Path) -> None:
    # The switch to WAL on a new file is raced by every opener and SQLite answers the losers "locked" at once,
    # without waiting out busy_timeout; before `use_wal` retried it this failed within a few rounds.
    for round_ in range(10):
        url = f"sqlite:///{tmp_path / f'new{round_}.db'}"
        stores = await asyncio.gather(*(Store.open(url) for _ in range(6)))
        try:
            await stores[0].record_promotion("orders", "v1", "v2", "race", "test")
            assert all([await s.get_primaries() == {"orders": "v2"} for s in stores])
        finally:
            for store in stores:
                await store.close()
