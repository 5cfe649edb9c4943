"""Deleting old exchanges: oldest first, in short batches, until at most `max_exchanges` (and none past `max_age`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from diffs.storage import engine as engines
from diffs.storage.models import ExampleRow, ExchangeRow, FieldDiffRow, PayloadRow
from diffs.storage.retention import RetentionPolicy

log = logging.getLogger(__name__)


class Prunable(Protocol):
    async def prune(self) -> int: ...


class Pruner:
    """Runs `store.prune()` every `interval` seconds in a background task until closed; failures are logged."""

    def __init__(self, store: Prunable, interval: float) -> None:
        self._store = store
        self.interval = interval
        self.deleted = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shadowdiff-pruner")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                self.deleted += await self._store.prune()
            except Exception:
                self.failures += 1
                log.exception("pruning failed; retrying in %gs", self.interval)
            await asyncio.sleep(self.interval)


async def prune(engine: AsyncEngine, policy: RetentionPolicy, now: datetime) -> int:
    """One pruning pass; returns how many exchanges were deleted."""
    deleted = 0
    if policy.max_age is not None:
        cutoff = now - policy.max_age
        while True:
            ids = await _oldest_ids(engine, policy.prune_batch, before=cutoff)
            deleted += await _delete(engine, ids)
            if len(ids) < policy.prune_batch:
                break
    async with engines.reading(engine) as conn:
        total = (await conn.execute(select(func.count()).select_from(ExchangeRow))).scalar_one()
    excess = total - policy.max_exchanges
    while excess > 0:
        ids = await _oldest_ids(engine, min(policy.prune_batch, excess))
        if not ids:
            break
        deleted += await _delete(engine, ids)
        excess -= len(ids)
    return deleted


async def _oldest_ids(engine: AsyncEngine, limit: int, before: datetime | None = None) -> list[str]:
    query = select(ExchangeRow.id).order_by(ExchangeRow.started_at, ExchangeRow.id).limit(limit)
    if before is not None:
        query = query.where(ExchangeRow.started_at < before)
    async with engines.reading(engine) as conn:
        return list((await conn.execute(query)).scalars())


async def _delete(engine: AsyncEngine, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    # Children first and explicitly: SQLite enforces no foreign keys (so no cascades) unless asked per connection.
    async with engines.writing(engine) as conn:
        await conn.execute(delete(ExampleRow).where(ExampleRow.exchange_id.in_(ids)))
        await conn.execute(delete(FieldDiffRow).where(FieldDiffRow.exchange_id.in_(ids)))
        await conn.execute(delete(PayloadRow).where(PayloadRow.exchange_id.in_(ids)))
        result = await conn.execute(delete(ExchangeRow).where(ExchangeRow.id.in_(ids)))
    return int(result.rowcount)
