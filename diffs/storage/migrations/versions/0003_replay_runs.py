"""A replay run label on exchanges and field diffs, so reports can tell a replay from live traffic.

Live rows keep NULL; the indexes are partial (`run IS NOT NULL`), so the live proxy's inserts do not maintain them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

REPLAYS_ONLY = sa.text("run IS NOT NULL")


def upgrade() -> None:
    op.add_column("exchanges", sa.Column("run", sa.String(64), nullable=True))
    op.add_column("field_diffs", sa.Column("run", sa.String(64), nullable=True))
    op.create_index(
        "ix_exchanges_run_started",
        "exchanges",
        ["run", "started_at"],
        sqlite_where=REPLAYS_ONLY,
        postgresql_where=REPLAYS_ONLY,
    )
    op.create_index(
        "ix_field_diffs_run_endpoint",
        "field_diffs",
        ["run", "endpoint", "path"],
        sqlite_where=REPLAYS_ONLY,
        postgresql_where=REPLAYS_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_field_diffs_run_endpoint", table_name="field_diffs")
    op.drop_index("ix_exchanges_run_started", table_name="exchanges")
    with op.batch_alter_table("field_diffs") as batch:
        batch.drop_column("run")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("run")
