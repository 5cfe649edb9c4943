"""Bulk INSERTs compiled once per table and dialect: one driver-level executemany per batch, or on SQLite a few
multi-row `INSERT ... VALUES (...), (...)` statements.

Core's `conn.execute(insert(t), rows)` rebuilds parameters row by row through its general machinery; at thousands
of exchanges a second that was most of the writer's CPU. Here each column's bind processor (the UTC conversion,
SQLite's booleans) is applied directly and the rows go to the driver as tuples.

SQLite runs in aiosqlite's thread, which needs the GIL back after every statement step: an executemany of 500 rows
waited ~500 times for a busy event loop to let go of the GIL (measured: the writer fell behind at ~1,400 rows/s and
its backlog grew without end under load). A multi-row statement steps once for hundreds of rows.

Multi-row statements come in a few fixed shapes (512, 64, 8 and 1 rows): a batch of n rows is split into whole
statements of each shape, one executemany (one trip to SQLite's thread) per shape used. A statement shaped to each
batch's own size would be a new prepared statement, and a new cached SQL text, for every size met: measured, the
proxy's memory then grew by tens of MiB as batch sizes varied under load.
"""

from __future__ import annotations

import itertools
import sqlite3
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
        self._multi_row = dialect.name == "sqlite"
        head, values, group = self.sql.rpartition(" VALUES ")
        fits = max(1, _SQLITE_MAX_VARIABLES // len(self.columns))
        self.shapes = tuple(n for n in _SHAPES if n <= fits) or (1,)
        self._statements = {n: head + values + ", ".join([group] * n) for n in self.shapes}

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """One row's parameters in statement order, converted for the driver."""
        got = self._get(values)
        params: list[Any] = list(got) if len(self.columns) > 1 else [got]
        for i, process in self._convert:
            if params[i] is not None:
                params[i] = process(params[i])
        return tuple(params)

    def statement(self, rows: int) -> str:
        """The INSERT of `rows` rows at once (SQLite); `rows` is one of `shapes`."""
        return self._statements[rows]

    async def run(self, conn: AsyncConnection, params: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows already converted by `row`."""
        if not params:
            return
        if not self._multi_row:
            await conn.exec_driver_sql(self.sql, params)
            return
        start = 0
        for shape in self.shapes:
            count = (len(params) - start) // shape
            if not count:
                continue
            groups = [
                tuple(itertools.chain.from_iterable(params[at : at + shape]))
                for at in range(start, start + count * shape, shape)
            ]
            start += count * shape
            await conn.exec_driver_sql(self._statements[shape], groups if len(groups) > 1 else groups[0])


_SHAPES = (512, 64, 8, 1)
# SQLite's bound on parameters per statement: 32,766 since 3.32, 999 before.
_SQLITE_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
