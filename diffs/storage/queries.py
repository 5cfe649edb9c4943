"""The SQL behind reports: outcome counts, field counts, latency histograms, finding counts, filtered exchange pages.

Every query is one grouped pass over an indexed range (time window, service or endpoint), so it stays bounded by
the rows in the window; percentiles come from log-bucketed histograms (1% wide) computed in SQL, not from sorting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, cast, distinct, func, literal, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from diffs.exchange import Outcome
from diffs.percentiles import LATENCY_BUCKETS_PER_E, MIN_LATENCY_MS, HistogramBucket, LatencyHistogram
from diffs.readiness import Criteria
from diffs.report import (
    LIVE,
    EndpointCounts,
    FieldCounts,
    Report,
    Window,
    build_report,
    classify_fields,
    finding_fields,
)
from diffs.rules import NoiseConfig
from diffs.storage import engine as engines
from diffs.storage import rows
from diffs.storage.models import ExampleRow, ExchangeRow, FieldDiffRow, NoiseMarkRow, PayloadRow
from diffs.storage.records import Cursor, Page, StoredRequest
from diffs.storage.store import Store
from diffs.trend import Trend, bucket_edges, build_trend

MAX_PAGE = 500
LATENCY_SAMPLE_PER_ENDPOINT = 50_000
COMPARED = (Outcome.MATCH.value, Outcome.DIFF.value)
"""Both sides answered: latency percentiles use only these, so primary and shadow cover the same requests."""


def _engine(store: Store) -> AsyncEngine:
    # Same package: the store keeps its engine private to everyone outside storage.
    return store._engine


@dataclass(frozen=True, slots=True)
class ExchangeFilter:
    """What an exchange listing is narrowed to; None means any."""

    service: str | None = None
    endpoint: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    path: str | None = None
    """A field path: only exchanges with a diff at it (needs `endpoint`)."""
    run: str | None = None
    """None: all traffic; `LIVE`: live traffic only; else one replay run."""


def run_clause(column: Any, run: str | None) -> list[ColumnElement[bool]]:
    """Which traffic: all (None), live only (`LIVE`: rows without a run) or one replay run."""
    if run is None:
        return []
    return [column.is_(None)] if run == LIVE else [column == run]


def _window(table: Any, window: Window) -> list[ColumnElement[bool]]:
    """The window's clauses on a table with `started_at` and `run` columns (exchanges, field diffs)."""
    columns = getattr(table, "c", table)
    clauses: list[ColumnElement[bool]] = run_clause(columns.run, window.run)
    if window.since is not None:
        clauses.append(columns.started_at >= window.since)
    if window.until is not None:
        clauses.append(columns.started_at < window.until)
    return clauses


# ---------------------------------------------------------------- aggregates


async def endpoint_counts(store: Store, window: Window, service: str | None = None) -> list[EndpointCounts]:
    """Exchanges per (service, endpoint) and outcome in the window, and the matching ones that differed in noise."""
    e = ExchangeRow
    noisy = func.sum(case((and_(e.outcome == Outcome.MATCH.value, e.noise_count > 0), 1), else_=0))
    query = select(e.service, e.endpoint, e.outcome, func.count(), noisy).where(*_window(e, window))
    if service is not None:
        query = query.where(e.service == service)
    query = query.group_by(e.service, e.endpoint, e.outcome)
    async with engines.reading(_engine(store)) as conn:
        rows = (await conn.execute(query)).all()
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    noisy_matches: dict[tuple[str, str], int] = {}
    for svc, endpoint, outcome, count, noisy_count in rows:
        grouped.setdefault((svc, endpoint), {})[outcome] = int(count)
        noisy_matches[(svc, endpoint)] = noisy_matches.get((svc, endpoint), 0) + int(noisy_count or 0)
    return [
        EndpointCounts(svc, endpoint, outcomes, noisy_matches=noisy_matches[(svc, endpoint)])
        for (svc, endpoint), outcomes in grouped.items()
    ]


async def field_counts(store: Store, window: Window, endpoints: Iterable[str] | None = None) -> list[FieldCounts]:
    """Diffs per (endpoint, path) in the window, how many of them noise, and their kinds."""
    f = FieldDiffRow
    noise = func.sum(case((f.noise.is_(True), 1), else_=0))
    query = select(f.endpoint, f.path, f.kind, func.count(), noise).where(*_window(f, window))
    if endpoints is not None:
        wanted = sorted(set(endpoints))
        if not wanted:
            return []
        query = query.where(f.endpoint.in_(wanted))
    query = query.group_by(f.endpoint, f.path, f.kind)
    async with engines.reading(_engine(store)) as conn:
        rows = (await conn.execute(query)).all()
    merged: dict[tuple[str, str], tuple[int, int, list[str]]] = {}
    for endpoint, path, kind, raw, noisy in rows:
        total, noise_total, kinds = merged.get((endpoint, path), (0, 0, []))
        merged[(endpoint, path)] = (total + int(raw), noise_total + int(noisy or 0), [*kinds, kind])
    return [
        FieldCounts(endpoint, path, raw, noisy, tuple(sorted(kinds)))
        for (endpoint, path), (raw, noisy, kinds) in merged.items()
    ]


def _bucket(column: Any) -> ColumnElement[int]:
    clamped = case((column < MIN_LATENCY_MS, MIN_LATENCY_MS), else_=column)
    return cast(func.floor(func.ln(clamped) * LATENCY_BUCKETS_PER_E), Integer)


def latency_strides(store: Store, endpoints: Iterable[EndpointCounts]) -> dict[str, int]:
    """Per busy endpoint, sample 1 exchange in N for its latency histogram (SQLite only; others need no sampling).

    SQLite groups by sorting, so a histogram over a million rows costs seconds; a deterministic 1-in-N rowid sample
    of ~LATENCY_SAMPLE_PER_ENDPOINT exchanges per endpoint keeps percentiles within a bucket of the exact ones.
    """
    if store.dialect != "sqlite":
        return {}
    compared: dict[str, int] = {}
    for e in endpoints:
        compared[e.endpoint] = compared.get(e.endpoint, 0) + sum(e.outcomes.get(o, 0) for o in COMPARED)
    return {ep: -(-n // LATENCY_SAMPLE_PER_ENDPOINT) for ep, n in compared.items() if n > LATENCY_SAMPLE_PER_ENDPOINT}


async def latency_histograms(
    store: Store, window: Window, service: str | None = None, strides: Mapping[str, int] | None = None
) -> list[LatencyHistogram]:
    """Log-bucketed latencies per (service, endpoint, role, app), over exchanges where both sides answered.

    With `strides` (SQLite), an endpoint's histogram counts 1 exchange in N, each standing for N.
    """
    e = ExchangeRow
    strides = strides or {}
    sampled: list[ColumnElement[bool]] = []
    if strides:
        stride = case(dict(strides), value=e.endpoint, else_=1)
        # High bits of a multiplicative hash: `rowid % N` alone would follow any period in the traffic (endpoints
        # requested in turn land on alternating rowids) and could sample none of an endpoint's exchanges.
        mixed = literal_column("exchanges.rowid") * 2654435761 % 4294967296 / 65536
        sampled.append(mixed % stride == 0)
    result: list[LatencyHistogram] = []
    async with engines.reading(_engine(store)) as conn:
        for role, column, app in (
            ("primary", e.primary_latency_ms, e.primary_app),
            ("shadow", e.shadow_latency_ms, e.shadow_app),
        ):
            bucket = _bucket(column).label("bucket")
            query = (
                select(e.service, e.endpoint, app, bucket, func.count(), func.avg(column))
                .where(e.outcome.in_(COMPARED), column.is_not(None), *_window(e, window), *sampled)
                .group_by(e.service, e.endpoint, app, bucket)
            )
            if service is not None:
                query = query.where(e.service == service)
            grouped: dict[tuple[str, str, str], list[HistogramBucket]] = {}
            for svc, endpoint, name, b, count, mean in (await conn.execute(query)).all():
                weight = strides.get(endpoint, 1)
                grouped.setdefault((svc, endpoint, name or ""), []).append(
                    HistogramBucket(int(b), int(count) * weight, float(mean))
                )
            result += [LatencyHistogram(s, ep, role, tuple(bs), name) for (s, ep, name), bs in grouped.items()]
    return result


async def finding_exchanges(store: Store, window: Window, fields: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Per endpoint, exchanges with at least one non-noise diff in one of `fields` ((endpoint, path) pairs)."""
    by_endpoint: dict[str, list[str]] = {}
    for endpoint, path in fields:
        by_endpoint.setdefault(endpoint, []).append(path)
    f = FieldDiffRow
    counts: dict[str, int] = {}
    async with engines.reading(_engine(store)) as conn:
        # One query per endpoint keeps each on the (endpoint, path, started_at) index and the IN lists short.
        for endpoint, paths in by_endpoint.items():
            query = select(func.count(distinct(f.exchange_id))).where(
                f.endpoint == endpoint, f.path.in_(paths), f.noise.is_(False), *_window(f, window)
            )
            counts[endpoint] = int((await conn.execute(query)).scalar_one())
    return counts


def _bucket_of(column: Any, edges: tuple[datetime, ...]) -> ColumnElement[int]:
    """Which of the trend buckets starting at `edges` a time falls in (the last one takes everything after it)."""
    if len(edges) < 2:
        return literal(0)
    return case(*((column < edge, i) for i, edge in enumerate(edges[1:])), else_=len(edges) - 1)


async def trend_edges(store: Store, window: Window, service: str | None, now: datetime) -> tuple[datetime, ...]:
    """Bucket starts over the window. An open start begins at the oldest exchange and then, with an open end too,
    the buckets end at the newest one: "all time" shows the traffic's own history. () when there is nothing."""
    since, until = window.since, window.until
    if since is None:
        e = ExchangeRow
        query = select(func.min(e.started_at), func.max(e.started_at)).where(*_window(e, window))
        if service is not None:
            query = query.where(e.service == service)
        async with engines.reading(_engine(store)) as conn:
            first, last = (await conn.execute(query)).one()
        if first is None:
            return ()
        since = first
        until = until or max(last + timedelta(microseconds=1), first + timedelta(seconds=1))
    return bucket_edges(since, until or max(now, since + timedelta(seconds=1)))


async def compared_by_bucket(
    store: Store, window: Window, edges: tuple[datetime, ...], service: str | None = None
) -> dict[str, list[tuple[int, int]]]:
    """Per service, (trend bucket, compared exchanges) pairs."""
    e = ExchangeRow
    bucket = _bucket_of(e.started_at, edges).label("bucket")
    query = select(e.service, bucket, func.count()).where(
        e.outcome.in_((*COMPARED, Outcome.SHADOW_ERROR.value)), *_window(e, window)
    )
    if service is not None:
        query = query.where(e.service == service)
    query = query.group_by(e.service, bucket)
    async with engines.reading(_engine(store)) as conn:
        rows = (await conn.execute(query)).all()
    out: dict[str, list[tuple[int, int]]] = {}
    for svc, index, count in rows:
        out.setdefault(svc, []).append((int(index), int(count)))
    return out


async def findings_by_bucket(
    store: Store, window: Window, fields: Iterable[tuple[str, str]], edges: tuple[datetime, ...]
) -> dict[str, list[tuple[int, int]]]:
    """Per endpoint, (trend bucket, exchanges with a non-noise diff in one of `fields`) pairs.

    An exchange lies in one bucket, so an endpoint's pairs add up to its `finding_exchanges` count.
    """
    by_endpoint: dict[str, list[str]] = {}
    for endpoint, path in fields:
        by_endpoint.setdefault(endpoint, []).append(path)
    f = FieldDiffRow
    bucket = _bucket_of(f.started_at, edges).label("bucket")
    out: dict[str, list[tuple[int, int]]] = {}
    async with engines.reading(_engine(store)) as conn:
        for endpoint, paths in by_endpoint.items():  # one query per endpoint, on its index (as finding_exchanges)
            query = (
                select(bucket, func.count(distinct(f.exchange_id)))
                .where(f.endpoint == endpoint, f.path.in_(paths), f.noise.is_(False), *_window(f, window))
                .group_by(bucket)
            )
            out[endpoint] = [(int(index), int(count)) for index, count in (await conn.execute(query)).all()]
    return out


async def noise_mark_pairs(store: Store) -> list[tuple[str, str]]:
    """Every noise mark as (endpoint, path pattern)."""
    async with engines.reading(_engine(store)) as conn:
        rows = (await conn.execute(select(NoiseMarkRow.endpoint, NoiseMarkRow.path))).all()
    return [(endpoint, path) for endpoint, path in rows]


async def load_report(
    store: Store,
    *,
    window: Window,
    criteria: Criteria,
    noise: NoiseConfig,
    primaries: Mapping[str, str],
    service: str | None = None,
    services: Iterable[str] = (),
    now: datetime | None = None,
) -> Report:
    """The whole report: the queries above, fields classified, findings counted, readiness assessed."""
    endpoints = await endpoint_counts(store, window, service)
    fields = await field_counts(store, window, {e.endpoint for e in endpoints} if service is not None else None)
    marks = await noise_mark_pairs(store)
    samples: dict[str, int] = {}
    for e in endpoints:
        samples[e.endpoint] = samples.get(e.endpoint, 0) + sum(
            e.outcomes.get(o, 0) for o in (Outcome.MATCH, Outcome.DIFF, Outcome.SHADOW_ERROR)
        )
    classified = classify_fields(fields, samples, noise, marks)
    now = now or datetime.now(UTC)
    edges = await trend_edges(store, window, service, now) if endpoints else ()
    buckets = await findings_by_bucket(store, window, finding_fields(classified), edges)
    findings = {endpoint: sum(count for _, count in pairs) for endpoint, pairs in buckets.items()}
    endpoints = [replace(e, finding_exchanges=findings.get(e.endpoint, 0)) for e in endpoints]
    trends = _trends(edges, await compared_by_bucket(store, window, edges, service), buckets, endpoints)
    strides = latency_strides(store, endpoints)
    histograms = await latency_histograms(store, window, service, strides)
    shown = [s for s in services if service is None or s == service]
    return build_report(
        generated_at=now,
        window=window,
        criteria=criteria,
        endpoints=endpoints,
        fields=classified,
        histograms=histograms,
        primaries=primaries,
        services=shown,
        latency_stride=max(strides.values(), default=1),
        trends=trends,
    )


def _trends(
    edges: tuple[datetime, ...],
    compared: Mapping[str, list[tuple[int, int]]],
    findings: Mapping[str, list[tuple[int, int]]],
    endpoints: Iterable[EndpointCounts],
) -> dict[str, Trend]:
    if not edges:
        return {}
    service_of_endpoint = {e.endpoint: e.service for e in endpoints}
    found: dict[str, list[tuple[int, int]]] = {}
    for endpoint, pairs in findings.items():
        found.setdefault(service_of_endpoint.get(endpoint, ""), []).extend(pairs)
    return {name: build_trend(edges, pairs, found.get(name, ())) for name, pairs in compared.items()}


# ---------------------------------------------------------------- listings


async def list_exchanges(store: Store, flt: ExchangeFilter, *, before: Cursor | None = None, limit: int = 50) -> Page:
    """Newest first, `limit` at a time; pass the page's `next_cursor` as `before` for the next (older) page.

    Keyset pagination on (started_at, id): each page is a range scan on one of the store's
    (service|endpoint|outcome, started_at, id) indexes, however deep the page.
    """
    limit = max(1, min(limit, MAX_PAGE))
    if flt.path is None:
        return await store.list_exchanges(
            service=flt.service,
            endpoint=flt.endpoint,
            outcome=flt.outcome,
            since=flt.since,
            until=flt.until,
            limit=limit,
            before=before,
            run=flt.run,
        )
    e, f = ExchangeRow.__table__, FieldDiffRow.__table__
    with_path = select(f.c.exchange_id).where(f.c.endpoint == flt.endpoint, f.c.path == flt.path)
    query = select(e).where(e.c.id.in_(with_path), *_window(e, Window(flt.since, flt.until, flt.run)))
    for column, value in ((e.c.service, flt.service), (e.c.endpoint, flt.endpoint), (e.c.outcome, flt.outcome)):
        if value is not None:
            query = query.where(column == value)
    if before is not None:
        at = before.started_at
        query = query.where(
            e.c.started_at <= at, or_(e.c.started_at < at, and_(e.c.started_at == at, e.c.id < before.id))
        )
    query = query.order_by(e.c.started_at.desc(), e.c.id.desc()).limit(limit + 1)
    async with engines.reading(_engine(store)) as conn:
        fetched = (await conn.execute(query)).all()
    items = tuple(rows.summary(r) for r in fetched[:limit])
    more = len(fetched) > limit
    return Page(items, Cursor(items[-1].started_at, items[-1].id) if more and items else None)


async def field_examples(store: Store, endpoint: str) -> dict[str, str]:
    """For each field of `endpoint` that differed, one exchange whose bodies were kept, to show the difference."""
    x, f, e = ExampleRow.__table__, FieldDiffRow.__table__, ExchangeRow.__table__
    kept = select(x.c.path, func.max(x.c.exchange_id)).where(x.c.endpoint == endpoint).group_by(x.c.path)
    async with engines.reading(_engine(store)) as conn:
        examples = {path: exchange_id for path, exchange_id in (await conn.execute(kept)).all()}
        paths = select(f.c.path).where(f.c.endpoint == endpoint).distinct()
        for (path,) in (await conn.execute(paths)).all():
            if path in examples:
                continue
            # A field that only ever differed as noise sits on "match" exchanges, kept under "<match>", not its path.
            # Quotas fill first, so the oldest diffs are the likeliest to have kept bodies.
            query = (
                select(f.c.exchange_id)
                .join(e, e.c.id == f.c.exchange_id)
                .where(f.c.endpoint == endpoint, f.c.path == path, e.c.bodies_kept.is_(True))
                .order_by(f.c.started_at)
                .limit(1)
            )
            found = (await conn.execute(query)).scalar_one_or_none()
            if found is not None:
                examples[path] = found
    return {path: exchange_id for path, exchange_id in examples.items() if not path.startswith("<")}


async def service_of(store: Store, endpoint: str) -> str | None:
    """The service an endpoint template belongs to (its newest exchange's)."""
    e = ExchangeRow
    query = select(e.service).where(e.endpoint == endpoint).order_by(e.started_at.desc()).limit(1)
    async with engines.reading(_engine(store)) as conn:
        return (await conn.execute(query)).scalar_one_or_none()


async def live_requests(
    store: Store, *, since: datetime | None = None, after: Cursor | None = None, limit: int = MAX_PAGE
) -> list[StoredRequest]:
    """Live traffic's requests oldest first, `limit` at a time (pass the last one's (started_at, id) as `after`),
    with headers and body where retention kept them."""
    e, p = ExchangeRow.__table__, PayloadRow.__table__
    query = (
        select(
            e.c.id,
            e.c.started_at,
            e.c.service,
            e.c.method,
            e.c.path,
            e.c.query,
            p.c.request_headers,
            p.c.request_body,
            p.c.request_truncated,
            p.c.exchange_id.label("kept"),
        )
        .select_from(e.outerjoin(p, p.c.exchange_id == e.c.id))
        .where(e.c.run.is_(None))
        .order_by(e.c.started_at, e.c.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(e.c.started_at >= since)
    if after is not None:
        at = after.started_at
        query = query.where(
            e.c.started_at >= at, or_(e.c.started_at > at, and_(e.c.started_at == at, e.c.id > after.id))
        )
    async with engines.reading(_engine(store)) as conn:
        fetched = (await conn.execute(query)).all()
    return [
        StoredRequest(
            id=r.id,
            started_at=r.started_at,
            service=r.service,
            method=r.method,
            path=r.path,
            query=r.query,
            headers=None if r.kept is None else rows.decode_headers(r.request_headers),
            body=None if r.kept is None else (r.request_body or b""),
            body_truncated=bool(r.request_truncated),
        )
        for r in fetched
    ]
