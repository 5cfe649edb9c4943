"""`python -m bench.rollup_bench`: report speed over a store holding 10M exchanges' worth of rollups over 7 days.

The loader writes what the proxy's writers and compactor would have left after `--exchanges` exchanges spread over
`--days` days: minute rows (outcome counts, latency histograms of both sides, field diffs, status pairs, diff
signatures) for every (service, endpoint, minute), hour and day rows compacted from them, and `--examples` stored
example exchanges (with bodies and field diffs) through the store's own write path. Then it times, on the admin app
in-process (server time, no network), the web overview, /api/v1/summary and one endpoint page, and the report that
`shadowdiff report` and `shadowdiff check` load (`queries.load_report`, as their code calls it), each `--repeat`
times: median and worst, against the 300 ms target.

Each page is timed over every window of `--since` (default: all time, the default window "since the last
promotion", 7d and 24h) on the same fill: a relative window starts mid-minute and mid-hour, so it also reads minute
and hour rows at its ends, which "all" never does. The fill records one promotion and rollback of `orders`
(`ROLLED_BACK_AGO` before the run) so that the default window starts there for that service.

    python -m bench.rollup_bench [--database-url URL] [--exchanges 10000000] [--days 7] [--endpoints 12]
        [--since all,default,7d,24h]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import insert

from bench.private_postgres import PrivatePostgres
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
from diffs.readiness import Criteria
from diffs.report import window_of
from diffs.rollups import GRAINS, LIVE_RUN, Cell, RollupKey, every_grain, floor_time
from diffs.rules import NoiseConfig
from diffs.storage import RetentionPolicy, Store, queries
from diffs.storage.models import PromotionRow
from diffs.storage.retention import example_keys
from diffs.storage.rollup_rows import TABLE, values_of
from proxy.config import load_settings
from proxy.control.admin import create_admin_app
from proxy.control.promotion import PrimaryState

TARGET_MS = 300.0
SERVICES = ("orders", "products", "ai")
WINDOWS = "all,default,7d,24h"
"""`--since`'s default: each a `since` of the CLI and pages ("default": the parameter left out)."""
ROLLED_BACK_AGO = timedelta(days=2, hours=3, minutes=17, seconds=25)
"""When the fill's `orders` went back to v1 (promoted to v2 an hour before): where its default window starts."""
FIELDS = ("root.total", "root.items[*].price", "root.status", "root.created_at", "header.etag")
"""created_at and etag differ as noise (the secondary too); the others are findings on some endpoints."""


def endpoints(count: int) -> list[tuple[str, str]]:
    """(service, endpoint template) pairs, spread over the demo's services."""
    shapes = ["GET /api/{s}/{{id}}", "GET /api/{s}", "POST /api/{s}", "PATCH /api/{s}/{{id}}", "GET /api/{s}/{{id}}/x"]
    out = []
    for n in range(count):
        service = SERVICES[n % len(SERVICES)]
        out.append(
            (service, shapes[(n // len(SERVICES)) % len(shapes)].format(s=service) + ("" if n < 15 else f"/{n}"))
        )
    return out


def minute_cell(rng: random.Random, exchanges: int, finding_rate: float) -> Cell:
    """One endpoint-minute: `exchanges` exchanges, a few percent differing, latencies of both sides."""
    cell = Cell()
    for _ in range(exchanges):
        roll = rng.random()
        primary_ms = rng.lognormvariate(3.0, 0.5)
        shadow_ms = primary_ms * rng.uniform(0.6, 1.1)
        if roll < 0.005:
            cell.add(outcome="shadow_error", primary_ms=primary_ms, shadow_ms=5000.0, primary_status=200,
                     shadow_status=None)  # fmt: skip
            continue
        diffs: list[tuple[str, str, bool]] = []
        if rng.random() < 0.3:
            diffs.append(("root.created_at", DiffKind.CHANGED.value, True))
        if rng.random() < 0.1:
            diffs.append(("header.etag", DiffKind.CHANGED.value, True))
        if roll < 0.005 + finding_rate:
            diffs.append((FIELDS[rng.randrange(3)], DiffKind.CHANGED.value, False))
        outcome = Outcome.DIFF.value if any(not noise for _, _, noise in diffs) else Outcome.MATCH.value
        cell.add(outcome=outcome, primary_ms=primary_ms, shadow_ms=shadow_ms, primary_status=200,
                 shadow_status=200, diffs=diffs)  # fmt: skip
    return cell


async def load(store: Store, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """Fill the store: rollup rows of every grain (compacted, as the compactor leaves them) and examples."""
    rng = random.Random(12)
    pairs = endpoints(args.endpoints)
    minutes = int(args.days * 1440)
    per_cell = max(1, args.exchanges // (minutes * len(pairs)))
    start = floor_time(now - timedelta(days=args.days), 60)
    # A pool of distinct minute cells, reused: building 10M exchanges one by one would take minutes of CPU.
    pool = [minute_cell(rng, per_cell, 0.01 if n % 3 else 0.03) for n in range(64)]
    began = time.perf_counter()
    written = 0
    cells: dict[RollupKey, Cell] = {}
    for m in range(minutes):
        at = start + timedelta(minutes=m)
        for i, (service, endpoint) in enumerate(pairs):
            cells[RollupKey(GRAINS[0], at, service, endpoint, "v1>v2", LIVE_RUN)] = pool[(m * 7 + i) % len(pool)]
        if m == minutes - 1 or floor_time(at + timedelta(minutes=1), GRAINS[2]) != floor_time(at, GRAINS[2]):
            written += await _insert(store, every_grain(cells))  # one UTC day at a time: its hours and day whole
            cells = {}
    examples = await _examples(store, args.examples, pairs, start, minutes, rng)
    await _promotions(store, now - ROLLED_BACK_AGO)
    return {
        "exchanges": per_cell * minutes * len(pairs),
        "rollup_rows": written,
        "examples": examples,
        "load_seconds": round(time.perf_counter() - began, 1),
    }


async def _insert(store: Store, cells: dict[RollupKey, Cell]) -> int:
    rows = [
        {"grain": k.grain, "start": k.start, "service": k.service, "endpoint": k.endpoint,
         "direction": k.direction, "run": k.run, **values_of(c)}
        for k, c in cells.items()
    ]  # fmt: skip
    async with store._engine.begin() as conn:
        for at in range(0, len(rows), 2000):
            await conn.execute(insert(TABLE), rows[at : at + 2000])
    return len(rows)


async def _promotions(store: Store, rolled_back: datetime) -> None:
    """`orders` promoted to v2 and rolled back an hour later: its primary is v1 again, its default window starts at
    the rollback (rows written directly, backdated: the store records promotions at the current time)."""
    rows = [
        {"service": "orders", "from_side": "v1", "to_side": "v2", "reason": "bench", "actor": "bench",
         "at": rolled_back - timedelta(hours=1)},
        {"service": "orders", "from_side": "v2", "to_side": "v1", "reason": "bench", "actor": "bench",
         "at": rolled_back},
    ]  # fmt: skip
    async with store._engine.begin() as conn:
        await conn.execute(insert(PromotionRow), rows)


async def _examples(
    store: Store, count: int, pairs: list[tuple[str, str]], start: datetime, minutes: int, rng: random.Random
) -> int:
    """`count` example exchanges through the store's write path (examples only: their counts are in the rollups)."""
    body = b'{"id": 1, "total": "27.00", "items": [{"price": "9.00"}], "status": "paid"}'
    written = 0
    batch: list[tuple[Comparison, tuple[tuple[str, str], ...]]] = []
    for n in range(count):
        service, endpoint = pairs[n % len(pairs)]
        at = start + timedelta(minutes=rng.randrange(minutes), seconds=rng.random() * 60)
        x = Exchange(
            id=f"example-{n}",
            started_at=at,
            service=service,
            request=RecordedRequest(endpoint.split(" ")[0], endpoint.split(" ")[1].replace("{id}", "1"), "", (), b""),
            primary=SideResponse(Role.PRIMARY, "v1", 200, (("content-type", "application/json"),), body, 20.0),
            shadow=SideResponse(Role.SHADOW, "v2", 200, (("content-type", "application/json"),), body, 15.0),
        )
        field = FIELDS[n % len(FIELDS)]
        diffs = (FieldDiff(x.id, endpoint, field, DiffKind.CHANGED, "27.00", "28.00", field == "root.created_at"),)
        comparison = Comparison(x, endpoint, Outcome.DIFF, diffs)
        batch.append((comparison, example_keys(comparison)))
        if len(batch) >= 2000:
            await store.write(batch)
            written += len(batch)
            batch = []
    if batch:
        await store.write(batch)
        written += len(batch)
    return written


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, float]:
    """Median and worst wall ms, and median CPU ms of this process (the app in-process; not PostgreSQL's server):
    the machine is shared, so wall times carry other processes' load and CPU times are the ones to compare."""
    await call()  # warm: the first call pays for imports and compiled templates, not for the data
    times, cpu = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        await call()
        times.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    return statistics.median(times), max(times), statistics.median(cpu)


async def measure(url: str, args: argparse.Namespace) -> int:
    began = time.perf_counter()
    now = datetime.now(UTC)
    policy = RetentionPolicy(max_exchanges=max(args.examples * 2, 1000))
    store = await Store.open(url, retention=policy)
    settings = load_settings(overrides={"database_url": url}, environ={})
    try:
        loaded = await load(store, args, now)
        print(
            f"loaded {loaded['exchanges']:,} exchanges' rollups over {args.days:g} days, {args.endpoints} endpoints: "
            f"{loaded['rollup_rows']:,} rollup rows and {loaded['examples']:,} examples in {loaded['load_seconds']} s"
        )
        state = PrimaryState(settings.services, store)
        await state.start()
        from proxy.review.web import admin_routes

        registry = CollectorRegistry()
        app = create_admin_app(
            settings, state=state, registry=registry, extra_routes=admin_routes(settings, store, state)
        )
        endpoint = endpoints(args.endpoints)[0][1]
        failed = 0
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8900") as c:

            async def get(path: str, **params: str) -> None:
                response = await c.get(path, params=params)
                response.raise_for_status()

            async def report(since: str | None) -> None:  # what `shadowdiff report` and `check` load
                await queries.load_report(
                    store,
                    window=window_of(since, datetime.now(UTC)),
                    criteria=Criteria(),
                    noise=NoiseConfig(),
                    primaries=state.snapshot(),
                    services=list(settings.services),
                )

            for window in args.since.split(","):
                since = None if window == "default" else window
                asked = {} if since is None else {"since": since}
                cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                    ("web overview (/)", functools.partial(get, "/", **asked)),
                    ("/api/v1/summary", functools.partial(get, "/api/v1/summary", **asked)),
                    (f"endpoint page ({endpoint})", functools.partial(get, "/endpoint", endpoint=endpoint, **asked)),
                    ("report / check (load_report)", functools.partial(report, since)),
                ]
                shown = "default (since the last promotion)" if since is None else f"since={since}"
                print(f"\n| {store.dialect} · window {shown} | median ms | worst ms | median CPU ms | target |")
                print("|---|---:|---:|---:|---|")
                for name, call in cases:
                    median, worst, cpu = await timed(call, args.repeat)
                    verdict = "met" if worst < TARGET_MS else "MISSED"
                    failed += worst >= TARGET_MS
                    print(f"| {name} | {median:.0f} | {worst:.0f} | {cpu:.0f} | < {TARGET_MS:.0f} ms: {verdict} |")
        await state.aclose()
        print(f"\n{store.dialect}: fill and measurements took {time.perf_counter() - began:.0f} s")
        return failed
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", action="append", help="store(s) to fill (default: a temporary SQLite file)")
    parser.add_argument(
        "--private-postgres", action="store_true", help="also fill a PostgreSQL cluster started for the run (initdb)"
    )
    parser.add_argument("--exchanges", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--endpoints", type=int, default=12)
    parser.add_argument("--examples", type=int, default=50_000, help="stored example exchanges")
    parser.add_argument(
        "--since", default=WINDOWS, help="the windows reports are asked for, comma-separated (all, default, 7d, 24h...)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    urls = args.database_url or []
    workdir = None
    if not urls:
        workdir = tempfile.mkdtemp(prefix="shadowdiff-rollup-bench-")
        urls = [f"sqlite+aiosqlite:///{Path(workdir) / 'store.db'}"]
    failed = 0
    cluster = PrivatePostgres() if args.private_postgres else None
    try:
        if cluster is not None:
            cluster.start()
            urls = [*urls, cluster.url]
        for url in urls:
            failed += asyncio.run(measure(url, args))
    finally:
        if cluster is not None:
            cluster.destroy()
    if workdir is not None:
        for name in os.listdir(workdir):
            os.unlink(Path(workdir) / name)
        os.rmdir(workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
