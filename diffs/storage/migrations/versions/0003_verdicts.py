"""Issue 11's verdicts: where a field diff sits on each side (list items aligned by key, text lines), and the
template positions learned from traffic.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("field_diffs", sa.Column("primary_at", sa.String(1024), nullable=True))
    op.add_column("field_diffs", sa.Column("shadow_at", sa.String(1024), nullable=True))
    op.create_table(
        "learned_templates",
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("pattern", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("learned_at", When, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("learned_templates")
    with op.batch_alter_table("field_diffs") as batch:
        batch.drop_column("shadow_at")
        batch.drop_column("primary_at")
