"""The `Store`: the one door to the database for the proxy, the batch writer and the reports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import and_, case, delete, func, insert, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from diffs import rollups
from diffs.errors import StoreError
from diffs.exchange import Comparison, Outcome
from diffs.id_pairs import IdPair, IdValue
from diffs.redaction import DEFAULT_FIELDS, Redactor
from diffs.report import LIVE
from diffs.storage import compaction, pruning, rollup_rows, rows
from diffs.storage import engine as engines
from diffs.storage import feed as feeds
from diffs.storage.bulk import BulkInsert
from diffs.storage.engine import StoreUnavailable
from diffs.storage.models import (
    Base,
    ExampleRow,
    ExchangeRow,
    FieldDiffRow,
    IdPairRow,
    LearnedTemplateRow,
    NoiseMarkRow,
    PayloadRow,
    PromotionRow,
)
from diffs.storage.records import Cursor, NoiseMark, Page, PromotionRecord, StoredExchange
from diffs.storage.retention import ExampleKey, ExampleQuota, RetentionPolicy
from diffs.storage.schema import upgrade
from diffs.storage.urls import async_url, is_memory, is_sqlite
from diffs.templating import LearnedTemplate

__all__ = ["PromotionConflict", "Settled", "Store", "StoreUnavailable"]

SIDES = frozenset({"v1", "v2"})
_SLICE = 250
"""Rows prepared between two turns of the event loop: a batch of thousands is built on the loop that serves the
proxy's requests, which must not stall for tens of milliseconds."""


class StoreSettings(Protocol):
    """What `Store.from_settings` reads (`proxy.config.Settings` has it all)."""

    @property
    def database_url(self) -> str: ...
    @property
    def redact_fields(self) -> tuple[str, ...]: ...
    @property
    def examples_per_field(self) -> int: ...
    @property
    def retention_max_exchanges(self) -> int: ...
    @property
    def retention_max_age(self) -> timedelta | None: ...
    @property
    def retention_prune_interval(self) -> float: ...
    @property
    def retention_rollup_max_age(self) -> timedelta: ...
    @property
    def retention_max_correlations(self) -> int: ...
    @property
    def retention_correlation_max_age(self) -> timedelta | None: ...
    @property
    def retention_max_promotions(self) -> int: ...
    @property
    def database_pool_size(self) -> int: ...
    @property
    def database_max_overflow(self) -> int: ...
    @property
    def database_pool_timeout(self) -> float: ...
    @property
    def database_pgbouncer(self) -> bool: ...
    @property
    def state_refresh_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Settled:
    """One id a create gave on `from_side`: pending while the other sides have not answered it, then settled."""

    service: str
    resource: str
    from_side: str
    from_id: IdValue


def id_from_event(text: str) -> IdValue:
    """An id from a feed event (JSON text, so that its type survives)."""
    return _id_value(text)


class PromotionConflict(StoreError):
    """A promotion was refused: the service's primary changed since the caller read it (another admin plane)."""


class _Any:
    """The `expected` of a promotion recorded whatever the stored state (start-up reconciliation, tests)."""


ANY_STATE = _Any()

MAX_ID = 100
"""Request ids are client-controlled; longer ones are cut so the row still fits."""


class Store:
    """Async persistence over SQLite (default, one machine) or PostgreSQL (several replicas).

    Everything written passes through the `Redactor` first. Errors are `StoreError`, or `StoreUnavailable` when the
    database is locked, read-only or unreachable and a retry may succeed.
    """

    def __init__(
        self, engine: AsyncEngine, redactor: Redactor, quota: ExampleQuota, feed: feeds.Feed | None = None
    ) -> None:
        """Use `Store.open`; this takes an engine whose schema is already current."""
        self._engine = engine
        self.redactor = redactor
        self.retention = quota.policy
        self._quota = quota
        self._write_lock = asyncio.Lock()
        self.feed = feed or feeds.Feed(engine)
        """This process's reader of the state feed, started by the first `follow`."""
        self.inserted_since_prune = 0
        self.last_prune: pruning.Pruned | None = None
        dialect = engine.dialect
        self._inserts = {
            model: BulkInsert(Base.metadata.tables[model.__tablename__], dialect)
            for model in (ExchangeRow, PayloadRow, FieldDiffRow, ExampleRow)
        }

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        schema: str | None = None,
        redact_fields: Iterable[str] = DEFAULT_FIELDS,
        retention: RetentionPolicy | None = None,
        busy_timeout: float = 5.0,
        pool: engines.Pool | None = None,
        poll_interval: float = 0.25,
        safety_interval: float = 5.0,
    ) -> Store:
        """Connect, bring the schema to the newest revision and load the example counts.

        `database_url`: sqlite[+aiosqlite]:///file.db or postgresql[+asyncpg]://...; `schema`: the PostgreSQL schema
        to live in (search_path); `busy_timeout`: seconds a SQLite writer waits for another process's lock; `pool`:
        connections per process; `poll_interval`: how often the state feed polls where it cannot LISTEN (SQLite,
        PgBouncer), and `safety_interval` how often it reads anyway.
        """
        url = async_url(database_url)
        pool = pool or engines.Pool()
        engine = engines.make_engine(url, schema=schema, busy_timeout_ms=round(busy_timeout * 1000), pool=pool)
        try:
            await engines.use_wal(engine, busy_timeout)
            async with engines.writing(engine) as conn:
                await conn.run_sync(upgrade)
            policy = retention or RetentionPolicy()
            quota = ExampleQuota(policy)
            quota.reset(await _kept_examples(engine, quota.since(datetime.now(UTC))))
        except BaseException:
            await engine.dispose()
            raise
        listen = None if is_sqlite(url) or pool.pgbouncer else engines.listener(url, schema, feeds.CHANNEL)
        newest = feeds.sqlite_newest(url.database) if is_sqlite(url) and not is_memory(url) and url.database else None
        feed = feeds.Feed(
            engine, listen=listen, poll_interval=poll_interval, safety_interval=safety_interval, newest=newest
        )
        return cls(engine, Redactor(tuple(redact_fields)), quota, feed)

    @classmethod
    async def from_settings(cls, settings: StoreSettings) -> Store:
        """`open` with the settings' database URL, pool, redacted fields and retention bounds."""
        retention = RetentionPolicy(
            examples_per_field=settings.examples_per_field,
            max_exchanges=settings.retention_max_exchanges,
            max_age=settings.retention_max_age,
            prune_interval=settings.retention_prune_interval,
            rollup_max_age=settings.retention_rollup_max_age,
            max_correlations=settings.retention_max_correlations,
            correlation_max_age=settings.retention_correlation_max_age,
            max_promotions=settings.retention_max_promotions,
        )
        pool = engines.Pool(
            size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            timeout=settings.database_pool_timeout,
            pgbouncer=settings.database_pgbouncer,
        )
        return await cls.open(
            settings.database_url,
            redact_fields=settings.redact_fields,
            retention=retention,
            pool=pool,
            poll_interval=min(0.25, settings.state_refresh_seconds),
        )

    async def close(self) -> None:
        await self.feed.aclose()
        await self._engine.dispose()

    async def follow(self, kind: str, subscriber: feeds.Subscriber) -> None:
        """Hear of every later `kind` event from any process (start following before reading the state it changes,
        so nothing committed in between is missed)."""
        self.feed.subscribe(kind, subscriber)
        await self.feed.start()

    async def recover(self) -> None:
        """After a failed write: on SQLite, checkpoint the log so space freed on a full disk is usable again."""
        await engines.checkpoint(self._engine)

    @property
    def dialect(self) -> str:
        """The database kind: "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    # -- exchanges ----------------------------------------------------------------------------------------------------

    async def write_batch(self, comparisons: Sequence[Comparison]) -> None:
        """Count comparisons in the rollups and store the ones retention keeps as examples, in one transaction.

        A request id already stored (clients may reuse theirs) is stored under `<id>#<8 hex>` rather than lost.
        """
        if not comparisons:
            return
        chosen = self._quota.plan(comparisons)
        examples = [(c, keys) for c, keys in zip(comparisons, chosen, strict=True) if keys]
        await self.write(examples, rollups.fold_all(comparisons))

    def choose_examples(self, comparison: Comparison) -> tuple[ExampleKey, ...]:
        """What `comparison` is kept as an example of (empty: only counted); reserves the slots."""
        return self._quota.reserve(comparison)

    async def write(
        self,
        examples: Sequence[tuple[Comparison, tuple[ExampleKey, ...]]] = (),
        cells: Mapping[rollups.RollupKey, rollups.Cell] | None = None,
    ) -> None:
        """Store examples (as `choose_examples` chose them) and add minute cells to the rollups, in one transaction."""
        if not examples and not cells:
            return
        async with self._write_lock:
            redacted = []
            for i, (comparison, _) in enumerate(examples):
                if i and i % _SLICE == 0:
                    await asyncio.sleep(0)
                redacted.append(self.redactor.redact_comparison(comparison))
            chosen = [keys for _, keys in examples]
            try:
                await self._insert(redacted, chosen, [rows.clip(c.exchange.id, MAX_ID) for c in redacted], cells)
            except StoreError as exc:
                if not isinstance(exc.__cause__, IntegrityError) or not redacted:
                    raise
                # Ids are unique but for a client reusing its X-Request-ID: look them up only when that happened.
                async with engines.reading(self._engine) as conn:
                    ids = await _unique_ids(conn, [c.exchange.id for c in redacted])
                await self._insert(redacted, chosen, ids, cells)
            self.inserted_since_prune += len(redacted)

    async def _insert(
        self,
        comparisons: Sequence[Comparison],
        chosen: Sequence[tuple[ExampleKey, ...]],
        ids: Sequence[str],
        cells: Mapping[rollups.RollupKey, rollups.Cell] | None,
    ) -> None:
        to_exchange, to_payload = self._inserts[ExchangeRow].row, self._inserts[PayloadRow].row
        to_diff, to_example = self._inserts[FieldDiffRow].row, self._inserts[ExampleRow].row
        exchange_rows: list[tuple[Any, ...]] = []
        payload_rows: list[tuple[Any, ...]] = []
        diff_rows: list[tuple[Any, ...]] = []
        example_rows: list[tuple[Any, ...]] = []
        for i, (comparison, exchange_id, keys) in enumerate(zip(comparisons, ids, chosen, strict=True)):
            if i and i % _SLICE == 0:
                await asyncio.sleep(0)
            exchange_rows.append(to_exchange(rows.exchange_values(comparison, exchange_id, True)))
            payload_rows.append(to_payload(rows.payload_values(comparison, exchange_id)))
            diff_rows.extend(to_diff(d) for d in rows.diff_values(comparison, exchange_id))
            example_rows.extend(to_example(e) for e in _example_values(keys, exchange_id))
        async with engines.writing(self._engine) as conn:
            await self._inserts[ExchangeRow].run(conn, exchange_rows)
            await self._inserts[PayloadRow].run(conn, payload_rows)
            await self._inserts[FieldDiffRow].run(conn, diff_rows)
            await self._inserts[ExampleRow].run(conn, example_rows)
            if cells:
                await rollup_rows.add(conn, cells)

    async def get_exchange(self, exchange_id: str) -> StoredExchange | None:
        """One exchange with its field diffs, and its headers and bodies when retention kept them (else empty)."""
        exchanges, payloads, diffs = ExchangeRow.__table__, PayloadRow.__table__, FieldDiffRow.__table__
        async with engines.reading(self._engine) as conn:
            row = (await conn.execute(select(exchanges).where(exchanges.c.id == exchange_id))).first()
            if row is None:
                return None
            payload = (await conn.execute(select(payloads).where(payloads.c.exchange_id == exchange_id))).first()
            diff_query = select(diffs).where(diffs.c.exchange_id == exchange_id).order_by(diffs.c.id)
            diff_rows = (await conn.execute(diff_query)).all()
        primary = rows.stored_side(row, payload, "primary")
        assert primary is not None  # every exchange has a primary
        return StoredExchange(
            summary=rows.summary(row),
            query=row.query,
            request_headers=rows.decode_headers(payload.request_headers if payload else None),
            request_body=payload.request_body if payload else None,
            primary=primary,
            shadow=rows.stored_side(row, payload, "shadow"),
            secondary=rows.stored_side(row, payload, "secondary"),
            diffs=rows.field_diffs(diff_rows),
        )

    async def list_exchanges(
        self,
        service: str | None = None,
        endpoint: str | None = None,
        outcome: Outcome | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        before: Cursor | None = None,
        run: str | None = None,
    ) -> Page:
        """Exchanges newest first, filtered; keyset-paginated by (started_at, id): pass `page.next_cursor` on.

        `run`: None for all traffic, "live" for live traffic only, else one replay run's exchanges.
        """
        table = ExchangeRow.__table__
        started_at, ident = table.c.started_at, table.c.id
        query = select(table).order_by(started_at.desc(), ident.desc()).limit(limit + 1)
        if service is not None:
            query = query.where(table.c.service == service)
        if endpoint is not None:
            query = query.where(table.c.endpoint == endpoint)
        if outcome is not None:
            query = query.where(table.c.outcome == Outcome(outcome).value)
        if since is not None:
            query = query.where(started_at >= since)
        if until is not None:
            query = query.where(started_at < until)
        if run is not None:
            query = query.where(table.c.run.is_(None) if run == LIVE else table.c.run == run)
        if before is not None:
            # The leading range lets the index seek straight to the cursor; the OR only sorts out equal times.
            at = before.started_at
            query = query.where(started_at <= at, or_(started_at < at, and_(started_at == at, ident < before.id)))
        async with engines.reading(self._engine) as conn:
            fetched = (await conn.execute(query)).all()
        items = tuple(rows.summary(r) for r in fetched[:limit])
        more = len(fetched) > limit
        return Page(items, Cursor(items[-1].started_at, items[-1].id) if more and items else None)

    async def count_exchanges(self) -> int:
        async with engines.reading(self._engine) as conn:
            return int((await conn.execute(select(func.count()).select_from(ExchangeRow))).scalar_one())

    async def prune(self, now: datetime | None = None) -> int:
        """One pass of `diffs.storage.pruning` over every table; returns how many rows went (see `last_prune`)."""
        self.inserted_since_prune = 0
        pruned = self.last_prune = await pruning.prune(self._engine, self.retention, now or datetime.now(UTC))
        deleted = pruned.total
        if pruned.exchanges:
            # Pruned examples free their slots, so later exchanges keep bodies again.
            async with self._write_lock:
                self._quota.reset(await _kept_examples(self._engine, self._quota.since(datetime.now(UTC))))
        return deleted

    async def compact(self, now: datetime | None = None) -> int | None:
        """Compute the hour and day rollup rows of the periods that ended (`diffs.storage.compaction`); how many
        periods were done (None: another replica is compacting)."""
        return await compaction.compact(self._engine, now or datetime.now(UTC))

    # -- noise marks --------------------------------------------------------------------------------------------------

    async def add_noise_mark(self, endpoint: str, path: str, note: str = "") -> NoiseMark:
        """Mark differences at (endpoint, path pattern) as noise; marking the same pair again updates its note."""
        created_at = datetime.now(UTC)
        statement = _upsert(self.dialect, NoiseMarkRow).values(
            endpoint=endpoint, path=path, note=note, created_at=created_at
        )
        statement = statement.on_conflict_do_update(index_elements=["endpoint", "path"], set_={"note": note})
        async with engines.writing(self._engine) as conn:
            await conn.execute(statement)
            query = select(NoiseMarkRow.__table__).where(NoiseMarkRow.endpoint == endpoint, NoiseMarkRow.path == path)
            row = (await conn.execute(query)).one()
            await feeds.publish(conn, feeds.NOISE_MARKS, {"added": row.id})
        self.feed.wake()
        return NoiseMark(row.id, row.endpoint, row.path, row.note, row.created_at)

    async def list_noise_marks(self) -> list[NoiseMark]:
        table = NoiseMarkRow.__table__
        async with engines.reading(self._engine) as conn:
            fetched = (await conn.execute(select(table).order_by(table.c.endpoint, table.c.path))).all()
        return [NoiseMark(r.id, r.endpoint, r.path, r.note, r.created_at) for r in fetched]

    async def delete_noise_mark(self, mark_id: int) -> bool:
        """Remove a noise mark; False when there was none with this id."""
        async with engines.writing(self._engine) as conn:
            result = await conn.execute(delete(NoiseMarkRow).where(NoiseMarkRow.id == mark_id))
            if result.rowcount:
                await feeds.publish(conn, feeds.NOISE_MARKS, {"deleted": mark_id})
        self.feed.wake()
        return bool(result.rowcount)

    # -- id pairs -----------------------------------------------------------------------------------------------------

    async def save_id_pairs(self, pairs: Sequence[IdPair], *, settled: Sequence[Settled] = ()) -> None:
        """Remember id pairs; a (resource, direction, id) seen again takes its newest counterpart.

        Every process hears of them on the state feed, with `settled`: the creates they came from, done (paired or
        not: the same id on both sides needs no pair, a failed create gives none), which requests waiting for them
        elsewhere stop waiting for.
        """
        if not pairs and not settled:
            return
        created_at = datetime.now(UTC)
        latest = {
            (p.service, p.resource, p.from_side, p.to_side, _id_json(p.from_id)): {
                "service": rows.clip(p.service, 64),
                "resource": rows.clip(p.resource, 512),
                "from_side": p.from_side,
                "to_side": p.to_side,
                "from_id": _id_json(p.from_id),
                "to_id": _id_json(p.to_id),
                "created_at": created_at,
            }
            for p in pairs
            if len(_id_json(p.from_id)) <= 400 and len(_id_json(p.to_id)) <= 400
        }
        event = {
            "pairs": [[p.service, p.resource, p.from_side, _id_json(p.from_id), p.to_side, _id_json(p.to_id)]
                      for p in pairs],
            "settled": [[s.service, s.resource, s.from_side, _id_json(s.from_id)] for s in settled],
        }  # fmt: skip
        if not latest:
            async with engines.writing(self._engine) as conn:
                await feeds.publish(conn, feeds.ID_PAIRS, event)
            self.feed.wake()
            return
        statement = _upsert(self.dialect, IdPairRow)
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["service", "resource", "from_side", "to_side", "from_id"],
            set_={"to_id": excluded.to_id, "created_at": excluded.created_at},
        )
        async with engines.writing(self._engine) as conn:
            await conn.execute(statement, list(latest.values()))
            await feeds.publish(conn, feeds.ID_PAIRS, event)
        self.feed.wake()

    async def announce_creates(self, pending: Sequence[Settled]) -> None:
        """Creates the primary answered and a mirrored side has not yet: every process hears of them on the state
        feed, so a request naming one of their ids anywhere waits for the pair (`save_id_pairs(settled=...)`)."""
        if not pending:
            return
        payload = {"pending": [[p.service, p.resource, p.from_side, _id_json(p.from_id)] for p in pending]}
        async with engines.writing(self._engine) as conn:
            await feeds.publish(conn, feeds.ID_PENDING, payload)
        self.feed.wake()

    async def load_id_pairs(self, *, services: Sequence[str] | None = None, limit: int = 100_000) -> list[IdPair]:
        """The newest `limit` pairs (of these services), oldest first, so loading them into an LRU keeps the newest."""
        table = IdPairRow.__table__
        query = select(table).order_by(table.c.created_at.desc(), table.c.from_id.desc()).limit(limit)
        if services is not None:
            query = query.where(table.c.service.in_(list(services)))
        async with engines.reading(self._engine) as conn:
            fetched = (await conn.execute(query)).all()
        return [
            IdPair(r.service, r.resource, r.from_side, _id_value(r.from_id), r.to_side, _id_value(r.to_id))
            for r in reversed(fetched)
        ]

    # -- learned templates --------------------------------------------------------------------------------------------

    async def save_learned_templates(self, facts: Sequence[LearnedTemplate]) -> None:
        """Remember template positions learned from traffic; "any" (every value a parameter) wins over "id"."""
        if not facts:
            return
        learned_at = datetime.now(UTC)
        values = {
            (f.service, f.pattern): {
                "service": f.service,
                "pattern": f.pattern,
                "kind": f.kind,
                "learned_at": learned_at,
            }
            for f in facts
        }
        statement = _upsert(self.dialect, LearnedTemplateRow)
        table = LearnedTemplateRow.__table__
        statement = statement.on_conflict_do_update(
            index_elements=["service", "pattern"],
            set_={"kind": case((statement.excluded.kind == "any", "any"), else_=table.c.kind)},
        )
        async with engines.writing(self._engine) as conn:
            await conn.execute(statement, list(values.values()))
            await feeds.publish(conn, feeds.LEARNED_TEMPLATES, {"count": len(values)})
        self.feed.wake()

    async def load_learned_templates(self) -> list[LearnedTemplate]:
        """Every learned template position, oldest first."""
        table = LearnedTemplateRow.__table__
        query = select(table.c.service, table.c.pattern, table.c.kind).order_by(table.c.learned_at, table.c.pattern)
        async with engines.reading(self._engine) as conn:
            fetched = (await conn.execute(query)).all()
        return [
            LearnedTemplate(service, pattern, "any" if kind == "any" else "id") for service, pattern, kind in fetched
        ]

    # -- promotions ---------------------------------------------------------------------------------------------------

    async def get_primaries(self) -> dict[str, str]:
        """service -> "v1"/"v2" from each service's newest promotion; services never promoted are absent."""
        newest = select(func.max(PromotionRow.id)).group_by(PromotionRow.service)
        query = select(PromotionRow.service, PromotionRow.to_side).where(PromotionRow.id.in_(newest))
        async with engines.reading(self._engine) as conn:
            fetched = (await conn.execute(query)).all()
        return {service: side for service, side in fetched}

    async def record_promotion(
        self,
        service: str,
        from_side: str,
        to_side: str,
        reason: str,
        actor: str,
        *,
        expected: str | None | _Any = ANY_STATE,
    ) -> PromotionRecord:
        """Persist one change of `service`'s primary, with who did it and why, and tell every process.

        With `expected` (the stored primary the caller decided on, None for "never recorded"), the row is written
        only if that is still the stored primary, in one transaction under a lock on the service (PostgreSQL: an
        advisory lock; SQLite: the write lock), so two admin planes cannot both act on the same state:
        `PromotionConflict` otherwise.
        """
        for name, side in (("from_side", from_side), ("to_side", to_side)):
            if side not in SIDES:
                raise ValueError(f"{name} must be 'v1' or 'v2', not {side!r}")
        at = datetime.now(UTC)
        values = {"service": service, "from_side": from_side, "to_side": to_side, "reason": reason, "actor": actor}
        async with engines.writing(self._engine) as conn:
            if self.dialect == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext('shadowdiff.promotion.' || current_schema() || :s))"),
                    {"s": service},
                )
            if not isinstance(expected, _Any):
                newest = (
                    select(PromotionRow.to_side)
                    .where(PromotionRow.service == service)
                    .order_by(PromotionRow.id.desc())
                    .limit(1)
                )
                stored = (await conn.execute(newest)).scalar_one_or_none()
                if stored != expected:
                    raise PromotionConflict(
                        f"{service}: the primary changed meanwhile (now {stored or 'as configured'}, "
                        f"expected {expected or 'as configured'})"
                    )
            result = await conn.execute(insert(PromotionRow).values(at=at, **values).returning(PromotionRow.id))
            new_id = result.scalar_one()
            await feeds.publish(conn, feeds.PROMOTION, {"service": service, "to": to_side, "id": new_id})
        self.feed.wake()
        return PromotionRecord(new_id, service, from_side, to_side, reason, actor, at)

    async def last_changes(self) -> dict[str, datetime]:
        """service -> when its primary last changed (from one side to the other); services never changed are absent."""
        p = PromotionRow
        query = select(p.service, func.max(p.at)).where(p.from_side != p.to_side).group_by(p.service)
        async with engines.reading(self._engine) as conn:
            return {service: at for service, at in (await conn.execute(query)).all()}

    async def list_promotions(self, service: str | None = None, limit: int = 100) -> list[PromotionRecord]:
        """The audit trail, newest first."""
        table = PromotionRow.__table__
        query = select(table).order_by(table.c.id.desc()).limit(limit)
        if service is not None:
            query = query.where(table.c.service == service)
        async with engines.reading(self._engine) as conn:
            fetched = (await conn.execute(query)).all()
        return [PromotionRecord(r.id, r.service, r.from_side, r.to_side, r.reason, r.actor, r.at) for r in fetched]


def _upsert(dialect: str, model: type[NoiseMarkRow] | type[IdPairRow] | type[LearnedTemplateRow]) -> Any:
    """INSERT ... ON CONFLICT for the engine's dialect (both spell it the same way)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _id_json(value: IdValue) -> str:
    # JSON text keeps the type: an int id must come back an int, or rewritten JSON bodies would change type.
    return orjson.dumps(value).decode()


def _id_value(text: str) -> IdValue:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, int | str) and not isinstance(value, bool) else text


async def _unique_ids(conn: AsyncConnection, wanted: Sequence[str]) -> list[str]:
    clipped = [rows.clip(i, MAX_ID) for i in wanted]
    query = select(ExchangeRow.id).where(ExchangeRow.id.in_(set(clipped)))
    taken = set((await conn.execute(query)).scalars())
    result = []
    for exchange_id in clipped:
        if exchange_id in taken:
            exchange_id = f"{exchange_id}#{uuid.uuid4().hex[:8]}"
        taken.add(exchange_id)
        result.append(exchange_id)
    return result


def _example_values(keys: Iterable[ExampleKey], exchange_id: str) -> list[dict[str, Any]]:
    clipped = dict.fromkeys((rows.clip(endpoint, 512), rows.clip(path, 1024)) for endpoint, path in keys)
    return [{"endpoint": e, "path": p, "exchange_id": exchange_id} for e, p in clipped]


async def _kept_examples(engine: AsyncEngine, since: datetime) -> list[tuple[str, str, datetime]]:
    """(endpoint, path, exchange time) of the examples stored since `since`: what the quota counts."""
    x, e = ExampleRow.__table__, ExchangeRow.__table__
    query = (
        select(x.c.endpoint, x.c.path, e.c.started_at)
        .select_from(x.join(e, e.c.id == x.c.exchange_id))
        .where(e.c.started_at >= since)
    )
    async with engines.reading(engine) as conn:
        return [(endpoint, path, at) for endpoint, path, at in (await conn.execute(query)).all()]
