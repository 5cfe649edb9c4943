"""Bring a database's schema to the newest Alembic revision, safely when several processes start at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the store's migrations, optionally bound to a live connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Upgrade to head inside the caller's transaction (run through `AsyncConnection.run_sync`)."""
    if connection.dialect.name == "postgresql":
        # Replicas starting together take turns; SQLite gets the same from BEGIN IMMEDIATE.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('shadowdiff.schema.' || current_schema()))"))
    command.upgrade(alembic_config(connection), "head")
