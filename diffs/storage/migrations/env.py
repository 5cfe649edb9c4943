"""Alembic environment: runs on the connection `diffs.storage.schema` hands over (no alembic.ini at run time)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from diffs.storage.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through diffs.storage.schema.upgrade, which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
