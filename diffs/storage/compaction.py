"""Compaction: each hour's rows computed from its minute rows, each day's from its hour rows, once the period ended.

Writers add to minute rows only and mark the hour and the day they wrote to as pending (`rollup_rows.add`). A pass
takes every pending period that ended `SETTLE` ago, hours first, and in one transaction per (period, service): locks
its mark, adds up the finer rows, replaces the period's rows, and clears the mark unless a writer bumped its version
meanwhile (then the next pass does it again). A day waits until none of its hours is pending. Reports read the
finer rows of any period still pending, so they are exact before, during and after compaction.

One pass at a time across replicas on PostgreSQL (an advisory lock, as pruning has); on SQLite, one host, write
transactions take turns anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from diffs.rollups import GRAINS, Cell
from diffs.storage import engine as engines
from diffs.storage.rollup_rows import PENDING, TABLE, cell_of, pending, values_of

SETTLE = timedelta(seconds=5)
"""How long after a period ends it is compacted: writers write their minutes within a second, normally."""


@contextlib.asynccontextmanager
async def advisory_turn(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    """Whether this process may run `name` now: on PostgreSQL, holding its session advisory lock meanwhile."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = f"hashtext('shadowdiff.{name}.' || current_schema())"
    async with engine.connect() as conn:
        got = bool((await conn.execute(text(f"SELECT pg_try_advisory_lock({key})"))).scalar_one())
        await conn.commit()
        try:
            yield got
        finally:
            if got:
                await conn.execute(text(f"SELECT pg_advisory_unlock({key})"))
                await conn.commit()


async def compact(engine: AsyncEngine, now: datetime) -> int | None:
    """One pass; how many periods were compacted (None: another process holds the turn)."""
    try:
        async with advisory_turn(engine, "compact") as mine:
            if not mine:
                return None
            async with engines.reading(engine) as conn:
                marked = await pending(conn)
            done = 0
            for grain, start, service in sorted(marked):
                if start + timedelta(seconds=grain) > now - SETTLE:
                    continue
                if grain == GRAINS[2] and any(
                    g == GRAINS[1] and s == service and start <= t < start + timedelta(days=1) for g, t, s in marked
                ):
                    continue  # its hours first (they were, just above, unless a writer came back meanwhile)
                if await _compact_one(engine, grain, start, service):
                    done += 1
                    marked.discard((grain, start, service))
            return done
    except SQLAlchemyError as exc:
        raise engines.translate(exc) from exc


async def _compact_one(engine: AsyncEngine, grain: int, start: datetime, service: str) -> bool:
    finer = GRAINS[GRAINS.index(grain) - 1]
    mark = and_(PENDING.c.grain == grain, PENDING.c.start == start, PENDING.c.service == service)
    async with engines.writing(engine) as conn:
        version_query = select(PENDING.c.version).where(mark)
        if conn.dialect.name == "postgresql":
            version_query = version_query.with_for_update()  # a writer's bump waits, or we wait for it
        version = (await conn.execute(version_query)).scalar_one_or_none()
        if version is None:
            return False  # done meanwhile
        rows = (
            await conn.execute(
                select(TABLE).where(
                    TABLE.c.grain == finer,
                    TABLE.c.service == service,
                    TABLE.c.start >= start,
                    TABLE.c.start < start + timedelta(seconds=grain),
                )
            )
        ).all()
        cells: dict[tuple[str, str, str], Cell] = {}
        for row in rows:
            key = (row.endpoint, row.direction, row.run)
            cell = cells.get(key)
            if cell is None:
                cells[key] = cell_of(row)
            else:
                cell.merge(cell_of(row))
        await conn.execute(
            delete(TABLE).where(TABLE.c.grain == grain, TABLE.c.start == start, TABLE.c.service == service)
        )
        values = [
            {
                "grain": grain,
                "start": start,
                "service": service,
                "endpoint": e,
                "direction": d,
                "run": r,
                **values_of(c),
            }
            for (e, d, r), c in sorted(cells.items())
        ]
        if values:
            await conn.execute(insert(TABLE), values)
        await conn.execute(delete(PENDING).where(mark, PENDING.c.version == version))
    return True
