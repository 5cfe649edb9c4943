"""Rollups (what reports read instead of exchanges), their pending marks, and the state feed's events; existing
exchanges are rolled up.

The backfill reads the exchanges and their field diffs in time order, a page at a time, and adds each to its
minute, hour and day rows with the same `diffs.rollups.Cell` the writer uses (already compacted: no pending mark),
so an upgraded store reports exactly what it reported before. Rows are inserted once a period is complete, so
memory holds only the open periods.

Revision ID: 0005
Revises: 0004 (issue 11: id pairs per resource, learned templates)
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

from diffs.rollups import GRAINS, LIVE_RUN, Cell, RollupKey, direction_of, floor_time
from diffs.storage.models import UTCDateTime
from diffs.storage.rollup_rows import values_of

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PAGE = 5_000


def upgrade() -> None:
    op.create_table(
        "rollups",
        sa.Column("grain", sa.Integer(), primary_key=True),
        sa.Column("start", UTCDateTime(), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("endpoint", sa.String(512), primary_key=True),
        sa.Column("direction", sa.String(32), primary_key=True),
        sa.Column("run", sa.String(64), primary_key=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _COUNTS),
        sa.Column("primary_latency", sa.LargeBinary(), nullable=True),
        sa.Column("shadow_latency", sa.LargeBinary(), nullable=True),
        sa.Column("statuses", sa.Text(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("signatures", sa.Text(), nullable=False),
    )
    op.create_index("ix_rollups_service", "rollups", ["service", "grain", "start"])
    op.create_index("ix_rollups_endpoint", "rollups", ["endpoint", "grain", "start"])
    op.create_table(
        "rollup_pending",
        sa.Column("grain", sa.Integer(), primary_key=True),
        sa.Column("start", UTCDateTime(), primary_key=True),
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_events_at", "events", ["at"])
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_events_at", table_name="events")
    op.drop_table("events")
    op.drop_table("rollup_pending")
    op.drop_index("ix_rollups_endpoint", table_name="rollups")
    op.drop_index("ix_rollups_service", table_name="rollups")
    op.drop_table("rollups")


_COUNTS = ("match", "diff", "shadow_error", "skipped", "dropped", "noisy_match")

_exchanges = sa.table(
    "exchanges",
    sa.column("id", sa.String()),
    sa.column("started_at", UTCDateTime()),
    sa.column("service", sa.String()),
    sa.column("endpoint", sa.String()),
    sa.column("outcome", sa.String()),
    sa.column("primary_app", sa.String()),
    sa.column("primary_status", sa.Integer()),
    sa.column("primary_latency_ms", sa.Float()),
    sa.column("shadow_app", sa.String()),
    sa.column("shadow_status", sa.Integer()),
    sa.column("shadow_latency_ms", sa.Float()),
    sa.column("run", sa.String()),
)
_diffs = sa.table(
    "field_diffs",
    sa.column("exchange_id", sa.String()),
    sa.column("path", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("noise", sa.Boolean()),
)
_rollups = sa.table(
    "rollups",
    *(sa.column(name) for name in ("grain", "service", "endpoint", "direction", "run")),
    sa.column("start", UTCDateTime()),
    *(sa.column(name) for name in _COUNTS),
    *(sa.column(name) for name in ("primary_latency", "shadow_latency", "statuses", "fields", "signatures")),
)


def _backfill(conn: sa.engine.Connection) -> None:
    e = _exchanges.c
    open_cells: dict[RollupKey, Cell] = {}
    after: tuple[datetime, str] | None = None
    while True:
        query = sa.select(_exchanges).order_by(e.started_at, e.id).limit(PAGE)
        if after is not None:
            query = query.where(sa.or_(e.started_at > after[0], sa.and_(e.started_at == after[0], e.id > after[1])))
        page = conn.execute(query).all()
        if not page:
            break
        ids = [row.id for row in page]
        by_exchange: dict[str, list[tuple[str, str, bool]]] = {}
        for exchange_id, path, kind, noise in conn.execute(
            sa.select(_diffs.c.exchange_id, _diffs.c.path, _diffs.c.kind, _diffs.c.noise).where(
                _diffs.c.exchange_id.in_(ids)
            )
        ):
            by_exchange.setdefault(exchange_id, []).append((path, kind, bool(noise)))
        for row in page:
            started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
            direction = direction_of(row.primary_app, row.shadow_app)
            for grain in GRAINS:
                key = RollupKey(
                    grain,
                    floor_time(started, grain),
                    row.service,
                    row.endpoint,
                    direction,
                    LIVE_RUN if row.run is None else row.run,
                )
                cell = open_cells.get(key)
                if cell is None:
                    cell = open_cells[key] = Cell()
                cell.add(
                    outcome=row.outcome,
                    primary_ms=row.primary_latency_ms,
                    shadow_ms=row.shadow_latency_ms,
                    primary_status=row.primary_status,
                    shadow_status=row.shadow_status,
                    diffs=by_exchange.get(row.id, ()),
                )
        last = page[-1]
        after = (last.started_at, last.id)
        now = after[0] if after[0].tzinfo else after[0].replace(tzinfo=UTC)
        _insert(conn, open_cells, complete_before=now)
    _insert(conn, open_cells, complete_before=None)


def _insert(conn: sa.engine.Connection, cells: dict[RollupKey, Cell], complete_before: datetime | None) -> None:
    """Insert (and forget) the cells whose period ended before `complete_before` (all of them when None)."""
    done = [
        key
        for key in cells
        if complete_before is None or key.start + timedelta(seconds=key.grain) <= floor_time(complete_before, 60)
    ]
    rows: list[dict[str, Any]] = []
    for key in sorted(done):
        cell = cells.pop(key)
        values = values_of(cell)
        rows.append(
            {
                "grain": key.grain,
                "start": key.start,
                "service": key.service,
                "endpoint": key.endpoint,
                "direction": key.direction,
                "run": key.run,
                **values,
            }
        )
        if len(rows) >= 500:
            conn.execute(sa.insert(_rollups), rows)
            rows = []
    if rows:
        conn.execute(sa.insert(_rollups), rows)
