"""The async engine: SQLite in WAL mode with a busy timeout and explicit BEGINs, or PostgreSQL through asyncpg.

SQLAlchemy errors are translated here, once: `StoreUnavailable` when retrying may help (database locked, busy, full,
read-only, unreachable, shutting down, connection lost, deadlock), `StoreError` otherwise. The driver's own error is
looked for along the whole chain: SQLAlchemy wraps asyncpg's errors in adapter classes and keeps asyncpg's on
`__cause__`, with the SQLSTATE on both.

Pools are small and bounded (`Pool`): each process holds at most `size + max_overflow` connections, plus one for
LISTEN on PostgreSQL (see docs/scaling.md for the formula).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from diffs.errors import StoreError
from diffs.storage.urls import is_memory, is_sqlite

BUSY_TIMEOUT_MS = 5_000


class StoreUnavailable(StoreError):
    """The database could not be reached or written just now (locked, read-only, down); a retry may succeed."""


@dataclass(frozen=True, slots=True)
class Pool:
    """Connections one process may hold: `size` kept open, `max_overflow` more under load, waiting `timeout` s."""

    size: int = 3
    max_overflow: int = 2
    timeout: float = 10.0
    pgbouncer: bool = False
    """PgBouncer in transaction mode: no prepared-statement caches, unique statement names, no LISTEN."""


WAL_LIMIT_BYTES = 1024 * 1024
"""SQLite truncates its write-ahead log back to this after each checkpoint, so the file does not keep the space
it grew into (on a full disk, that space is what lets writes start again)."""
WAL_CHECKPOINT_PAGES = 256
"""Checkpoint every 256 pages (1 MiB at 4 KiB a page) instead of SQLite's 1000: the data lives in the database file,
and the log stays small enough to be checkpointed in the little space a full disk gets back."""


def make_engine(
    url: URL, *, schema: str | None = None, busy_timeout_ms: int = BUSY_TIMEOUT_MS, pool: Pool | None = None
) -> AsyncEngine:
    """An engine for `url` (already mapped to an async driver); `schema` sets PostgreSQL's search_path."""
    pool = pool or Pool()
    if is_sqlite(url):
        memory = is_memory(url)
        options: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
        if not memory:
            options.update(pool_size=pool.size, max_overflow=pool.max_overflow, pool_timeout=pool.timeout)
        engine = create_async_engine(url, **options)
        _sqlite_pragmas(engine, busy_timeout_ms, wal=not memory)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    if pool.pgbouncer:
        # A transaction-mode pooler hands each transaction any server connection: a statement prepared on one is
        # unknown on the next, and asyncpg's numbered names collide. Nothing cached, every name unique.
        connect_args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=lambda: f"__shadowdiff_{uuid4().hex}__",
        )
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout,
        connect_args=connect_args,
    )


def _sqlite_pragmas(engine: AsyncEngine, busy_timeout_ms: int, *, wal: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module, which would only BEGIN before DML (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if wal:
            # WAL with NORMAL stays consistent after a crash; only the newest commits may be lost on power failure.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then writes gets SQLITE_BUSY
        # without waiting when another process wrote in between, while BEGIN IMMEDIATE waits out busy_timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


async def use_wal(engine: AsyncEngine, timeout: float) -> None:
    """Switch a SQLite database file to WAL mode (persistent: done once per file, checked on every open).

    Several processes creating the file at once race for the switch, and SQLite answers the loser "database is
    locked" at once instead of waiting out busy_timeout, so the switch is retried here until `timeout`.
    """
    if engine.dialect.name != "sqlite" or is_memory(engine.url):
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection  # outside any transaction: SQLite refuses the switch inside one
                assert driver is not None
                cursor = await driver.execute("PRAGMA journal_mode = WAL")
                row = await cursor.fetchone()
                await cursor.close()
            if row is not None and str(row[0]).lower() == "wal":
                return
            raise StoreError(f"SQLite refused WAL mode (journal_mode is {row[0] if row else None!r})")
        except (SQLAlchemyError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise translate(exc) from exc
            await asyncio.sleep(0.02)


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One write transaction, committed on success; errors translated."""
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                yield conn
    except (SQLAlchemyError, OSError) as exc:
        raise translate(exc) from exc


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One read transaction (a consistent snapshot); errors translated."""
    try:
        async with engine.connect() as conn, conn.begin():
            yield conn
    except (SQLAlchemyError, OSError) as exc:
        raise translate(exc) from exc


def listener(url: URL, schema: str | None, channel: str) -> Callable[[Callable[[], None]], Awaitable[Any]]:
    """How `diffs.storage.feed.Feed` opens its LISTEN connection: asyncpg directly, outside the pool."""

    async def listen(wake: Callable[[], None]) -> Any:
        import asyncpg  # only PostgreSQL stores get here

        dsn = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        settings = {"search_path": schema} if schema is not None else None
        conn = await asyncpg.connect(dsn, server_settings=settings, timeout=10)
        try:
            await conn.add_listener(channel, lambda *_: wake())
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(lambda *_: wake())
        return conn

    return listen


async def checkpoint(engine: AsyncEngine) -> None:
    """SQLite: move the write-ahead log into the database file and truncate it (best effort).

    After a full disk, the log holds the space it grew into while the main file was never checkpointed; this gives
    that space back and lets writes start again as soon as a little is free.
    """
    if engine.dialect.name != "sqlite" or is_memory(engine.url):
        return
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await cursor.fetchall()
            await cursor.close()
    except (SQLAlchemyError, sqlite3.Error, OSError):
        pass


TRANSIENT_SQLSTATES = ("08", "53", "57P", "58", "40001", "40P01", "55P03", "55006", "25006")
"""SQLSTATE prefixes worth a retry: connection exceptions, insufficient resources (disk full, out of memory, too
many connections), operator intervention (admin or crash shutdown, cannot connect now), system errors (I/O),
serialization failures, deadlocks, locks not available, objects in use, a read-only transaction (a failover)."""
_TRANSIENT_NAMES = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "AdminShutdownError",
        "CrashShutdownError",
        "CannotConnectNowError",
        "TooManyConnectionsError",
        "InterfaceError",
        "InternalClientError",
        "TimeoutError",
        "OSError",
    }
)
_SQLITE_TRANSIENT = ("locked", "busy", "disk is full", "disk i/o", "unable to open", "readonly", "out of memory")


def _chain(exc: BaseException) -> list[BaseException]:
    """The error, what it wraps (`orig`), and their causes and contexts: where the driver's own error is."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may succeed: the database is busy, full, down or unreachable now, not refusing the data."""
    for item in _chain(exc):
        if isinstance(item, OSError | PoolTimeout | TimeoutError | ConnectionError):
            return True
        if isinstance(item, sqlite3.OperationalError):
            return any(word in str(item).lower() for word in _SQLITE_TRANSIENT)
        state = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
        if isinstance(state, str) and state.startswith(TRANSIENT_SQLSTATES):
            return True
        if {cls.__name__ for cls in type(item).__mro__} & _TRANSIENT_NAMES:
            return True
        if isinstance(item, DBAPIError) and item.connection_invalidated:
            return True
    return isinstance(exc, OperationalError)


def translate(exc: BaseException) -> StoreError:
    """Map a driver or SQLAlchemy error to the store's errors."""
    if is_transient(exc):
        return StoreUnavailable(f"database unavailable: {_first_line(exc)}")
    return StoreError(f"database error: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
