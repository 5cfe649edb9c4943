"""The async engine and its sessions: read sessions, serialized write transactions, schema migration, query timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from v2_app.models import NULLABLE_ADDITIONS, Base

QueryObserver = Callable[[str, float], None]
"""Called with (operation, seconds) after every SQL statement."""

_OPERATIONS = frozenset({"select", "insert", "update", "delete", "pragma", "create", "alter"})


def operation_of(statement: str) -> str:
    """The bounded metric label for a statement: its first keyword, or `other`."""
    word = statement.lstrip().split(None, 1)[0].lower() if statement.strip() else ""
    return word if word in _OPERATIONS else "other"


class Database:
    """One engine per app. Writes go through `write()`: one transaction each, one at a time."""

    def __init__(self, url: str, *, observe_query: QueryObserver | None = None, busy_timeout: float = 5.0) -> None:
        self.url = url
        connect_args: dict[str, Any] = {"timeout": busy_timeout} if url.startswith("sqlite") else {}
        self.engine: AsyncEngine = create_async_engine(url, connect_args=connect_args)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # SQLite has one writer anyway; serializing here turns "database is locked" races into a queue,
        # and with the conditional stock UPDATE it is what keeps concurrent orders from overselling.
        self._write_lock = asyncio.Lock()
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        if observe_query is not None:
            _time_queries(self.engine, observe_query)

    async def migrate(self) -> None:
        """Create missing tables, and add V2's nullable columns to tables V1 created."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_create_and_extend)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block exits normally, rolled back on any exception."""
        async with self._write_lock, self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets reads proceed while a write transaction is open; V1 sets the same mode on its database.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _create_and_extend(conn: Connection) -> None:
    Base.metadata.create_all(conn)
    inspector = inspect(conn)
    for table, columns in NULLABLE_ADDITIONS.items():
        present = {column["name"] for column in inspector.get_columns(table)}
        for name in columns:
            if name not in present:
                column_type = Base.metadata.tables[table].c[name].type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {column_type} NULL")


def _time_queries(engine: AsyncEngine, observe: QueryObserver) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _start(conn: Connection, _cursor: Any, _statement: str, *_args: Any) -> None:
        conn.info.setdefault("v2_query_start", []).append(time.perf_counter())

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _stop(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        started = conn.info["v2_query_start"].pop()
        observe(operation_of(statement), time.perf_counter() - started)

    @event.listens_for(sync_engine, "handle_error")
    def _failed(context: Any) -> None:
        starts = context.connection.info.get("v2_query_start") if context.connection is not None else None
        if starts:
            observe(operation_of(context.statement or ""), time.perf_counter() - starts.pop())
