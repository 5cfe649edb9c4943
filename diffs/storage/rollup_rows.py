"""Rollups in the database: minute cells added to their rows, periods marked for compaction, and the rows that
cover a window.

Adding is read-modify-write under row locks: every key is first inserted empty (ON CONFLICT DO NOTHING), then read
`FOR UPDATE` on PostgreSQL (SQLite's writer holds the database lock already), merged and written back. Keys are
taken in one order everywhere (Python's, which is PostgreSQL's "C" collation), so two writers cannot deadlock on
each other's rows; if one ever does, PostgreSQL's deadlock error is transient and the batch is retried. In the same
transaction each (hour, service) and (day, service) written to is marked pending (its version bumped, which takes
the mark's row lock: a compaction holding it waits for this write, or this write for it).

Writers touch only minute rows, small and hot for a minute at most; hour and day rows, which every report over
days reads, are computed once per period by the compactor, never rewritten per write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Table, and_, bindparam, delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from diffs.report import LIVE
from diffs.rollups import GRAINS, Cell, Histogram, RollupKey, chunks, floor_time
from diffs.storage.models import Base, PendingRollupRow, RollupRow

TABLE: Table = Base.metadata.tables[RollupRow.__tablename__]
PENDING: Table = Base.metadata.tables[PendingRollupRow.__tablename__]
KEY_COLUMNS = ("grain", "start", "service", "endpoint", "direction", "run")
COUNT_COLUMNS = ("match", "diff", "shadow_error", "skipped", "dropped")
_CHUNK = 200


def values_of(cell: Cell) -> dict[str, Any]:
    """The data columns of one cell."""
    fields: dict[str, dict[str, list[int]]] = {}
    for (path, kind), counts in cell.fields.items():
        fields.setdefault(path, {})[kind] = counts
    values: dict[str, Any] = {name: int(cell.outcomes.get(name, 0)) for name in COUNT_COLUMNS}
    values.update(
        noisy_match=cell.noisy_match,
        primary_latency=cell.primary.encode() or None,
        shadow_latency=cell.shadow.encode() or None,
        statuses=orjson.dumps(dict(cell.statuses)).decode(),
        fields=orjson.dumps(fields).decode(),
        signatures=orjson.dumps(dict(cell.signatures)).decode(),
    )
    return values


def cell_of(row: Any) -> Cell:
    """A fetched row back as a cell (to merge into)."""
    cell = Cell()
    cell.outcomes.update({name: int(getattr(row, name) or 0) for name in COUNT_COLUMNS if getattr(row, name)})
    cell.noisy_match = int(row.noisy_match or 0)
    cell.primary = Histogram.decode(row.primary_latency)
    cell.shadow = Histogram.decode(row.shadow_latency)
    cell.statuses = Counter(orjson.loads(row.statuses or "{}"))
    for path, kinds in orjson.loads(row.fields or "{}").items():
        for kind, counts in kinds.items():
            cell.fields[(path, kind)] = list(counts)
    cell.signatures = Counter(orjson.loads(row.signatures or "{}"))
    return cell


def _key_values(key: RollupKey) -> dict[str, Any]:
    return {name: getattr(key, name) for name in KEY_COLUMNS}


async def add(conn: AsyncConnection, minutes: Mapping[RollupKey, Cell]) -> int:
    """Add minute cells to their rows and mark their hours and days pending; returns how many rows were written."""
    cells = dict(minutes)
    dialect = conn.dialect.name
    keys = TABLE.c
    written = 0
    for chunk in chunks(sorted(cells), _CHUNK):
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TABLE)
        await conn.execute(insert.on_conflict_do_nothing(), [_key_values(k) for k in chunk])
        wanted = tuple_(*(keys[name] for name in KEY_COLUMNS)).in_([tuple(_key_values(k).values()) for k in chunk])
        query = select(TABLE).where(wanted)
        if dialect == "postgresql":
            query = query.order_by(*_c_order()).with_for_update()
        fetched = (await conn.execute(query)).all()
        params = []
        for row in fetched:
            key = RollupKey(row.grain, row.start, row.service, row.endpoint, row.direction, row.run)
            merged = cell_of(row)
            merged.merge(cells[key])
            params.append({**{f"k_{n}": getattr(key, n) for n in KEY_COLUMNS}, **values_of(merged)})
        if len(params) != len(chunk):
            raise RuntimeError(f"rollup rows: {len(chunk)} keys, {len(params)} rows found")  # pragma: no cover
        statement = (
            update(TABLE)
            .where(*(keys[n] == bindparam(f"k_{n}") for n in KEY_COLUMNS))
            .values({name: bindparam(name) for name in (*COUNT_COLUMNS, *_DATA)})
        )
        await conn.execute(statement, params)
        written += len(params)
    await mark_pending(conn, {(g, floor_time(k.start, g), k.service) for k in cells for g in GRAINS[1:]})
    return written


async def mark_pending(conn: AsyncConnection, periods: Iterable[tuple[int, datetime, str]]) -> None:
    """Mark (grain, start, service) periods for compaction, bumping their versions (in one order: no deadlock)."""
    values = [{"grain": g, "start": t, "service": s, "version": 1} for g, t, s in sorted(periods)]
    if not values:
        return
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(PENDING)
    statement = insert.on_conflict_do_update(
        index_elements=["grain", "start", "service"], set_={"version": PENDING.c.version + 1}
    )
    await conn.execute(statement, values)


async def pending(conn: AsyncConnection, services: Iterable[str] | None = None) -> set[tuple[int, datetime, str]]:
    """The periods marked pending: (grain, start, service)."""
    query = select(PENDING.c.grain, PENDING.c.start, PENDING.c.service)
    if services is not None:
        query = query.where(PENDING.c.service.in_(sorted(set(services))))
    return {(g, t, s) for g, t, s in (await conn.execute(query)).all()}


_DATA = ("noisy_match", "primary_latency", "shadow_latency", "statuses", "fields", "signatures")


def _c_order() -> list[ColumnElement[Any]]:
    # Python's order of the key strings (code points) is PostgreSQL's "C" collation, whatever the database's.
    return [TABLE.c[n].collate("C") if n not in ("grain", "start") else TABLE.c[n] for n in KEY_COLUMNS]


def run_clause(run: str | None) -> list[ColumnElement[bool]]:
    """Which traffic: all (None), live only (`LIVE`, stored as "") or one replay run."""
    if run is None:
        return []
    return [TABLE.c.run == ("" if run == LIVE else run)]


def window_clause(ranges: Sequence[tuple[int, datetime | None, datetime]]) -> ColumnElement[bool]:
    """Rows whose (grain, start) fall in one of `diffs.rollups.cover`'s ranges."""
    parts = []
    for grain, low, high in ranges:
        clauses = [TABLE.c.grain == grain, TABLE.c.start < high]
        if low is not None:
            clauses.append(TABLE.c.start >= low)
        parts.append(and_(*clauses))
    return or_(*parts) if parts else TABLE.c.grain == -1


async def fetch(
    conn: AsyncConnection,
    ranges: Sequence[tuple[int, datetime | None, datetime]],
    *,
    run: str | None,
    services: Iterable[str] | None = None,
    endpoint: str | None = None,
) -> Sequence[Any]:
    """The rows covering a window, for some services (None: all) or one endpoint."""
    query = select(TABLE).where(window_clause(ranges), *run_clause(run))
    if services is not None:
        names = sorted(set(services))
        query = query.where(TABLE.c.service.in_(names) if len(names) != 1 else TABLE.c.service == names[0])
    if endpoint is not None:
        query = query.where(TABLE.c.endpoint == endpoint)
    return (await conn.execute(query)).all()


async def delete_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """Rows (and pending marks) whose whole period ended before `cutoff`."""
    total = 0
    for grain in GRAINS:
        result = await conn.execute(
            delete(TABLE).where(TABLE.c.grain == grain, TABLE.c.start < cutoff - timedelta(seconds=grain))
        )
        total += int(result.rowcount or 0)
        await conn.execute(
            delete(PENDING).where(PENDING.c.grain == grain, PENDING.c.start < cutoff - timedelta(seconds=grain))
        )
    return total
