"""What reports read: rollups over a window (never a scan of exchanges), and listings of the stored examples.

A report reads the rollup rows that cover its window exactly (`diffs.rollups.cover`: days, then hours, then
minutes at the ends), so its cost grows with endpoints and the window's length in days, not with traffic. Each
(service, endpoint, direction) is added up, its fields classified, its findings counted from the diff signatures,
and its latency percentiles taken from the merged histograms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, case, func, literal, or_, select, union, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select, Subquery

from diffs import rollups
from diffs.exchange import Outcome
from diffs.percentiles import LatencyHistogram
from diffs.readiness import Criteria
from diffs.report import (
    LIVE,
    EndpointCounts,
    FieldCounts,
    FieldSummary,
    Report,
    Verdict,
    Window,
    build_report,
    classify_fields,
    start_of,
)
from diffs.rules import NoiseConfig
from diffs.storage import engine as engines
from diffs.storage import rollup_rows, rows
from diffs.storage.models import ExampleRow, ExchangeRow, FieldDiffRow, NoiseMarkRow, PayloadRow, RollupRow
from diffs.storage.records import Cursor, Page, StoredRequest
from diffs.storage.store import Store
from diffs.trend import Trend, bucket_edges, build_trend

MAX_PAGE = 500
COMPARED = (Outcome.MATCH.value, Outcome.DIFF.value)
"""Both sides answered: latency percentiles use only these, so primary and shadow cover the same requests."""
SAMPLED = (Outcome.MATCH, Outcome.DIFF, Outcome.SHADOW_ERROR)


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


# ---------------------------------------------------------------- rollups added up


Key = tuple[str, str, str]
"""(service, endpoint, direction)."""


@dataclass(slots=True)
class Totals:
    """One (service, endpoint, direction)'s rollup rows over a window, added up."""

    outcomes: Counter[str] = field(default_factory=Counter)
    noisy_match: int = 0
    primary: rollups.Accumulator = field(default_factory=rollups.Accumulator)
    shadow: rollups.Accumulator = field(default_factory=rollups.Accumulator)
    statuses: Counter[str] = field(default_factory=Counter)
    fields: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    signatures: Counter[str] = field(default_factory=Counter)

    def add_row(self, row: Any) -> None:
        for name in rollup_rows.COUNT_COLUMNS:
            value = getattr(row, name)
            if value:
                self.outcomes[name] += int(value)
        self.noisy_match += int(row.noisy_match or 0)
        self.primary.add_encoded(row.primary_latency)
        self.shadow.add_encoded(row.shadow_latency)
        if row.statuses and row.statuses != "{}":
            self.statuses.update(orjson.loads(row.statuses))
        if row.fields and row.fields != "{}":
            for path, kinds in orjson.loads(row.fields).items():
                for kind, (raw, noise) in kinds.items():
                    entry = self.fields.get((path, kind))
                    if entry is None:
                        self.fields[(path, kind)] = [raw, noise]
                    else:
                        entry[0] += raw
                        entry[1] += noise
        if row.signatures and row.signatures != "{}":
            self.signatures.update(orjson.loads(row.signatures))

    @property
    def samples(self) -> int:
        return sum(self.outcomes.get(o, 0) for o in SAMPLED)


async def totals(
    store: Store,
    window: Window,
    *,
    starts: Mapping[str, datetime | None] | None = None,
    service: str | None = None,
    endpoint: str | None = None,
    now: datetime | None = None,
) -> dict[Key, Totals]:
    """Rollups added up per (service, endpoint, direction) over the window; `starts` moves some services' start.

    The rows are those of `diffs.rollups.cover`, except that an hour or day still pending compaction for a service
    is read from that service's finer rows (`around_pending`): exact whether or not the compactor has run.
    """
    async with engines.reading(_engine(store)) as conn:
        marked = await rollup_rows.pending(conn)
        return await _totals(conn, window, marked, starts=starts, service=service, endpoint=endpoint, now=now)


async def _totals(
    conn: AsyncConnection,
    window: Window,
    pending: Iterable[tuple[int, datetime, str]],
    *,
    starts: Mapping[str, datetime | None] | None = None,
    service: str | None = None,
    endpoint: str | None = None,
    now: datetime | None = None,
) -> dict[Key, Totals]:
    """`totals` in a read transaction already open, given the pending periods read in it."""
    until = window.until or now or datetime.now(UTC)
    moved = {name: start for name, start in (starts or {}).items() if start != window.since}
    groups: list[tuple[tuple[str, ...], datetime | None, bool]]
    if service is not None:
        groups = [((service,), moved.get(service, window.since), False)]
    else:
        groups = [((name,), start, False) for name, start in moved.items()]
        groups.append((tuple(moved), window.since, True))  # every other service: the window's own start
    result: dict[Key, Totals] = {}
    queries: list[Any] = []
    marked: dict[str, list[tuple[int, datetime]]] = {}
    for grain, start, name in pending:
        marked.setdefault(name, []).append((grain, start))
    for names, since, others in groups:
        ranges = rollups.cover(since, until)
        apart = {}
        for name, periods in marked.items():
            if (name in names) != others:
                adjusted = rollups.around_pending(ranges, periods)
                if adjusted != ranges:
                    apart[name] = adjusted
        parts = [(ranges, tuple(n for n in names if n not in apart), others, tuple(apart))]
        parts += [(adjusted, (name,), False, ()) for name, adjusted in apart.items()]
        for covering, only, everyone_else, besides in parts:
            if not only and not everyone_else:
                continue
            query = select(RollupRow.__table__).where(
                rollup_rows.window_clause(covering), *rollup_rows.run_clause(window.run)
            )
            if everyone_else:
                excluded = (*only, *besides)
                if excluded:
                    query = query.where(RollupRow.service.not_in(excluded))
            else:
                query = query.where(RollupRow.service.in_(only))
            if endpoint is not None:
                query = query.where(RollupRow.endpoint == endpoint)
            queries.append(query)
    fetched = await _all(conn, queries)  # one statement however many services start elsewhere or are pending
    for row in fetched:
        key = (row.service, row.endpoint, row.direction)
        found = result.get(key)
        if found is None:
            found = result[key] = Totals()
        found.add_row(row)
    return result


async def endpoint_counts(store: Store, window: Window, service: str | None = None) -> list[EndpointCounts]:
    """Exchanges per (service, endpoint, direction) and outcome in the window, from the rollups (no findings)."""
    found = await totals(store, window, service=service)
    return [
        EndpointCounts(svc, endpoint, dict(t.outcomes), noisy_matches=t.noisy_match, direction=direction)
        for (svc, endpoint, direction), t in found.items()
    ]


async def field_counts(store: Store, window: Window, service: str | None = None) -> list[FieldCounts]:
    """Diffs per (endpoint, path) in the window (raw, noise, by kind), per direction, from the rollups."""
    found = await totals(store, window, service=service)
    return [field for key, t in found.items() for field in _field_counts(key, t)]


async def noise_mark_pairs(store: Store) -> list[tuple[str, str]]:
    """Every noise mark as (endpoint, path pattern)."""
    async with engines.reading(_engine(store)) as conn:
        return await _noise_marks(conn)


async def _noise_marks(conn: AsyncConnection) -> list[tuple[str, str]]:
    fetched = (await conn.execute(select(NoiseMarkRow.endpoint, NoiseMarkRow.path))).all()
    return [(endpoint, path) for endpoint, path in fetched]


def _field_counts(key: Key, found: Totals) -> list[FieldCounts]:
    by_path: dict[str, list[tuple[str, int, int]]] = {}
    for (path, kind), (raw, noise) in found.fields.items():
        by_path.setdefault(path, []).append((kind, raw, noise))
    return [
        FieldCounts(
            key[1],
            path,
            sum(r for _, r, _ in kinds),
            sum(n for _, _, n in kinds),
            tuple(sorted({k for k, _, _ in kinds})),
            key[2],
            tuple(sorted(kinds)),
        )
        for path, kinds in by_path.items()
    ]


def report_inputs(
    found: Mapping[Key, Totals], noise: NoiseConfig, marks: Iterable[tuple[str, str]]
) -> tuple[list[EndpointCounts], list[FieldSummary], list[LatencyHistogram]]:
    """What `build_report` takes, from added-up rollups: fields classified and findings counted per direction."""
    marks = list(marks)
    endpoints: list[EndpointCounts] = []
    fields: list[FieldSummary] = []
    histograms: list[LatencyHistogram] = []
    for key, t in found.items():
        service, endpoint, direction = key
        classified = classify_fields(_field_counts(key, t), {endpoint: t.samples}, noise, marks)
        fields.extend(classified)
        finding_paths = [f.path for f in classified if f.verdict == Verdict.FINDING]
        findings = rollups.findings(t.signatures, finding_paths)
        statuses = tuple(sorted(t.statuses.items(), key=lambda item: (-item[1], item[0])))
        endpoints.append(
            EndpointCounts(service, endpoint, dict(t.outcomes), findings, t.noisy_match, direction, statuses)
        )
        primary_app, shadow_app = rollups.split_direction(direction)
        for role, app, accumulator in (("primary", primary_app, t.primary), ("shadow", shadow_app, t.shadow)):
            buckets = accumulator.buckets()
            if buckets:
                histograms.append(LatencyHistogram(service, endpoint, role, buckets, app, direction))
    return endpoints, fields, histograms


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
    """The whole report from rollups: counts, fields classified, findings counted, readiness assessed per direction.

    With `window.since_promotion`, each service's numbers start at its last promotion when that is later.
    """
    now = now or datetime.now(UTC)
    last = await store.last_changes()
    shown = [s for s in services if service is None or s == service]
    starts = {name: start_of(window, at) for name, at in last.items()}
    # One read transaction for the rollups, the noise marks and the trends, with the pending periods read once.
    async with engines.reading(_engine(store)) as conn:
        marked = await rollup_rows.pending(conn)
        found = await _totals(conn, window, marked, starts=starts, service=service, now=now)
        endpoints, fields, histograms = report_inputs(found, noise, await _noise_marks(conn))
        every_start = {name: starts.get(name, window.since) for name in {*shown, *(k[0] for k in found)}}
        current = {name: _current(primaries.get(name, "v1")) for name in every_start}
        trends = await _trends(conn, window, every_start, current, fields, now, marked)
    return build_report(
        generated_at=now,
        window=window,
        criteria=criteria,
        endpoints=endpoints,
        fields=fields,
        histograms=histograms,
        primaries=primaries,
        services=shown,
        trends=trends,
        starts=every_start,
        last_promotions=last,
    )


def _current(primary: str) -> str:
    return rollups.direction_of(primary, None)


async def _trends(
    conn: AsyncConnection,
    window: Window,
    starts: Mapping[str, datetime | None],
    directions: Mapping[str, str],
    fields: Iterable[FieldSummary],
    now: datetime,
    marked: Iterable[tuple[int, datetime, str]],
) -> dict[str, Trend]:
    """Each service's diff rate (current direction) in `TREND_BUCKETS` equal buckets over its window, from the
    rollup rows of the coarsest grain that fits a bucket. An open start begins at the service's oldest row and, with
    an open end too, the buckets end at its newest: "all time" shows the traffic's own history."""
    finding_paths: dict[tuple[str, str], list[str]] = {}
    for f in fields:
        if f.verdict == Verdict.FINDING:
            finding_paths.setdefault((f.endpoint, f.direction), []).append(f.path)
    r = RollupRow
    out: dict[str, Trend] = {}
    plans: dict[str, tuple[tuple[datetime, ...], Select[Any]]] = {}
    marked = [(g, t, name) for g, t, name in marked if name in starts]
    open_start = [name for name, since in starts.items() if since is None]
    before = rollups.ceil_time(now, rollups.GRAINS[0])  # the rows of minutes that began before `now`
    spans = await _spans(conn, [(name, directions[name]) for name in open_start], window.run, before)
    for name, since in starts.items():
        until = window.until
        if since is None:
            first, newest = spans[name]
            if first is None or newest is None:
                continue
            since = first
            until = until or max(newest + timedelta(minutes=1), first + timedelta(seconds=1))
        end = until or max(now, since + timedelta(seconds=1))
        edges = bucket_edges(since, end)
        if not edges:
            continue
        width = (edges[1] - edges[0]).total_seconds() if len(edges) > 1 else 60.0
        grain = max([g for g in rollups.GRAINS if g <= width] or [rollups.GRAINS[0]])
        covering = rollups.around_pending(
            [(grain, rollups.floor_time(since, grain), end)],
            [(g, t) for g, t, name_ in marked if name_ == name],
        )
        mine = (r.service == name, r.direction == directions[name], *rollup_rows.run_clause(window.run))
        rows = _trend_rows(edges, sorted({g for g, _, _ in covering}) or rollups.GRAINS)
        plans[name] = (edges, rows.where(rollup_rows.window_clause(covering), *mine))
    fetched = await _trend_buckets(conn, [plan[1] for plan in plans.values()])
    samples: dict[str, list[tuple[int, int]]] = {name: [] for name in plans}
    found: dict[str, list[tuple[int, int]]] = {name: [] for name in plans}
    matching: dict[tuple[str, str], dict[str, bool]] = {}
    for name, endpoint, index, compared, signatures in fetched:
        samples[name].append((index, int(compared or 0)))
        paths = finding_paths.get((endpoint, directions[name]))
        if paths and signatures:
            hits = matching.setdefault((endpoint, directions[name]), {})
            found[name].append((index, _findings(orjson.loads(f"[{signatures}]"), paths, hits)))
    for name, (edges, _query) in plans.items():
        out[name] = build_trend(edges, samples[name], found[name])
    return out


def _trend_rows(edges: Sequence[datetime], grains: Iterable[int] = rollups.GRAINS) -> Select[Any]:
    """Each rollup row's trend bucket (the one holding its middle: off by at most half a row at a bucket's edge,
    `bisect_right(edges, start + grain / 2) - 1`, at least 0, in SQL), compared exchanges and, for rows with diffs,
    the diff signatures; `_trend_buckets` adds them up per (service, endpoint, bucket)."""
    r = RollupRow
    by_grain = []
    for grain in grains:  # those of the rows read: usually one
        half = timedelta(seconds=grain / 2)
        later_first = [(r.start >= edges[i] - half, i) for i in range(len(edges) - 1, 0, -1)]
        by_grain.append((r.grain == grain, case(*later_first, else_=0) if later_first else literal(0)))
    compared = r.match + r.diff + r.shadow_error  # NOT NULL columns
    differing = case((and_(r.diff > 0, r.signatures != "", r.signatures != "{}"), r.signatures))
    return select(
        r.service,
        r.endpoint,
        case(*by_grain, else_=0).label("bucket"),
        compared.label("compared"),
        differing.label("signatures"),
    )


async def _trend_buckets(conn: AsyncConnection, selects: Sequence[Select[Any]]) -> Sequence[Any]:
    """(service, endpoint, bucket, compared, signatures joined by commas) for every service's trend, one statement:
    ~150 groups instead of a week's ~2,700 hour rows through Python."""
    if not selects:
        return []
    rows: Subquery = selects[0].subquery() if len(selects) == 1 else union_all(*selects).subquery()
    joined = func.string_agg if conn.dialect.name == "postgresql" else func.group_concat
    query = select(
        rows.c.service, rows.c.endpoint, rows.c.bucket, func.sum(rows.c.compared), joined(rows.c.signatures, ",")
    ).group_by(rows.c.service, rows.c.endpoint, rows.c.bucket)
    return (await conn.execute(query)).all()


def _findings(signatures: Iterable[Mapping[str, int]], paths: Sequence[str], hits: dict[str, bool]) -> int:
    """`rollups.findings` over several rows' signatures, remembering which signatures have a finding (`hits`: the
    same few signatures come back in every row of an endpoint)."""
    total = 0
    for one in signatures:
        for signature, count in one.items():
            hit = hits.get(signature)
            if hit is None:
                hit = hits[signature] = rollups.findings({signature: 1}, paths) > 0
            if hit:
                total += count
    return total


async def _all(conn: AsyncConnection, queries: Sequence[Any]) -> Sequence[Any]:
    """The rows of several selects of the same columns in one statement (UNION ALL keeps each one's plan)."""
    if not queries:
        return []
    if len(queries) == 1:
        return (await conn.execute(queries[0])).all()
    return (await conn.execute(union_all(*queries))).all()


async def _spans(
    conn: AsyncConnection, series: Sequence[tuple[str, str]], run: str | None, before: datetime
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Each (service, direction)'s first and newest minute row start (the newest of those before `before`), in one
    statement: two probes of `ix_rollups_series` per service. Spelled ORDER BY ... LIMIT 1, not min() and max():
    PostgreSQL without fresh statistics (just after a load, or autovacuum off) aggregated all 40,000 minute rows of a
    week instead, and SQLite reads an index end for a lone min() or max() only."""
    if not series:
        return {}
    r = RollupRow
    ends = []
    for name, direction in series:
        mine = [r.grain == rollups.GRAINS[0], r.service == name, r.direction == direction]
        mine += rollup_rows.run_clause(run)
        ends += [select(r.start).where(*mine).order_by(r.start).limit(1).scalar_subquery()]
        newest = select(r.start).where(*mine, r.start < before).order_by(r.start.desc()).limit(1)
        ends += [newest.scalar_subquery()]
    found = (await conn.execute(select(*ends))).one()
    return {name: (found[2 * n], found[2 * n + 1]) for n, (name, _) in enumerate(series)}


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
    """For each field of `endpoint` that differed, one exchange whose bodies were kept, to show the difference.

    One statement, however many fields: per path, the newest exchange kept as an example for it, else (a field that
    only ever differed as noise sits on "match" exchanges, kept under "<match>", not its path) the oldest of its
    diffs whose exchange kept its bodies: quotas fill first, so the oldest diffs are the likeliest to have them. The
    second is a correlated probe of `ix_field_diffs_endpoint_path`, evaluated only for the paths without the first.
    """
    x, f, e = ExampleRow.__table__, FieldDiffRow.__table__, ExchangeRow.__table__
    paths = union(
        select(x.c.path.label("path")).where(x.c.endpoint == endpoint),
        select(f.c.path.label("path")).where(f.c.endpoint == endpoint),
    ).subquery()
    kept = select(func.max(x.c.exchange_id)).where(x.c.endpoint == endpoint, x.c.path == paths.c.path).scalar_subquery()
    oldest = (
        select(f.c.exchange_id)
        .join(e, e.c.id == f.c.exchange_id)
        .where(f.c.endpoint == endpoint, f.c.path == paths.c.path, e.c.bodies_kept.is_(True))
        .order_by(f.c.started_at)
        .limit(1)
        .scalar_subquery()
    )
    query = select(paths.c.path, func.coalesce(kept, oldest))  # COALESCE runs the probe only where kept is NULL
    async with engines.reading(_engine(store)) as conn:
        fetched = (await conn.execute(query)).all()
    return {path: found for path, found in fetched if found is not None and not path.startswith("<")}


async def service_of(store: Store, endpoint: str) -> str | None:
    """The service an endpoint template belongs to (from its newest rollup row)."""
    r = RollupRow
    query = select(r.service).where(r.endpoint == endpoint).order_by(r.grain, r.start.desc()).limit(1)
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
