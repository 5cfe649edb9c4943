"""The legacy app's database: a sync engine on SQLite, read sessions, and serialized write transactions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from legacy_app.models import Base
from legacy_app.settings import sync_sqlite_url


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(database_url: str) -> Engine:
    """A sync engine usable from the threadpool; creates no tables."""
    engine = create_engine(
        sync_sqlite_url(database_url),
        connect_args={"check_same_thread": False, "timeout": 30},
    )
    event.listen(engine, "connect", _on_connect)
    return engine


class Database:
    """One engine, a session factory, and the lock that serializes writes (so stock is checked and taken atomically)."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock()

    def create_tables(self) -> None:
        Base.metadata.create_all(self.engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back (nothing changed) when it raises."""
        with self._write_lock, self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
