"""Bulk INSERTs compiled once per table and dialect, run as one driver-level executemany per batch.

Core's `conn.execute(insert(t), rows)` rebuilds parameters row by row through its general machinery; at thousands
of exchanges a second that was most of the writer's CPU. Here each column's bind processor (the UTC conversion,
SQLite's booleans) is applied directly and the rows go to the driver as tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


class BulkInsert:
    """`INSERT INTO table (columns) VALUES (...)` for one dialect, executed over many rows."""

    def __init__(self, table: Table, dialect: Dialect, columns: Sequence[str] | None = None) -> None:
        names = list(columns) if columns is not None else [c.name for c in table.columns if c.autoincrement is not True]
        compiled = insert(table).inline().compile(dialect=dialect, column_keys=names)
        self.sql = compiled.string
        order = compiled.positiontup
        if order is None:
            raise ValueError(f"{dialect.name}: a positional paramstyle is needed for bulk inserts")
        self.columns: tuple[str, ...] = tuple(order)
        processors: list[Callable[[Any], Any] | None] = [
            table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in self.columns
        ]
        self._get = itemgetter(*self.columns)
        self._convert = tuple((i, p) for i, p in enumerate(processors) if p is not None)

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """One row's parameters in statement order, converted for the driver."""
        got = self._get(values)
        params: list[Any] = list(got) if len(self.columns) > 1 else [got]
        for i, process in self._convert:
            if params[i] is not None:
                params[i] = process(params[i])
        return tuple(params)

    async def run(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await conn.exec_driver_sql(self.sql, [self.row(r) for r in rows])
