"""Bulk inserts on SQLite: any batch size is written whole with a few fixed statement shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from store_fixtures import comparison

from diffs.storage import RetentionPolicy, Store


async def test_every_batch_size_is_written_with_a_bounded_set_of_statements(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'bulk.db'}", retention=RetentionPolicy(examples_per_field=10_000))
    inserts: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.startswith("INSERT INTO exchanges "):
            inserts.append((statement, parameters))

    engine = store._engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    sizes = [*range(1, 80), 511, 512, 513, 600, 1300, 2000]
    try:
        for n, size in enumerate(sizes):
            await store.write_batch(
                [comparison(exchange_id=f"b{n}-{i}", diffs=[("root.x", i, i + 1)]) for i in range(size)]
            )
        assert await store.count_exchanges() == sum(sizes)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
        await store.close()
    shapes = {statement.count("(?") for statement, _ in inserts}
    assert shapes <= {512, 64, 8, 1}, shapes  # not one prepared statement per batch size
    # 2,000 rows: 3 x 512 in one executemany, then 7 x 64, then 2 x 8: three trips to SQLite's thread.
    last = [params for statement, params in inserts][-3:]
    assert [len(p) if isinstance(p, list) else 1 for p in last] == [3, 7, 2]
