"""The async engine: SQLite in WAL mode with a busy timeout and explicit BEGINs, or PostgreSQL through asyncpg.

SQLAlchemy errors are translated here, once: `StoreUnavailable` when retrying may help (database locked, read-only,
unreachable, connection lost), `StoreError` otherwise.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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


def make_engine(url: URL, *, schema: str | None = None, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> AsyncEngine:
    """An engine for `url` (already mapped to an async driver); `schema` sets PostgreSQL's search_path."""
    if is_sqlite(url):
        memory = is_memory(url)
        engine = create_async_engine(url, poolclass=StaticPool if memory else None)
        _sqlite_pragmas(engine, busy_timeout_ms, wal=not memory)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args)


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


def translate(exc: BaseException) -> StoreError:
    """Map a driver or SQLAlchemy error to the store's errors."""
    if isinstance(exc, OSError | PoolTimeout | OperationalError):
        return StoreUnavailable(f"database unavailable: {_first_line(exc)}")
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or _is_connection_error(exc.orig)):
        return StoreUnavailable(f"database connection lost: {_first_line(exc)}")
    return StoreError(f"database error: {_first_line(exc)}")


def _is_connection_error(orig: BaseException | None) -> bool:
    # asyncpg's errors arrive wrapped; their class names say what happened without importing asyncpg here.
    names = {cls.__name__ for cls in type(orig).__mro__} if orig is not None else set()
    return bool(
        names
        & {
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
            "InterfaceError",
            "AdminShutdownError",
            "CannotConnectNowError",
            "TooManyConnectionsError",
            "OSError",
        }
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
