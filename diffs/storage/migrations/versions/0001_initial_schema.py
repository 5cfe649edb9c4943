"""Initial schema: exchanges, payloads, field diffs, body examples, noise marks, id correlations, promotions.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("started_at", When, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.String(512), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("skip_reason", sa.String(64), nullable=True),
        sa.Column("primary_app", sa.String(32), nullable=False),
        sa.Column("primary_status", sa.Integer(), nullable=True),
        sa.Column("primary_latency_ms", sa.Float(), nullable=False),
        sa.Column("primary_error", sa.String(16), nullable=False),
        sa.Column("shadow_app", sa.String(32), nullable=True),
        sa.Column("shadow_status", sa.Integer(), nullable=True),
        sa.Column("shadow_latency_ms", sa.Float(), nullable=True),
        sa.Column("shadow_error", sa.String(16), nullable=True),
        sa.Column("secondary_app", sa.String(32), nullable=True),
        sa.Column("secondary_status", sa.Integer(), nullable=True),
        sa.Column("secondary_latency_ms", sa.Float(), nullable=True),
        sa.Column("secondary_error", sa.String(16), nullable=True),
        sa.Column("diff_count", sa.Integer(), nullable=False),
        sa.Column("noise_count", sa.Integer(), nullable=False),
        sa.Column("bodies_kept", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_exchanges_started", "exchanges", ["started_at", "id"])
    op.create_index("ix_exchanges_service_started", "exchanges", ["service", "started_at", "id"])
    op.create_index("ix_exchanges_endpoint_started", "exchanges", ["endpoint", "started_at", "id"])
    op.create_index("ix_exchanges_outcome_started", "exchanges", ["outcome", "started_at", "id"])

    exchange_fk = sa.ForeignKey("exchanges.id", ondelete="CASCADE")
    op.create_table(
        "exchange_payloads",
        sa.Column("exchange_id", sa.String(128), exchange_fk, primary_key=True),
        sa.Column("request_headers", sa.Text(), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=True),
        sa.Column("request_truncated", sa.Boolean(), nullable=False),
        sa.Column("primary_headers", sa.Text(), nullable=False),
        sa.Column("primary_body", sa.LargeBinary(), nullable=True),
        sa.Column("primary_truncated", sa.Boolean(), nullable=False),
        sa.Column("shadow_headers", sa.Text(), nullable=True),
        sa.Column("shadow_body", sa.LargeBinary(), nullable=True),
        sa.Column("shadow_truncated", sa.Boolean(), nullable=False),
        sa.Column("secondary_headers", sa.Text(), nullable=True),
        sa.Column("secondary_body", sa.LargeBinary(), nullable=True),
        sa.Column("secondary_truncated", sa.Boolean(), nullable=False),
    )

    op.create_table(
        "field_diffs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("exchange_id", sa.String(128), sa.ForeignKey("exchanges.id", ondelete="CASCADE"), nullable=False),
        sa.Column("started_at", When, nullable=False),
        sa.Column("endpoint", sa.String(512), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("primary_value", sa.Text(), nullable=True),
        sa.Column("shadow_value", sa.Text(), nullable=True),
        sa.Column("noise", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_field_diffs_exchange", "field_diffs", ["exchange_id"])
    op.create_index("ix_field_diffs_endpoint_path", "field_diffs", ["endpoint", "path", "started_at"])
    op.create_index("ix_field_diffs_started", "field_diffs", ["started_at"])

    op.create_table(
        "body_examples",
        sa.Column("endpoint", sa.String(512), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("exchange_id", sa.String(128), sa.ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_body_examples_exchange", "body_examples", ["exchange_id"])

    op.create_table(
        "noise_marks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("endpoint", sa.String(512), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )
    op.create_index("ux_noise_marks_endpoint_path", "noise_marks", ["endpoint", "path"], unique=True)

    op.create_table(
        "id_correlations",
        sa.Column("service", sa.String(64), primary_key=True),
        sa.Column("primary_id", sa.String(256), primary_key=True),
        sa.Column("shadow_id", sa.String(256), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )
    op.create_index("ix_id_correlations_service_created", "id_correlations", ["service", "created_at"])

    op.create_table(
        "promotions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("from_side", sa.String(8), nullable=False),
        sa.Column("to_side", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", When, nullable=False),
    )
    op.create_index("ix_promotions_service_id", "promotions", ["service", "id"])


def downgrade() -> None:
    for table in (
        "promotions",
        "id_correlations",
        "noise_marks",
        "body_examples",
        "field_diffs",
        "exchange_payloads",
        "exchanges",
    ):
        op.drop_table(table)
