"""Id pairs across processes: a create through one replica, read at once through another (single-worker replicas),
on SQLite (polling) and PostgreSQL (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from diffs.exchange import Exchange
from diffs.storage import Store
from diffs.storage.feed import Listening
from proxy.config import Settings
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.correlation_store import CorrelationStore
from proxy.dataplane.shared_ids import SharedIds
from tests.databases import sqlite_or_postgres
from tests.proxy.upstreams import OrdersApp, Stack, proxy_stack, settings_for
from tests.servers import run_server


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    async with sqlite_or_postgres(request, tmp_path / "shared.db") as found:
        yield found


@contextlib.asynccontextmanager
async def replica(
    settings: Settings, database: tuple[str, str | None], *, hears_late: float = 0.0
) -> AsyncIterator[tuple[Stack, SharedIds]]:
    """One single-worker replica: its own store connection, correlator, shared ids and proxy. `hears_late`: its
    feed reads that many seconds after each notification (PostgreSQL), as when the request a client sends after a
    commit reaches this replica before the commit's NOTIFY did."""
    url, schema = database
    store = await Store.open(url, schema=schema)
    if hears_late and store.feed._listen is not None:
        listen, loop = store.feed._listen, asyncio.get_running_loop()

        async def late(wake: Callable[[], None]) -> Listening:
            return await listen(lambda: loop.call_later(hears_late, wake))

        store.feed._listen = late
    correlator = IdCorrelator(1000)
    correlations = CorrelationStore(store, correlator)
    shared = SharedIds(store, correlations, wait_seconds=settings.causal_wait_seconds)
    try:
        await shared.start()
        async with proxy_stack(settings, correlator=correlator, shared=shared) as stack:
            yield stack, shared
    finally:
        await correlations.aclose()
        await store.close()


def shadow_targets(app: OrdersApp) -> list[str]:
    return [seen.path for seen in app.recorder.seen]


async def warm(client: httpx.AsyncClient, a: Stack, b: SharedIds) -> None:
    """A first create, heard of by replica B: the tests after it are about the creates that follow one."""
    await client.post(f"{a.url}/api/orders", json={"customer_id": 1})
    for _ in range(200):
        if b.correlator.active("orders"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("replica B never heard of the first create")


@dataclass
class Crossed:
    """A create through replica A, then a read of it through replica B at once."""

    created: dict[str, Any]
    got: httpx.Response
    read: Exchange
    """The read's exchange, as replica B recorded it."""
    shared_b: SharedIds


async def create_then_read_elsewhere(
    v1: OrdersApp,
    v2: OrdersApp,
    database: tuple[str, str | None],
    *,
    warm_up: bool = True,
    hears_late: float = 0.0,
    **overrides: Any,
) -> Crossed:
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2:
        settings = settings_for(u1, u2, **overrides)
        async with (
            replica(settings, database) as (a, _),
            replica(settings, database, hears_late=hears_late) as (b, shared_b),
        ):
            async with httpx.AsyncClient() as client:
                if warm_up:
                    await warm(client, a, shared_b)
                created = (await client.post(f"{a.url}/api/orders", json={"customer_id": 5})).json()
                got = await client.get(f"{b.url}/api/orders/{created['id']}")  # at once, through the other replica
                [read] = await b.sink.wait(1)
    return Crossed(created, got, read, shared_b)


async def test_a_read_through_another_replica_at_once_reaches_the_shadows_own_record(
    database: tuple[str, str | None],
) -> None:
    # Replica B never saw the create: without sharing it sent V2 `GET /api/orders/1` (V1's id), a 404 finding.
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000, create_delay=0.3)
    crossed = await create_then_read_elsewhere(v1, v2, database)
    assert crossed.created["id"] == 2 and crossed.got.status_code == 200
    assert shadow_targets(v2)[1:] == ["/api/orders", "/api/orders/1001"]  # B waited for A's create and its pair
    assert crossed.read.shadow is not None and crossed.read.shadow.status == 200
    assert crossed.shared_b.counts.get("waited") == 1 and "wait_timeout" not in crossed.shared_b.counts


async def test_a_read_whose_create_is_still_pending_past_the_bound_is_not_compared(
    database: tuple[str, str | None],
) -> None:
    # V2 answers the create after the bound: B sends the read with V1's id (V2 answers 404). Before, that 404 was
    # compared and stored as a "status differs" finding; the race is now a skipped exchange, counted.
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000, create_delay=0.6)
    crossed = await create_then_read_elsewhere(v1, v2, database, causal_wait_seconds=0.2)
    assert crossed.read.shadow is not None and crossed.read.shadow.status == 404  # sent anyway, past the bound
    assert crossed.shared_b.counts.get("wait_timeout") == 1
    assert crossed.read.skip_reason == "out_of_order"


async def test_the_first_create_of_a_resource_is_waited_for_by_a_replica_that_never_heard_of_it(
    database: tuple[str, str | None],
) -> None:
    # No warm-up: replica B knows nothing of /api/orders when the read arrives (its feed hears of the create later),
    # and it sent V2 `GET /api/orders/1` (V1's id). Announced before the client saw the id, so B must ask first.
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1000, create_delay=0.2)
    crossed = await create_then_read_elsewhere(v1, v2, database, warm_up=False, hears_late=0.3)
    assert crossed.created["id"] == 1 and crossed.got.status_code == 200
    assert shadow_targets(v2) == ["/api/orders", "/api/orders/1000"]
    assert crossed.read.shadow is not None and crossed.read.shadow.status == 200
    assert crossed.shared_b.counts.get("waited") == 1 and "wait_timeout" not in crossed.shared_b.counts


async def test_a_create_with_the_same_id_on_both_sides_releases_the_others_at_once(
    database: tuple[str, str | None],
) -> None:
    v1, v2 = OrdersApp("v1", 1), OrdersApp("v2", 1, create_delay=0.2)  # both count from 1: no pair is needed
    async with run_server(v1.recorder) as u1, run_server(v2.recorder) as u2:
        settings = settings_for(u1, u2, causal_wait_seconds=10.0)
        async with replica(settings, database) as (a, _), replica(settings, database) as (b, shared_b):
            async with httpx.AsyncClient() as client:
                await warm(client, a, shared_b)
                await client.post(f"{a.url}/api/orders", json={"customer_id": 5})
                await client.get(f"{b.url}/api/orders/2")
                await client.get(f"{b.url}/api/orders/3")  # never created: nothing to wait for
                await b.sink.wait(2)
    assert sorted(shadow_targets(v2)[1:]) == ["/api/orders", "/api/orders/2", "/api/orders/3"]
    # Settled (same id, no pair) rather than waited out: the 10 s bound was never reached.
    assert shared_b.counts.get("waited") == 1 and "wait_timeout" not in shared_b.counts
