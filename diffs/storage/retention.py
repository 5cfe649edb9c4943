"""Which exchanges are stored at all: a bounded number of examples per (endpoint, field path) and hour.

Reports read rollups (`diffs.rollups`), which count every exchange; the `exchanges` table keeps only examples for
drill-down, with their headers, bodies and field diffs. An exchange is kept while it is among the first
`examples_per_field` of one of its diff paths on its endpoint in the current `example_period`, or of its shadow error
kind, or among the first `match_examples_per_endpoint` matches (or skipped or dropped exchanges, by reason) of its
endpoint. The counts of the current period are reloaded from `body_examples` at start-up, so a restart does not keep
a second set. Each process counts on its own, so N processes on one database keep up to N times the examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from diffs.exchange import Comparison, Outcome

MATCH_KEY = "<match>"
DROPPED_KEY = "<dropped>"
DIFF_KEY = "<diff>"
"""For a diff outcome that carries no field diffs."""

ExampleKey = tuple[str, str]
"""(endpoint, field path or one of the <...> markers)."""


def error_key(kind: str) -> str:
    return f"<shadow_error:{kind}>"


def skip_key(reason: str | None) -> str:
    return f"<skipped:{reason or 'unknown'}>"


def _summary_only(path: str) -> bool:
    return path == MATCH_KEY or path == DROPPED_KEY or path.startswith("<skipped:")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    examples_per_field: int = 20
    """Examples kept per (endpoint, diff path) and per (endpoint, shadow error kind), each `example_period`."""
    match_examples_per_endpoint: int = 5
    """... and per endpoint of matches, of skipped exchanges (per reason) and of dropped ones."""
    example_period: float = 3600.0
    """Seconds after which the example counts start again, so recent traffic always has examples."""
    max_exchanges: int = 1_000_000
    """Pruning deletes the oldest exchanges (examples) beyond this many."""
    max_age: timedelta | None = None
    """Pruning also deletes exchanges older than this."""
    prune_interval: float = 60.0
    """Seconds between pruning passes."""
    prune_batch: int = 5_000
    """Exchanges deleted per transaction, so writers wait for at most one short batch."""
    rollup_max_age: timedelta = timedelta(days=90)
    """Rollup rows older than this are deleted: reports reach this far back."""
    max_correlations: int = 1_000_000
    """Id pairs kept, newest first."""
    correlation_max_age: timedelta | None = timedelta(days=30)
    max_promotions: int = 1_000
    """Audit rows kept per service, newest first (the newest, which holds the current primary, always stays)."""
    event_max_age: timedelta = timedelta(hours=1)
    """State-feed events older than this are deleted (processes read them within seconds)."""

    def limit(self, key: ExampleKey) -> int:
        return self.match_examples_per_endpoint if _summary_only(key[1]) else self.examples_per_field


def example_keys(comparison: Comparison) -> tuple[ExampleKey, ...]:
    """What this comparison could be an example of; empty when its bodies are never worth keeping."""
    endpoint = comparison.endpoint
    if comparison.outcome is Outcome.DIFF:
        paths = dict.fromkeys(d.path for d in comparison.diffs) or {DIFF_KEY: None}
        return tuple((endpoint, p) for p in paths)
    if comparison.outcome is Outcome.SHADOW_ERROR:
        shadow = comparison.exchange.shadow
        return ((endpoint, error_key(shadow.error.value if shadow is not None else "none")),)
    if comparison.outcome is Outcome.MATCH:
        return ((endpoint, MATCH_KEY),)
    if comparison.outcome is Outcome.SKIPPED:
        return ((endpoint, skip_key(comparison.exchange.skip_reason)),)
    return ((endpoint, DROPPED_KEY),)


class ExampleQuota:
    """Counts examples per key and period; `plan` reserves the slots of a batch as it decides it.

    The newest `PERIODS_KEPT` periods met are counted (batches straddle the turn of the hour, tests and imports
    bring old times); meeting another forgets the oldest. A slot reserved for a batch that is then not written stays
    used until its period ends: fewer examples, never more than the bound.
    """

    PERIODS_KEPT = 4

    def __init__(self, policy: RetentionPolicy, kept: Iterable[tuple[str, str, datetime]] = ()) -> None:
        self.policy = policy
        self._periods: dict[float, Counter[ExampleKey]] = {}
        self.reset(kept)

    def _period(self, at: datetime) -> float:
        seconds = at.timestamp()
        return seconds - seconds % self.policy.example_period

    def since(self, now: datetime) -> datetime:
        """Where the current period and the one before begin: `reset` needs the examples stored since then."""
        return datetime.fromtimestamp(self._period(now) - self.policy.example_period, UTC)

    def reset(self, kept: Iterable[tuple[str, str, datetime]]) -> None:
        """Counts from the stored examples: (endpoint, path, exchange time) of each."""
        self._periods = {}
        for endpoint, path, at in kept:
            self._periods.setdefault(self._period(at), Counter())[(endpoint, path)] += 1
        self._trim()

    def _trim(self) -> None:
        while len(self._periods) > self.PERIODS_KEPT:
            del self._periods[min(self._periods)]

    def count(self, key: ExampleKey, at: datetime) -> int:
        return self._periods.get(self._period(at), Counter())[key]

    def plan(self, comparisons: Sequence[Comparison]) -> list[tuple[ExampleKey, ...]]:
        """For each comparison, the keys it is kept as an example of (empty: not stored); slots are reserved."""
        return [self.reserve(comparison) for comparison in comparisons]

    def reserve(self, comparison: Comparison) -> tuple[ExampleKey, ...]:
        """The keys one comparison is kept for, reserving their slots."""
        period = self._period(comparison.exchange.started_at)
        counts = self._periods.get(period)
        if counts is None:
            counts = self._periods[period] = Counter()
            self._trim()
        keys = tuple(k for k in example_keys(comparison) if counts[k] < self.policy.limit(k))
        counts.update(keys)
        return keys
