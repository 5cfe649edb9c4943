"""Keeping every table bounded: examples, rollups, id pairs, the promotion audit and the state feed.

One pass (`prune`) deletes, in short transactions: exchanges (examples) past `max_age` and beyond `max_exchanges`,
oldest first, with their children; rollup rows older than `rollup_max_age`; id pairs past `correlation_max_age`
and beyond `max_correlations`, oldest first; promotion rows beyond `max_promotions` per service, oldest first (the
newest row of a service, which holds its primary, always stays); feed events past `event_max_age`.

Several replicas may run a `Pruner`; on PostgreSQL only one pass runs at a time (a session advisory lock taken with
`pg_try_advisory_lock`: the others skip their turn). On SQLite, one host, writers already take turns.

Between two passes the exchanges table can overshoot `max_exchanges` by the examples stored in one `prune_interval`,
which the example quotas bound (see docs/scaling.md); rollups, which count everything, do not grow with traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from diffs.storage import engine as engines
from diffs.storage import rollup_rows
from diffs.storage.compaction import advisory_turn
from diffs.storage.models import (
    EventRow,
    ExampleRow,
    ExchangeRow,
    FieldDiffRow,
    IdPairRow,
    PayloadRow,
    PromotionRow,
)
from diffs.storage.retention import RetentionPolicy
from diffs.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Prunable(Protocol):
    async def prune(self) -> int: ...

    async def compact(self) -> int | None: ...


@dataclass(slots=True)
class Pruned:
    """Rows deleted by one pass, per table; `skipped` when another process held the pruning lock."""

    exchanges: int = 0
    rollups: int = 0
    correlations: int = 0
    promotions: int = 0
    events: int = 0
    skipped: bool = False

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "skipped")


class Pruner:
    """Runs `store.compact()` every `compact_interval` seconds and `store.prune()` every `interval` seconds in a
    background task until closed; failures are logged and retried next time."""

    def __init__(self, store: Prunable, interval: float, compact_interval: float = 10.0) -> None:
        self._store = store
        self.interval = interval
        self.compact_interval = min(compact_interval, interval)
        self.deleted = 0
        self.passes = 0
        self.compacted = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shadowdiff-pruner")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        due = 0.0
        while True:
            try:
                self.compacted += await self._store.compact() or 0
            except Exception:
                self.failures += 1
                log.exception("compacting rollups failed; retrying in %gs", self.compact_interval)
            if due <= 0:
                try:
                    self.deleted += await self._store.prune()
                    self.passes += 1
                except Exception:
                    self.failures += 1
                    log.exception("pruning failed; retrying in %gs", self.interval)
                due = self.interval
            await asyncio.sleep(self.compact_interval)
            due -= self.compact_interval


async def prune(engine: AsyncEngine, policy: RetentionPolicy, now: datetime) -> Pruned:
    """One pruning pass over every table (see the module docstring)."""
    result = Pruned()
    try:
        async with advisory_turn(engine, "prune") as mine:
            if not mine:
                result.skipped = True
                return result
            result.exchanges = await _prune_exchanges(engine, policy, now)
            async with engines.writing(engine) as conn:
                result.rollups = await rollup_rows.delete_before(conn, now - policy.rollup_max_age)
                gone = await conn.execute(delete(EventRow).where(EventRow.at < now - policy.event_max_age))
                result.events = int(gone.rowcount or 0)
            result.correlations = await _prune_correlations(engine, policy, now)
            result.promotions = await _prune_promotions(engine, policy)
    except SQLAlchemyError as exc:
        raise engines.translate(exc) from exc
    return result


async def _prune_exchanges(engine: AsyncEngine, policy: RetentionPolicy, now: datetime) -> int:
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


async def _prune_correlations(engine: AsyncEngine, policy: RetentionPolicy, now: datetime) -> int:
    c = IdPairRow
    deleted = 0
    if policy.correlation_max_age is not None:
        async with engines.writing(engine) as conn:
            gone = await conn.execute(delete(c).where(c.created_at < now - policy.correlation_max_age))
            deleted += int(gone.rowcount or 0)
    async with engines.reading(engine) as conn:
        excess = (await conn.execute(select(func.count()).select_from(c))).scalar_one() - policy.max_correlations
    key = (c.service, c.resource, c.from_side, c.to_side, c.from_id)
    while excess > 0:
        oldest = select(*key).order_by(c.created_at, *key)
        async with engines.writing(engine) as conn:
            keys = (await conn.execute(oldest.limit(min(policy.prune_batch, excess)))).all()
            if not keys:
                break
            await conn.execute(delete(c).where(tuple_(*key).in_([tuple(k) for k in keys])))
        deleted += len(keys)
        excess -= len(keys)
    return deleted


async def _prune_promotions(engine: AsyncEngine, policy: RetentionPolicy) -> int:
    p = PromotionRow
    rank = func.row_number().over(partition_by=p.service, order_by=p.id.desc()).label("rank")
    ranked = select(p.id, rank).subquery()
    beyond = select(ranked.c.id).where(ranked.c.rank > max(1, policy.max_promotions))
    async with engines.writing(engine) as conn:
        gone = await conn.execute(delete(p).where(p.id.in_(beyond)))
    return int(gone.rowcount or 0)
