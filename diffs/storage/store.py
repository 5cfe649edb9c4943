"""The `Store`: the one door to the database for the proxy, the writer and the reports."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from diffs.storage import engine as engines
from diffs.storage.engine import StoreUnavailable
from diffs.storage.models import PromotionRow
from diffs.storage.records import PromotionRecord
from diffs.storage.schema import upgrade
from diffs.storage.urls import async_url

__all__ = ["Store", "StoreUnavailable"]

SIDES = frozenset({"v1", "v2"})


class Store:
    """Async persistence over SQLite (default, one machine) or PostgreSQL (several replicas)."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use `Store.open`; this takes an engine whose schema is already current."""
        self._engine = engine

    @classmethod
    async def open(cls, database_url: str, *, schema: str | None = None) -> Store:
        """Connect and bring the schema to the newest revision. `schema`: PostgreSQL schema to live in."""
        engine = engines.make_engine(async_url(database_url), schema=schema)
        try:
            async with engines.writing(engine) as conn:
                await conn.run_sync(upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    # -- promotions ---------------------------------------------------------------------------------------------------

    async def get_primaries(self) -> dict[str, str]:
        """service -> "v1"/"v2" from each service's newest promotion; services never promoted are absent."""
        newest = select(func.max(PromotionRow.id)).group_by(PromotionRow.service)
        query = select(PromotionRow.service, PromotionRow.to_side).where(PromotionRow.id.in_(newest))
        async with engines.reading(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        return {service: side for service, side in rows}

    async def record_promotion(
        self, service: str, from_side: str, to_side: str, reason: str, actor: str
    ) -> PromotionRecord:
        """Persist one change of `service`'s primary, with who did it and why."""
        for name, side in (("from_side", from_side), ("to_side", to_side)):
            if side not in SIDES:
                raise ValueError(f"{name} must be 'v1' or 'v2', not {side!r}")
        at = datetime.now(UTC)
        values = {"service": service, "from_side": from_side, "to_side": to_side, "reason": reason, "actor": actor}
        async with engines.writing(self._engine) as conn:
            result = await conn.execute(insert(PromotionRow).values(at=at, **values).returning(PromotionRow.id))
            new_id = result.scalar_one()
        return PromotionRecord(new_id, service, from_side, to_side, reason, actor, at)

    async def list_promotions(self, service: str | None = None, limit: int = 100) -> list[PromotionRecord]:
        """The audit trail, newest first."""
        query = select(PromotionRow).order_by(PromotionRow.id.desc()).limit(limit)
        if service is not None:
            query = query.where(PromotionRow.service == service)
        async with engines.reading(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        return [
            PromotionRecord(
                id=row.id,
                service=row.service,
                from_side=row.from_side,
                to_side=row.to_side,
                reason=row.reason,
                actor=row.actor,
                at=row.at,
            )
            for row in rows
        ]
