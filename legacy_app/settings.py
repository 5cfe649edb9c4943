"""The legacy app's settings: where its SQLite database lives and how loud it logs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def sync_sqlite_url(database_url: str) -> URL:
    """Parse a SQLite URL and map async drivers (`sqlite+aiosqlite://`) to the stdlib sync driver."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ValueError(f"database_url {database_url!r} is not a valid database URL") from exc
    if url.get_backend_name() != "sqlite":
        raise ValueError(f"database_url {database_url!r} is not a SQLite URL (the legacy app only runs on SQLite)")
    if url.database in (None, "", ":memory:"):
        # Every pooled connection would get its own empty in-memory database.
        raise ValueError(f"database_url {database_url!r} must name a SQLite file, not an in-memory database")
    return url.set(drivername="sqlite")


@dataclass(frozen=True, slots=True)
class LegacySettings:
    database_url: str = "sqlite:///./legacy.db"
    """`sqlite:///path`; `sqlite+aiosqlite:///path` is accepted and served with the sync driver."""
    log_level: str = "info"

    def __post_init__(self) -> None:
        sync_sqlite_url(self.database_url)
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(f"log_level {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
