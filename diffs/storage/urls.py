"""Database URLs: map the plain sqlite:// and postgresql:// forms to their async drivers."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from diffs.errors import ConfigError

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def async_url(database_url: str) -> URL:
    """Parse `database_url`, choosing aiosqlite or asyncpg whatever driver it names."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"Config 'database_url' has value {database_url!r}. Not a database URL.") from exc
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(
            f"Config 'database_url' has value {database_url!r}. Only sqlite and postgresql databases are supported."
        )
    return url.set(drivername=_ASYNC_DRIVERS[backend])


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def is_memory(url: URL) -> bool:
    return is_sqlite(url) and url.database in (None, "", ":memory:")
