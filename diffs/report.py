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


@dataclass(frozen=True, slots=True)
class FieldCounts:
    """How often one field of one endpoint differed (`raw`), and how many of those were noise (`noise`)."""

    endpoint: str
    path: str
    raw: int
    noise: int
    kinds: tuple[str, ...] = ()


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
            )
        )
    return tuple(sorted(result, key=lambda s: (s.endpoint, SEVERITY[s.verdict], -s.raw, s.path)))


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
    """The diff rate (findings) over the window, in equal time buckets."""

    @property
    def shadow(self) -> str:
        return "v1" if self.primary == "v2" else "v2"

    @property
    def v2_speedup(self) -> float | None:
        return self.latency.v2_speedup


@dataclass(frozen=True, slots=True)
class Window:
    """The time window a report covers (open ends are None), and which traffic in it."""

    since: datetime | None = None
    until: datetime | None = None
    run: str | None = None
    """None: all traffic; `LIVE`: live traffic only; anything else: that replay run only."""


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
) -> Report:
    """Assemble the report; `services` lists those to show even without traffic (configured ones)."""
    fields_by_endpoint: dict[str, list[FieldSummary]] = {}
    for f in fields:
        fields_by_endpoint.setdefault(f.endpoint, []).append(f)
    hist_by_endpoint: dict[tuple[str, str], list[LatencyHistogram]] = {}
    hist_by_service: dict[str, list[LatencyHistogram]] = {}
    for h in histograms:
        hist_by_endpoint.setdefault((h.service, h.endpoint), []).append(h)
        hist_by_service.setdefault(h.service, []).append(h)
    endpoints_by_service: dict[str, list[EndpointSummary]] = {name: [] for name in services}
    for e in endpoints:
        endpoints_by_service.setdefault(e.service, []).append(
            EndpointSummary(
                service=e.service,
                endpoint=e.endpoint,
                counts=Counts.of(e.outcomes, e.finding_exchanges, e.noisy_matches),
                latency=build_latency(hist_by_endpoint.get((e.service, e.endpoint), ())),
                fields=tuple(fields_by_endpoint.get(e.endpoint, ())),
            )
        )
    summaries = []
    for name in sorted(endpoints_by_service):
        eps = tuple(sorted(endpoints_by_service[name], key=lambda s: s.severity))
        counts = sum((e.counts for e in eps), Counts())
        latency = build_latency(hist_by_service.get(name, ()))
        summaries.append(
            ServiceSummary(
                service=name,
                primary=primaries.get(name, "v1"),
                counts=counts,
                latency=latency,
                readiness=assess(counts, latency, criteria),
                endpoints=eps,
                trend=(trends or {}).get(name, Trend()),
            )
        )
    return Report(
        generated_at=generated_at,
        window=window,
        criteria=criteria,
        services=tuple(summaries),
        latency_stride=latency_stride,
    )


# ---------------------------------------------------------------- windows

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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
