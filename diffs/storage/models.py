"""ORM tables. Rows never leave the storage package; `store.py` converts them to dataclasses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite keeps them as naive UTC text, which still sorts by time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ExchangeRow(Base):
    """One exchange's summary: what report pages list and filter. Kept for every exchange until pruned."""

    __tablename__ = "exchanges"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    service: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text, default="")
    endpoint: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    primary_app: Mapped[str] = mapped_column(String(32))
    primary_status: Mapped[int | None] = mapped_column(Integer)
    primary_latency_ms: Mapped[float] = mapped_column(Float)
    primary_error: Mapped[str] = mapped_column(String(16))
    shadow_app: Mapped[str | None] = mapped_column(String(32))
    shadow_status: Mapped[int | None] = mapped_column(Integer)
    shadow_latency_ms: Mapped[float | None] = mapped_column(Float)
    shadow_error: Mapped[str | None] = mapped_column(String(16))
    secondary_app: Mapped[str | None] = mapped_column(String(32))
    secondary_status: Mapped[int | None] = mapped_column(Integer)
    secondary_latency_ms: Mapped[float | None] = mapped_column(Float)
    secondary_error: Mapped[str | None] = mapped_column(String(16))
    diff_count: Mapped[int] = mapped_column(Integer, default=0)
    """Field diffs that are not noise."""
    noise_count: Mapped[int] = mapped_column(Integer, default=0)
    bodies_kept: Mapped[bool] = mapped_column(Boolean, default=False)
    run: Mapped[str | None] = mapped_column(String(64))
    """The replay run that sent it; NULL for live traffic."""

    __table_args__ = (
        # Keyset pagination: every listing orders by (started_at, id) after an optional equality filter.
        Index("ix_exchanges_started", "started_at", "id"),
        Index("ix_exchanges_service_started", "service", "started_at", "id"),
        Index("ix_exchanges_endpoint_started", "endpoint", "started_at", "id"),
        Index("ix_exchanges_outcome_started", "outcome", "started_at", "id"),
        Index(
            "ix_exchanges_report",
            "service",
            "endpoint",
            "outcome",
            "started_at",
            "primary_app",
            "shadow_app",
            "primary_latency_ms",
            "shadow_latency_ms",
        ),
        # Replays only: live rows (NULL) are not in it, so the proxy's inserts pay nothing for it. `run = 'x'`
        # implies `run IS NOT NULL`, which both SQLite and PostgreSQL prove, so filters on a run use it.
        Index(
            "ix_exchanges_run_started",
            "run",
            "started_at",
            sqlite_where=text("run IS NOT NULL"),
            postgresql_where=text("run IS NOT NULL"),
        ),
    )


class PayloadRow(Base):
    """Headers and bodies (redacted) of the exchanges the retention policy keeps as examples; others have no row."""

    __tablename__ = "exchange_payloads"

    exchange_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True
    )
    request_headers: Mapped[str] = mapped_column(Text)
    """JSON list of [name, value] pairs, as are the other *_headers columns."""
    request_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    request_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    primary_headers: Mapped[str] = mapped_column(Text)
    primary_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    primary_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    shadow_headers: Mapped[str | None] = mapped_column(Text)
    shadow_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    shadow_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    secondary_headers: Mapped[str | None] = mapped_column(Text)
    secondary_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    secondary_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    primary_sent: Mapped[str | None] = mapped_column(Text)
    """JSON {"target", "headers", "body"}: the request this side was actually sent (rewritten ids and all)."""
    shadow_sent: Mapped[str | None] = mapped_column(Text)
    secondary_sent: Mapped[str | None] = mapped_column(Text)


class FieldDiffRow(Base):
    __tablename__ = "field_diffs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    exchange_id: Mapped[str] = mapped_column(String(128), ForeignKey("exchanges.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """Copied from the exchange so per-field reports over a time window need no join."""
    endpoint: Mapped[str] = mapped_column(String(512))
    path: Mapped[str] = mapped_column(String(1024))
    kind: Mapped[str] = mapped_column(String(16))
    primary_value: Mapped[str | None] = mapped_column(Text)
    """JSON text; NULL when the field is absent on that side."""
    shadow_value: Mapped[str | None] = mapped_column(Text)
    noise: Mapped[bool] = mapped_column(Boolean, default=False)
    run: Mapped[str | None] = mapped_column(String(64))
    """Copied from the exchange, like `started_at`."""
    primary_at: Mapped[str | None] = mapped_column(String(1024))
    """Where in the primary's body (`root.items[2].stock`), when the path folds list indices or text lines."""
    shadow_at: Mapped[str | None] = mapped_column(String(1024))

    __table_args__ = (
        Index("ix_field_diffs_exchange", "exchange_id"),
        Index("ix_field_diffs_endpoint_path", "endpoint", "path", "started_at"),
        Index("ix_field_diffs_started", "started_at"),
        Index(
            "ix_field_diffs_run_endpoint",
            "run",
            "endpoint",
            "path",
            sqlite_where=text("run IS NOT NULL"),
            postgresql_where=text("run IS NOT NULL"),
        ),
    )


class ExampleRow(Base):
    """Which exchanges keep their bodies as an example, and for what: a field path, "<match>" or "<shadow_error:…>"."""

    __tablename__ = "body_examples"

    endpoint: Mapped[str] = mapped_column(String(512), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    exchange_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_body_examples_exchange", "exchange_id"),)


class NoiseMarkRow(Base):
    """A reviewer's decision that differences at (endpoint, path pattern) are noise."""

    __tablename__ = "noise_marks"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(512))
    path: Mapped[str] = mapped_column(String(1024))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ux_noise_marks_endpoint_path", "endpoint", "path", unique=True),)


class IdPairRow(Base):
    """An id one side generated and the id another side generated for the same create, per resource
    (`diffs.id_pairs.IdPair`); ids are JSON text, so their types come back."""

    __tablename__ = "id_pairs"

    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(512), primary_key=True)
    from_side: Mapped[str] = mapped_column(String(16), primary_key=True)
    to_side: Mapped[str] = mapped_column(String(16), primary_key=True)
    from_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    to_id: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_id_pairs_created", "created_at"),)


class LearnedTemplateRow(Base):
    """A path position learned to hold ids (`diffs.templating.LearnedTemplate`), shared by every process."""

    __tablename__ = "learned_templates"

    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    pattern: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    learned_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RollupRow(Base):
    """One `diffs.rollups.Cell`: the exchanges of a (service, endpoint, direction, run) in one minute, hour or day.

    What every report reads. Minute rows are added to by the batch writers (read-modify-write under a row lock);
    hour and day rows are computed from them by the compactor (`diffs.storage.compaction`).
    """

    __tablename__ = "rollups"

    grain: Mapped[int] = mapped_column(Integer, primary_key=True)
    """Seconds the row covers: 60, 3600 or 86400."""
    start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(512), primary_key=True)
    direction: Mapped[str] = mapped_column(String(32), primary_key=True)
    """ "v1>v2": the primary's app, then the shadow's."""
    run: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The replay run; "" for live traffic (a key column cannot be NULL)."""
    match: Mapped[int] = mapped_column(BigInteger, default=0)
    diff: Mapped[int] = mapped_column(BigInteger, default=0)
    shadow_error: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    noisy_match: Mapped[int] = mapped_column(BigInteger, default=0)
    primary_latency: Mapped[bytes | None] = mapped_column(LargeBinary)
    """`diffs.rollups.Histogram.encode()`."""
    shadow_latency: Mapped[bytes | None] = mapped_column(LargeBinary)
    statuses: Mapped[str] = mapped_column(Text, default="{}")
    """JSON {"200 404": count}."""
    fields: Mapped[str] = mapped_column(Text, default="{}")
    """JSON {path: {kind: [raw, noise]}}."""
    signatures: Mapped[str] = mapped_column(Text, default="{}")
    """JSON {"path\\npath": count}: differing exchanges by their non-noise paths."""

    __table_args__ = (
        Index("ix_rollups_service", "service", "grain", "start"),
        Index("ix_rollups_endpoint", "endpoint", "grain", "start"),
        Index("ix_rollups_series", "service", "direction", "grain", "start", "run"),
    )


class PendingRollupRow(Base):
    """An hour or day of a service whose rows must be (re)computed from finer ones: written to since, or never
    compacted. Writers mark every period they add minutes to; the compactor clears the mark when it is done. Reports
    read the finer rows of a marked period, so they are exact whether or not it has been compacted."""

    __tablename__ = "rollup_pending"

    grain: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    """Bumped by every write, so a compaction that read an older version leaves the mark in place."""


class EventRow(Base):
    """The state feed: promotions, noise marks (and id pairs) every process learns of (`diffs.storage.feed`)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    """JSON."""
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_events_at", "at"),)


class PromotionRow(Base):
    """One change of a service's primary; the newest row per service is its current state."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    from_side: Mapped[str] = mapped_column(String(8))
    to_side: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_promotions_service_id", "service", "id"),)
