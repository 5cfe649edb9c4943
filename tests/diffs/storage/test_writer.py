"""The batch writer: batches by size and time, never blocks callers, retries an unavailable store, counts drops."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from store_fixtures import Database, Forwarder, comparison, postgres_schema

from diffs.exchange import Comparison
from diffs.storage import Store, StoreUnavailable
from diffs.storage.writer import BatchWriter
from proxy.errors import StoreError


class FakeSink:
    """Records batches; `fail` decides, per batch, whether to raise instead."""

    def __init__(self, fail: type[Exception] | None = None, poison: str | None = None, hang: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self.poison = poison
        self.hang = hang
        self.attempts = 0

    async def write_batch(self, comparisons: Sequence[Comparison]) -> None:
        self.attempts += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail("database is locked")
        ids = [c.exchange.id for c in comparisons]
        if self.poison in ids:
            raise StoreError("value too long")
        self.batches.append(ids)


async def _eventually(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_full_batches_go_at_once_and_the_rest_on_flush() -> None:
    sink = FakeSink()
    writer = BatchWriter(sink, max_batch=3, max_delay=60)
    writer.start()
    for i in range(7):
        assert writer.submit(comparison(exchange_id=f"r{i}"))
    await _eventually(lambda: len(sink.batches) == 2)
    assert [len(b) for b in sink.batches] == [3, 3] and writer.pending == 1
    await writer.flush()
    assert sink.batches[-1] == ["r6"] and writer.written_rows == 7
    await writer.aclose()


async def test_a_partial_batch_goes_after_max_delay() -> None:
    sink = FakeSink()
    writer = BatchWriter(sink, max_batch=100, max_delay=0.05)
    writer.start()
    writer.submit(comparison(exchange_id="a"))
    writer.submit(comparison(exchange_id="b"))
    await asyncio.sleep(0.01)
    assert sink.batches == []
    await _eventually(lambda: sink.batches == [["a", "b"]], timeout=1)
    await writer.aclose()


async def test_submit_never_blocks_and_counts_what_a_full_queue_refuses() -> None:
    dropped: list[tuple[int, str]] = []
    writer = BatchWriter(FakeSink(), max_pending=2, on_drop=lambda n, reason: dropped.append((n, reason)))
    assert [writer.submit(comparison()) for _ in range(4)] == [True, True, False, False]
    assert writer.dropped_rows == 2 and writer.drops["queue_full"] == 2
    assert dropped == [(1, "queue_full"), (1, "queue_full")]
    await writer.aclose()


async def test_aclose_writes_what_is_queued() -> None:
    sink = FakeSink()
    writer = BatchWriter(sink, max_batch=2, max_delay=60)
    writer.start()
    for i in range(5):
        writer.submit(comparison(exchange_id=f"r{i}"))
    await writer.aclose(timeout=2)
    assert sum(sink.batches, []) == [f"r{i}" for i in range(5)]
    assert writer.dropped_rows == 0 and not writer.submit(comparison())
    assert writer.drops["shutdown"] == 1


async def test_aclose_counts_what_it_could_not_write_in_time() -> None:
    writer = BatchWriter(FakeSink(hang=True), max_batch=2, max_delay=0)
    writer.start()
    for _ in range(5):
        writer.submit(comparison())
    await asyncio.sleep(0.02)
    await writer.aclose(timeout=0.1)
    assert writer.drops["shutdown"] == 5 and writer.written_rows == 0 and writer.pending == 0


async def test_a_row_the_database_refuses_is_dropped_alone() -> None:
    sink = FakeSink(poison="r5")
    writer = BatchWriter(sink, max_batch=8, max_delay=60)
    writer.start()
    for i in range(8):
        writer.submit(comparison(exchange_id=f"r{i}"))
    await writer.flush()
    assert sorted(sum(sink.batches, [])) == [f"r{i}" for i in range(8) if i != 5]
    assert writer.drops == {"rejected": 1} and writer.written_rows == 7
    await writer.aclose()


async def test_unavailable_store_is_retried_then_rows_are_dropped_and_reported() -> None:
    dropped: list[tuple[int, str]] = []
    sink = FakeSink(fail=StoreUnavailable)
    writer = BatchWriter(
        sink, max_batch=10, max_delay=0, retry_for=0.2, max_backoff=0.02, on_drop=lambda n, r: dropped.append((n, r))
    )
    writer.start()
    for _ in range(4):
        writer.submit(comparison())
    await writer.flush()
    assert dropped == [(4, "unavailable")] and writer.dropped_rows == 4
    assert sink.attempts > 3 and writer.retries == sink.attempts - 1
    await writer.aclose()


async def test_sqlite_locked_by_another_process_then_released(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await Store.open(f"sqlite:///{path}", busy_timeout=0.02)
    dropped: list[tuple[int, str]] = []
    writer = BatchWriter(
        store, max_batch=50, max_delay=0.01, retry_for=0.3, max_backoff=0.05, on_drop=lambda *drop: dropped.append(drop)
    )
    writer.start()
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        for i in range(5):
            writer.submit(comparison(exchange_id=f"lost{i}"))
        await _eventually(lambda: writer.drops["unavailable"] == 5)
        for i in range(5):
            writer.submit(comparison(exchange_id=f"kept{i}"))
        await asyncio.sleep(0.1)
        assert writer.written_rows == 0 and writer.pending == 5  # still locked: retrying, not dropping yet
        locker.execute("COMMIT")
        await writer.flush()
        ids = sorted(item.id for item in (await store.list_exchanges()).items)
        assert ids == [f"kept{i}" for i in range(5)]
        assert dropped == [(5, "unavailable")] and writer.written_rows == 5 and writer.retries > 0
    finally:
        locker.close()
        await writer.aclose()
        await store.close()


async def test_postgresql_down_then_back(postgres_url: str) -> None:
    url = make_url(postgres_url)
    forwarder = Forwarder(url.host or "127.0.0.1", url.port or 5432)
    await forwarder.start()
    async with postgres_schema(postgres_url) as database:
        proxied = Database(url.set(port=forwarder.port).render_as_string(hide_password=False), database.schema)
        await _outage(proxied, forwarder)


async def _outage(proxied: Database, forwarder: Forwarder) -> None:
    store = await proxied.open()
    writer = BatchWriter(store, max_batch=50, max_delay=0.01, retry_for=0.5, max_backoff=0.05)
    writer.start()
    try:
        writer.submit(comparison(exchange_id="before"))
        await writer.flush()
        await forwarder.stop()
        for i in range(3):
            writer.submit(comparison(exchange_id=f"lost{i}"))
        await _eventually(lambda: writer.drops["unavailable"] == 3)
        for i in range(3):
            writer.submit(comparison(exchange_id=f"kept{i}"))
        await asyncio.sleep(0.1)
        assert writer.pending == 3
        await forwarder.start()
        await writer.flush()
        ids = sorted(item.id for item in (await store.list_exchanges()).items)
        assert ids == ["before", "kept0", "kept1", "kept2"]
        assert writer.written_rows == 4 and writer.dropped_rows == 3
    finally:
        await writer.aclose()
        await store.close()
        await forwarder.stop()


@pytest.mark.parametrize("bad", [{"max_batch": 0}, {"max_pending": 0}])
def test_bad_bounds_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        BatchWriter(FakeSink(), **bad)  # type: ignore[arg-type]
