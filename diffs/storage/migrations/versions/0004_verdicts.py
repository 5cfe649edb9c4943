"""Issue 11's verdicts: where a field diff sits on each side (list items aligned by key, text lines), the template
positions learned from traffic, and id pairs per resource (id_pairs replaces id_correlations, whose pairs had no
resource: they are dropped, and creates teach them again).

Revision ID: 0004
Revises: 0003 (the replay run label)
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("field_diffs", sa.Column("primary_at", sa.String(1024), nullable=True))
    op.add_column("field_diffs", sa.Column("shadow_at", sa.String(1024), nullable=True))
    for side in ("primary", "shadow", "secondary"):
        op.add_column("exchange_payloads", sa.Column(f"{side}_sent", sa.Text(), nullable=True))
    op.create_table(
        "learned_templates",
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("pattern", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("learned_at", When, nullable=False),
    )
    op.create_table(
        "id_pairs",
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("resource", sa.String(512), primary_key=True),
        sa.Column("from_side", sa.String(16), primary_key=True),
        sa.Column("to_side", sa.String(16), primary_key=True),
        sa.Column("from_id", sa.String(400), primary_key=True),
        sa.Column("to_id", sa.String(400), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )
    op.create_index("ix_id_pairs_created", "id_pairs", ["created_at"])
    op.drop_index("ix_id_correlations_service_created", table_name="id_correlations")
    op.drop_table("id_correlations")


def downgrade() -> None:
    op.create_table(
        "id_correlations",
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("primary_id", sa.String(256), primary_key=True),
        sa.Column("shadow_id", sa.String(256), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )
    op.create_index("ix_id_correlations_service_created", "id_correlations", ["service", "created_at"])
    op.drop_index("ix_id_pairs_created", table_name="id_pairs")
    op.drop_table("id_pairs")
    op.drop_table("learned_templates")
    with op.batch_alter_table("exchange_payloads") as batch:
        for side in ("primary", "shadow", "secondary"):
            batch.drop_column(f"{side}_sent")
    with op.batch_alter_table("field_diffs") as batch:
        batch.drop_column("shadow_at")
        batch.drop_column("primary_at")
