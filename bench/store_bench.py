"""`python -m bench.store_bench`: rows per second through `BatchWriter` into SQLite and PostgreSQL, and page speed.

Each measurement writes N comparisons (1 KB JSON bodies on each side, 0 or 3 field diffs, default retention, so only
the first examples keep bodies) as fast as the writer takes them, then flushes. It reports wall-clock rows/s and the
process CPU per row (the writer shares the proxy's CPU; aiosqlite's thread is included). `--pages N` also fills a
SQLite store with N exchanges and times keyset pages at the newest, the middle and the oldest end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from diffs.exchange import (
    Comparison,
    DiffKind,
    Exchange,
    FieldDiff,
    Outcome,
    RecordedRequest,
    Role,
    SideResponse,
)
from diffs.storage import Cursor, Store
from diffs.storage.writer import BatchWriter

POSTGRES_URL = os.environ.get("SHADOWDIFF_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENDPOINTS = ("GET /api/orders/{id}", "GET /api/products/{id}", "POST /api/orders", "GET /api/products")
FILTERS: tuple[tuple[str, dict[str, str]], ...] = (
    ("all", {}),
    ("endpoint", {"endpoint": ENDPOINTS[1]}),
    ("diff", {"outcome": "diff"}),
)


def _body(i: int, price: str) -> bytes:
    items = [{"product_id": k, "sku": f"SKU-{k:04d}", "quantity": 2, "unit_price": price} for k in range(6)]
    order = {"id": i, "order_number": f"ORD-{i:08X}", "status": "paid", "items": items, "total": price}
    return orjson.dumps(order)


def make_comparisons(count: int, diffs: int, prefix: str) -> list[Comparison]:
    # Requests carry a credential to redact, responses only ordinary headers: the common case.
    request_headers = (("accept", "application/json"), ("authorization", "Bearer abc"), ("x-request-id", "r"))
    headers = (("content-type", "application/json"), ("content-length", "491"), ("x-request-id", "r"))
    result = []
    for i in range(count):
        endpoint = ENDPOINTS[i % len(ENDPOINTS)]
        exchange_id = f"{prefix}-{i}"
        exchange = Exchange(
            id=exchange_id,
            started_at=T0 + timedelta(microseconds=i * 10),
            service="orders",
            request=RecordedRequest(endpoint.split()[0], f"/api/orders/{i}", "", request_headers, b""),
            primary=SideResponse(Role.PRIMARY, "v1", 200, headers, _body(i, "12.50"), 4.2),
            shadow=SideResponse(Role.SHADOW, "v2", 200, headers, _body(i, "12.5"), 3.9),
        )
        field_diffs = tuple(
            FieldDiff(exchange_id, endpoint, f"root.field_{k}", DiffKind.CHANGED, "12.50", "12.5", noise=k == 2)
            for k in range(diffs)
        )
        outcome = Outcome.DIFF if field_diffs else Outcome.MATCH
        result.append(Comparison(exchange, endpoint, outcome, field_diffs))
    return result


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    diffs: int
    rows: int
    seconds: float
    cpu_seconds: float

    def line(self) -> str:
        rate = self.rows / self.seconds
        cpu_us = self.cpu_seconds / self.rows * 1e6
        return f"| {self.backend:<10} | {self.diffs:>5} | {self.rows:>7,} | {rate:>11,.0f} | {cpu_us:>11,.0f} |"


async def measure(store: Store, backend: str, rows: int, diffs: int) -> Result:
    comparisons = make_comparisons(rows, diffs, f"{diffs}-{uuid.uuid4().hex[:6]}")
    writer = BatchWriter(store, max_batch=500, max_delay=0.05)
    writer.start()
    wall, cpu = time.perf_counter(), time.process_time()
    for i, comparison in enumerate(comparisons):
        while writer.pending >= writer.max_pending:
            await asyncio.sleep(0.001)
        writer.submit(comparison)
        if i % 200 == 0:
            await asyncio.sleep(0)  # a proxy yields between requests; let the writer run as it would
    await writer.flush()
    elapsed, cpu_used = time.perf_counter() - wall, time.process_time() - cpu
    await writer.aclose()
    if writer.written_rows != rows:
        raise RuntimeError(f"wrote {writer.written_rows} of {rows}; drops {dict(writer.drops)}")
    return Result(backend, diffs, rows, elapsed, cpu_used)


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def _with_pg_schema(rows: int) -> list[Result]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    results = []
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        store = await Store.open(POSTGRES_URL, schema=schema)
        try:
            for diffs in (0, 3):
                results.append(await measure(store, "postgresql", rows, diffs))
        finally:
            await store.close()
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()
    return results


async def throughput(rows: int) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            for diffs in (0, 3):
                results.append(await measure(store, "sqlite", rows, diffs))
        finally:
            await store.close()
    if _postgres_reachable():
        results += await _with_pg_schema(rows)
    else:
        print("PostgreSQL not reachable at 127.0.0.1:5432: skipped")
    return results


async def pages(total: int) -> None:
    """Fill a SQLite store with `total` exchanges, then time the first, a middle and the last keyset page."""
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite:///{Path(tmp) / 'pages.db'}")
        try:
            print(f"filled {total:,} exchanges in {await _fill(store, total, (0, 1)):.1f}s")
            newest = await store.list_exchanges(limit=1)
            assert newest.items
            positions = {"newest": None, "middle": 0.5, "oldest": 0.999}
            for name, fraction in positions.items():
                cursor = None
                if fraction is not None:
                    at = newest.items[0].started_at - (newest.items[0].started_at - T0) * fraction
                    cursor = Cursor(at, "~")
                for label, filters in FILTERS:
                    begin = time.perf_counter()
                    runs = 20
                    for _ in range(runs):
                        page = await store.list_exchanges(limit=50, before=cursor, **filters)  # type: ignore[arg-type]
                    ms = (time.perf_counter() - begin) / runs * 1000
                    print(f"page of {len(page.items)} at {name:<6} filter {label:<8}: {ms:6.2f} ms")
            begin = time.perf_counter()
            count = await store.count_exchanges()
            print(f"count_exchanges() = {count:,}: {(time.perf_counter() - begin) * 1000:.1f} ms")
        finally:
            await store.close()


async def _fill(store: Store, total: int, diffs: tuple[int, ...]) -> float:
    """Write `total` comparisons straight through `write_batch`, chunk k with diffs[k % len(diffs)] field diffs."""
    start = time.perf_counter()
    chunk = 5_000
    for k, offset in enumerate(range(0, total, chunk)):
        batch = make_comparisons(min(chunk, total - offset), diffs[k % len(diffs)], f"f{offset}")
        await store.write_batch(batch)
    return time.perf_counter() - start


async def prune_timing(total: int) -> None:
    """Fill each backend with `total` exchanges (3 field diffs each), then time pruning half of them."""
    from diffs.storage import RetentionPolicy

    policy = RetentionPolicy(max_exchanges=total // 2)
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite:///{Path(tmp) / 'prune.db'}", retention=policy)
        try:
            filled = await _fill(store, total, (3,))
            begin = time.perf_counter()
            deleted = await store.prune()
            print(
                f"sqlite: filled {total:,} in {filled:.1f}s; pruned {deleted:,} in {time.perf_counter() - begin:.1f}s"
            )
        finally:
            await store.close()
    if not _postgres_reachable():
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        store = await Store.open(POSTGRES_URL, schema=schema, retention=policy)
        try:
            filled = await _fill(store, total, (3,))
            begin = time.perf_counter()
            deleted = await store.prune()
            elapsed = time.perf_counter() - begin
            print(f"postgresql: filled {total:,} in {filled:.1f}s; pruned {deleted:,} in {elapsed:.1f}s")
        finally:
            await store.close()
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.store_bench", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000, help="comparisons per measurement (default 20,000)")
    parser.add_argument("--pages", type=int, default=0, metavar="N", help="also time keyset pages over N exchanges")
    parser.add_argument("--prune", type=int, default=0, metavar="N", help="also time pruning N/2 of N exchanges")
    parser.add_argument("--no-throughput", action="store_true", help="skip the writer measurements")
    args = parser.parse_args()
    if args.no_throughput:
        args.rows = 0
    if args.rows:
        results = asyncio.run(throughput(args.rows))
        print("| backend    | diffs |    rows |      rows/s | µs CPU/row |")
        print("|------------|------:|--------:|------------:|-----------:|")
        for result in results:
            print(result.line())
    if args.pages:
        asyncio.run(pages(args.pages))
    if args.prune:
        asyncio.run(prune_timing(args.prune))


if __name__ == "__main__":
    main()
