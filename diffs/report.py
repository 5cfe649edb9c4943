"""The report model: per service, endpoint and field summaries with their latency and readiness verdict (pure).

The store's queries hand over raw aggregates (`EndpointCounts`, `FieldCounts`, `LatencyHistogram`); everything here
is arithmetic on them, so the web overview, the JSON API and `shadowdiff check` agree by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from diffs.counts import Counts
from diffs.noise import Marks, is_finding
from diffs.percentiles import Latency, LatencyHistogram, build_latency
from diffs.readiness import Criteria, Readiness, assess
from diffs.rules import NoiseConfig
from diffs.templating import OVERFLOW
from diffs.trend import Trend

# ---------------------------------------------------------------- inputs: raw aggregates from the store's queries


@dataclass(frozen=True, slots=True)
class EndpointCounts:
    """How many exchanges of one endpoint ended in each outcome, and how many carry a non-noise field diff."""

    service: str
    endpoint: str
    outcomes: Mapping[str, int]
    finding_exchanges: int = 0
    """Exchanges with at least one diff in a field that is a finding (filled in once fields are classified)."""
    noisy_matches: int = 0
    """Matching exchanges with diffs, all of them flagged noise (see `Counts.noisy_match`)."""
    direction: str = ""
    """ "v1>v2": the primary's app, then the shadow's; "" when not split by direction (the current one)."""
    statuses: tuple[tuple[str, int], ...] = ()
    """ ("200 404", count): primary status, shadow status ("-" for none), most frequent first."""


@dataclass(frozen=True, slots=True)
class FieldCounts:
    """How often one field of one endpoint differed (`raw`), and how many of those were noise (`noise`)."""

    endpoint: str
    path: str
    raw: int
    noise: int
    kinds: tuple[str, ...] = ()
    direction: str = ""
    by_kind: tuple[tuple[str, int, int], ...] = ()
    """(kind, raw, noise) per kind of difference at this path."""


# ---------------------------------------------------------------- counts and fields


class Verdict:
    FINDING = "finding"
    NOISE = "noise"
    MARKED = "marked"
    """A reviewer marked the field as noise."""


SEVERITY = {Verdict.FINDING: 0, Verdict.NOISE: 1, Verdict.MARKED: 2}
"""Fields are listed findings first, then noise, then what reviewers marked."""


def field_verdict(raw: int, noise: int, samples: int, config: NoiseConfig, marked: bool = False) -> str:
    """Finding, noise or marked, for a field that differed `raw` times (`noise` of them flagged noise) in `samples`
    compared exchanges: `diffs.noise.is_finding`, the one rule, unless a reviewer marked the field."""
    if marked:
        return Verdict.MARKED
    return Verdict.FINDING if is_finding(raw, noise, samples, config) else Verdict.NOISE


@dataclass(frozen=True, slots=True)
class FieldSummary:
    endpoint: str
    path: str
    raw: int
    noise: int
    verdict: str
    kinds: tuple[str, ...] = ()
    raw_rate: float | None = None
    """raw / the endpoint's samples."""
    noise_rate: float | None = None
    by_kind: tuple[tuple[str, int, int], ...] = ()
    """(kind, raw, noise) per kind of difference at this path."""
    direction: str = ""


def classify_fields(
    fields: Iterable[FieldCounts],
    samples_by_endpoint: Mapping[str, int],
    config: NoiseConfig,
    marks: Iterable[tuple[str, str]] = (),
) -> tuple[FieldSummary, ...]:
    """A verdict for every field: per endpoint, findings before noise, each most frequent first."""
    covered = Marks(marks)
    result = []
    for f in fields:
        samples = samples_by_endpoint.get(f.endpoint, 0)
        verdict = field_verdict(f.raw, f.noise, samples, config, covered.is_marked(f.endpoint, f.path))
        result.append(
            FieldSummary(
                endpoint=f.endpoint,
                path=f.path,
                raw=f.raw,
                noise=f.noise,
                verdict=verdict,
                kinds=f.kinds,
                raw_rate=f.raw / samples if samples else None,
                noise_rate=f.noise / samples if samples else None,
                by_kind=f.by_kind,
                direction=f.direction,
            )
        )
    return tuple(sorted(result, key=lambda s: (s.endpoint, s.direction, SEVERITY[s.verdict], -s.raw, s.path)))


def finding_fields(fields: Iterable[FieldSummary]) -> tuple[tuple[str, str], ...]:
    """(endpoint, path) of every finding field: what the store counts finding exchanges over."""
    return tuple((f.endpoint, f.path) for f in fields if f.verdict == Verdict.FINDING)


# ---------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    service: str
    endpoint: str
    counts: Counts
    latency: Latency
    fields: tuple[FieldSummary, ...] = ()
    statuses: tuple[tuple[str, int], ...] = ()
    """ ("200 404", count): primary status, shadow status ("-" for none), most frequent first."""

    @property
    def finding_fields(self) -> int:
        return sum(1 for f in self.fields if f.verdict == Verdict.FINDING)

    @property
    def severity(self) -> tuple[float, float, int, str]:
        """Sort key, most severe first: the highest diff rate (findings), then shadow errors, then traffic."""
        c = self.counts
        return (-(c.diff_rate or 0.0), -(c.error_rate or 0.0), -c.total, self.endpoint)

    @property
    def overflow(self) -> bool:
        """This row counts the requests of every endpoint past the service's bound (`max_endpoints`)."""
        return self.endpoint.endswith(" " + OVERFLOW)


@dataclass(frozen=True, slots=True)
class DirectionSummary:
    """A service's traffic while one app was primary and the other its shadow: never pooled with the other way."""

    primary: str
    shadow: str
    counts: Counts
    latency: Latency
    readiness: Readiness
    endpoints: tuple[EndpointSummary, ...] = ()

    @property
    def direction(self) -> str:
        return f"{self.primary}>{self.shadow}"


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    service: str
    primary: str
    """The side serving clients now: "v1" or "v2"."""
    counts: Counts
    latency: Latency
    readiness: Readiness
    endpoints: tuple[EndpointSummary, ...] = ()
    """Most severe first (`EndpointSummary.severity`)."""
    trend: Trend = Trend()
    """The diff rate (findings) over the window, in equal time buckets (the current direction's)."""
    directions: tuple[DirectionSummary, ...] = ()
    """Every direction with traffic in the window, the current one (the fields above) first."""
    since: datetime | None = None
    """Where these numbers start: the window's start or, by default, the service's last promotion."""
    last_promotion: datetime | None = None
    """When the primary last changed (None: never)."""

    @property
    def shadow(self) -> str:
        return "v1" if self.primary == "v2" else "v2"

    @property
    def direction(self) -> str:
        return f"{self.primary}>{self.shadow}"

    @property
    def v2_speedup(self) -> float | None:
        return self.latency.v2_speedup

    @property
    def v2_speedup_p99(self) -> float | None:
        return self.latency.v2_speedup_p99


@dataclass(frozen=True, slots=True)
class Window:
    """The time window a report covers (open ends are None), and which traffic in it."""

    since: datetime | None = None
    until: datetime | None = None
    run: str | None = None
    """None: all traffic; `LIVE`: live traffic only; anything else: that replay run only."""
    since_promotion: bool = False
    """Each service's numbers start at its last promotion when that is later than `since` (the default of the
    CLI, the web report and /api/v1: a promotion starts a new story)."""


LIVE = "live"
"""The `run` of live traffic in filters (`--run live`, `?run=live`); replay runs never take this name."""


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: datetime
    window: Window
    criteria: Criteria
    services: tuple[ServiceSummary, ...] = field(default_factory=tuple)
    latency_stride: int = 1
    """Latency percentiles of the busiest endpoints come from 1 exchange in this many (1: from every exchange)."""

    def service(self, name: str) -> ServiceSummary | None:
        return next((s for s in self.services if s.service == name), None)

    @property
    def active(self) -> tuple[ServiceSummary, ...]:
        """Services with traffic in the window: the ones a gate over "every service" judges."""
        return tuple(s for s in self.services if s.counts.total)

    @property
    def ready(self) -> bool:
        """Every service with traffic is ready (and there is one): configured but idle services do not block."""
        return bool(self.active) and all(s.readiness.ready for s in self.active)


def build_report(
    *,
    generated_at: datetime,
    window: Window,
    criteria: Criteria,
    endpoints: Iterable[EndpointCounts],
    fields: Iterable[FieldSummary],
    histograms: Iterable[LatencyHistogram],
    primaries: Mapping[str, str],
    services: Iterable[str] = (),
    latency_stride: int = 1,
    trends: Mapping[str, Trend] | None = None,
    starts: Mapping[str, datetime | None] | None = None,
    last_promotions: Mapping[str, datetime] | None = None,
) -> Report:
    """Assemble the report; `services` lists those to show even without traffic (configured ones).

    Inputs are split by direction (their `direction`, "" meaning the service's current one); each service's headline
    numbers are its current direction's, the others listed in `directions`. `starts`: where each service's numbers
    start (see `ServiceSummary.since`).
    """
    current = {name: _direction(primaries.get(name, "v1")) for name in [*services, *primaries]}

    def direction(service: str, given: str) -> str:
        return given or current.get(service) or _direction("v1")

    fields_by: dict[tuple[str, str], list[FieldSummary]] = {}
    for f in fields:
        fields_by.setdefault((f.endpoint, f.direction), []).append(f)
    hist_by_endpoint: dict[tuple[str, str, str], list[LatencyHistogram]] = {}
    hist_by_service: dict[tuple[str, str], list[LatencyHistogram]] = {}
    for h in histograms:
        d = direction(h.service, h.direction)
        hist_by_endpoint.setdefault((h.service, h.endpoint, d), []).append(h)
        hist_by_service.setdefault((h.service, d), []).append(h)
    by_direction: dict[str, dict[str, list[EndpointSummary]]] = {name: {} for name in services}
    for e in endpoints:
        d = direction(e.service, e.direction)
        endpoint_fields = fields_by.get((e.endpoint, e.direction), []) or (
            fields_by.get((e.endpoint, ""), []) if not e.direction else []
        )
        by_direction.setdefault(e.service, {}).setdefault(d, []).append(
            EndpointSummary(
                service=e.service,
                endpoint=e.endpoint,
                counts=Counts.of(e.outcomes, e.finding_exchanges, e.noisy_matches),
                latency=build_latency(hist_by_endpoint.get((e.service, e.endpoint, d), ())),
                fields=tuple(endpoint_fields),
                statuses=e.statuses,
            )
        )
    summaries = []
    for name in sorted(by_direction):
        primary = primaries.get(name, "v1")
        mine = current.get(name) or _direction(primary)
        directions = []
        for d in sorted(by_direction[name], key=lambda d: (d != mine, d)):
            eps = tuple(sorted(by_direction[name][d], key=lambda s: s.severity))
            counts = sum((e.counts for e in eps), Counts())
            latency = build_latency(hist_by_service.get((name, d), ()))
            p, _, sh = d.partition(">")
            directions.append(DirectionSummary(p, sh, counts, latency, assess(counts, latency, criteria), eps))
        head = directions[0] if directions and directions[0].direction == mine else None
        counts = head.counts if head else Counts()
        latency = head.latency if head else build_latency(())
        summaries.append(
            ServiceSummary(
                service=name,
                primary=primary,
                counts=counts,
                latency=latency,
                readiness=head.readiness if head else assess(counts, latency, criteria),
                endpoints=head.endpoints if head else (),
                trend=(trends or {}).get(name, Trend()),
                directions=tuple(directions),
                since=(starts or {}).get(name, window.since),
                last_promotion=(last_promotions or {}).get(name),
            )
        )
    return Report(
        generated_at=generated_at,
        window=window,
        criteria=criteria,
        services=tuple(summaries),
        latency_stride=latency_stride,
    )


def _direction(primary: str) -> str:
    return f"{primary}>{'v1' if primary == 'v2' else 'v2'}"


def start_of(window: Window, last_promotion: datetime | None) -> datetime | None:
    """Where a service's numbers start: the window's start, or its last promotion when later (and asked for)."""
    if not window.since_promotion or last_promotion is None:
        return window.since
    if window.since is None or last_promotion > window.since:
        return last_promotion
    return window.since


# ---------------------------------------------------------------- windows

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


ALL_TIME = "all"
"""`--since all` / `?since=all`: every exchange in the store, across promotions (split by direction all the same)."""


def window_of(since: str | None, now: datetime, *, until: datetime | None = None, run: str | None = None) -> Window:
    """The window a `--since` / `?since=` asks for: by default each service since its last promotion; "all"; a
    duration back from `now` (15m, 7d) or an ISO 8601 time."""
    text = (since or "").strip()
    if not text:
        return Window(until=until, run=run, since_promotion=True)
    if text.lower() == ALL_TIME:
        return Window(until=until, run=run)
    return Window(parse_since(text, now), until, run)


def parse_since(value: str, now: datetime) -> datetime:
    """A window start from "90s", "15m", "1h", "7d", "2w" before `now`, or an ISO 8601 time (UTC when naive)."""
    match = _DURATION.match(value)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a duration (15m, 1h, 7d) or an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=now.tzinfo)
