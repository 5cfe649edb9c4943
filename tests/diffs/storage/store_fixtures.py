"""Helpers shared by the store tests (a plain module: importing from conftest is ambiguous)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffs.storage import Store


@dataclass(frozen=True, slots=True)
class Database:
    """Where a test's store lives: a URL, plus the PostgreSQL schema isolating it from concurrent runs."""

    url: str
    schema: str | None = None

    async def open(self, **options: Any) -> Store:
        return await Store.open(self.url, schema=self.schema, **options)
