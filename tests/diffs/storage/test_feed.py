"""The state feed reads events by id: an event may not become visible after a later one was read, or a reader
that already moved past its id never hears of it (an id pair, a pending create, a promotion lost to a replica).
`sync` reads only when no delivered read started after the moment asked about, and only when a cheap lookup of the
newest id (SQLite's file, PostgreSQL's LISTEN connection) says there is something to read."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_fixtures import Database, postgres_schema

from diffs.storage import engine as engines
from diffs.storage import feed as feeds
from diffs.storage.feed import Event
from tests.databases import sqlite_or_postgres


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    async with postgres_schema(postgres_url) as database:
        yield database


async def test_an_event_committed_after_a_later_one_was_read_is_still_heard(database: Database) -> None:
    store = await database.open()
    writers = database.engine()
    heard: list[int] = []

    def hear(event: Event) -> None:
        heard.append(event.payload["n"])

    release = asyncio.Event()

    async def publish(n: int, *, hold: bool = False) -> None:
        async with engines.writing(writers) as conn:
            await feeds.publish(conn, "test", {"n": n})
            if hold:
                await release.wait()  # its id is taken, its commit comes later

    try:
        await store.follow("test", hear)
        first = asyncio.create_task(publish(1, hold=True))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(publish(2))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(second), 0.3)  # committed ahead of the first (unless it waits)
        await store.feed.read()  # a reader passing by now
        release.set()
        await asyncio.gather(first, second)
        await store.feed.read()
    finally:
        release.set()
        await store.close()
        await writers.dispose()
    assert heard == [1, 2]


async def test_sync_reads_only_when_no_read_since_the_moment_asked_about_was_delivered(database: Database) -> None:
    # Polling (no LISTEN), and not within the test: only `read` and `sync` read.
    store = await database.open(pool=engines.Pool(pgbouncer=True), poll_interval=60.0, safety_interval=60.0)
    writers = database.engine()
    heard: list[int] = []
    try:
        await store.follow("test", lambda event: heard.append(event.payload["n"]))
        before = time.monotonic()
        await store.feed.read()
        async with engines.writing(writers) as conn:
            await feeds.publish(conn, "test", {"n": 1})
        assert await store.feed.sync(after=before, timeout=1.0)  # a read that started after `before` was delivered
        assert heard == []
        assert await store.feed.sync(after=time.monotonic(), timeout=1.0)  # none since now: reads
        assert heard == [1]
    finally:
        await store.close()
        await writers.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with sqlite_or_postgres(request, tmp_path / "feed.db") as found:
        yield Database(*found)


async def test_sync_looks_up_the_newest_id_first_and_reads_only_when_there_is_more(any_database: Database) -> None:
    store = await any_database.open(poll_interval=60.0, safety_interval=60.0)
    writers = any_database.engine()
    heard: list[int] = []
    feed = store.feed
    try:
        await store.follow("test", lambda event: heard.append(event.payload["n"]))
        for _ in range(200):  # PostgreSQL: the lookup goes through the LISTEN connection, once it is open
            if feed.listening or any_database.schema is None:
                break
            await asyncio.sleep(0.01)
        await feed.read()
        read_at = feed.read_at
        assert await feed.sync(after=time.monotonic(), timeout=1.0)
        assert feed.read_at == read_at  # nothing new: no read
        async with engines.writing(writers) as conn:
            await feeds.publish(conn, "test", {"n": 1})
        assert await feed.sync(after=time.monotonic(), timeout=1.0)
        assert heard == [1]
    finally:
        await store.close()
        await writers.dispose()
