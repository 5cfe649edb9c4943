"""Transient database errors are told from permanent ones by the driver's own error, found along the chain, and a
private PostgreSQL stopped mid-traffic loses no count: the writer retries until it is back."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, IntegrityError
from store_fixtures import comparison

from bench.private_postgres import PrivatePostgres, binaries
from diffs.report import Window
from diffs.storage import Store, StoreUnavailable, queries
from diffs.storage.engine import translate
from diffs.storage.writer import BatchWriter
from proxy.errors import StoreError


def as_sqlalchemy_raises(driver_error: Exception) -> DBAPIError:
    """The error SQLAlchemy's asyncpg dialect raises for `driver_error`: asyncpg's own on `__cause__` of an adapter
    error (with the SQLSTATE), wrapped in a DBAPIError."""
    dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)
    for cls in type(driver_error).__mro__:
        if cls in dbapi._asyncpg_error_translate:
            adapted = dbapi._asyncpg_error_translate[cls](str(driver_error), driver_error)
            break
    try:
        try:
            raise driver_error
        except Exception as exc:
            raise adapted from exc
    except Exception as exc:
        wrapped = DBAPIError.instance("INSERT ...", {}, exc, dbapi.Error)
    assert isinstance(wrapped, DBAPIError)
    return wrapped


def pg(cls: type[Exception], message: str) -> Exception:
    return cls(message)


@pytest.mark.parametrize(
    "error",
    [
        pg(asyncpg.exceptions.CannotConnectNowError, "the database system is shutting down"),
        pg(asyncpg.exceptions.AdminShutdownError, "terminating connection due to administrator command"),
        pg(asyncpg.exceptions.CrashShutdownError, "terminating connection because of crash of another process"),
        pg(asyncpg.exceptions.TooManyConnectionsError, "sorry, too many clients already"),
        pg(asyncpg.exceptions.ConnectionDoesNotExistError, "connection was closed in the middle of operation"),
        pg(asyncpg.exceptions.DeadlockDetectedError, "deadlock detected"),
        pg(asyncpg.exceptions.SerializationError, "could not serialize access"),
        pg(asyncpg.exceptions.DiskFullError, "could not extend file: No space left on device"),
        pg(asyncpg.exceptions.ReadOnlySQLTransactionError, "cannot execute INSERT in a read-only transaction"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_postgresql_errors_worth_a_retry_are_transient(error: Exception) -> None:
    translated = translate(as_sqlalchemy_raises(error))
    assert isinstance(translated, StoreUnavailable), translated


@pytest.mark.parametrize(
    "error",
    [
        pg(asyncpg.exceptions.UniqueViolationError, "duplicate key value violates unique constraint"),
        pg(asyncpg.exceptions.StringDataRightTruncationError, "value too long for type character varying(64)"),
        pg(asyncpg.exceptions.UndefinedTableError, 'relation "exchanges" does not exist'),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_about_the_data_are_not(error: Exception) -> None:
    translated = translate(as_sqlalchemy_raises(error))
    assert isinstance(translated, StoreError) and not isinstance(translated, StoreUnavailable)


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("database is locked", True),
        ("database or disk is full", True),
        ("disk I/O error", True),
        ("attempt to write a readonly database", True),
        ("no such table: exchanges", False),
    ],
)
def test_sqlite_errors(message: str, transient: bool) -> None:
    wrapped: Any = DBAPIError.instance("INSERT ...", {}, sqlite3.OperationalError(message), sqlite3.Error)
    assert isinstance(translate(wrapped), StoreUnavailable) is transient
    assert not isinstance(translate(IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE"))), StoreUnavailable)


@pytest.mark.slow
async def test_a_private_postgresql_stopped_under_traffic_loses_no_count() -> None:
    if binaries() is None:
        pytest.skip("PostgreSQL's server binaries are not installed")
    with PrivatePostgres() as cluster:
        store = await Store.open(cluster.url)
        dropped: list[tuple[int, str]] = []
        writer = BatchWriter(
            store, max_delay=0.01, rollup_every=0.02, max_backoff=0.1, on_drop=lambda *d: dropped.append(d)
        )
        writer.start()
        sent = 0
        try:

            async def traffic(seconds: float) -> None:
                nonlocal sent
                for _ in range(int(seconds / 0.01)):
                    writer.submit(comparison(diffs=[("root.a", sent, -1)] if sent % 5 == 0 else ()))
                    sent += 1
                    await asyncio.sleep(0.01)

            await traffic(0.5)
            await asyncio.to_thread(cluster.stop, "fast")  # "the database system is shutting down", then refused
            await traffic(1.5)
            assert writer.failing_since is not None and writer.pending > 0
            await asyncio.to_thread(cluster.start)
            await traffic(0.5)
            await asyncio.wait_for(writer.flush(), 30)
            found = await queries.totals(store, Window())
            assert sum(sum(t.outcomes.values()) for t in found.values()) == sent
            assert dropped == [] and writer.dropped_rows == 0 and writer.failing_since is None
        finally:
            await writer.aclose(5)
            await store.close()
