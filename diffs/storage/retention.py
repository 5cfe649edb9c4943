"""Which exchanges keep their bodies: a bounded number of examples per (endpoint, field path), decided at write time.

Every exchange's summary row and field diffs are stored. Its headers and bodies are stored only while it is among the
first `examples_per_field` examples of one of its diff paths on its endpoint, or of its shadow error kind, or among
the first `match_examples_per_endpoint` matches of its endpoint. Past that, the diff is still counted and listed
(header differences too, as field diffs); only its headers and bodies are not kept. The counts live in the
`body_examples` table, so a restart (or pruning) reloads them. Each worker process counts on its own, so N workers
on one database keep up to N times the examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from diffs.exchange import Comparison, Outcome

MATCH_KEY = "<match>"
DIFF_KEY = "<diff>"
"""For a diff outcome that carries no field diffs."""

ExampleKey = tuple[str, str]
"""(endpoint, field path or one of the <...> markers)."""


def error_key(kind: str) -> str:
    return f"<shadow_error:{kind}>"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    examples_per_field: int = 20
    """Bodies kept per (endpoint, diff path) and per (endpoint, shadow error kind)."""
    match_examples_per_endpoint: int = 5
    max_exchanges: int = 1_000_000
    """Pruning deletes the oldest exchanges beyond this many."""
    max_age: timedelta | None = None
    """Pruning also deletes exchanges older than this."""
    prune_interval: float = 60.0
    """Seconds between pruning passes."""
    prune_batch: int = 5_000
    """Exchanges deleted per transaction, so writers wait for at most one short batch."""

    def limit(self, key: ExampleKey) -> int:
        return self.match_examples_per_endpoint if key[1] == MATCH_KEY else self.examples_per_field


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
    return ()


class ExampleQuota:
    """Counts kept examples per key; `plan` decides a batch, `commit` records it once the batch is written."""

    def __init__(self, policy: RetentionPolicy, counts: Mapping[ExampleKey, int] | None = None) -> None:
        self.policy = policy
        self._counts: Counter[ExampleKey] = Counter(counts or {})

    def reset(self, counts: Mapping[ExampleKey, int]) -> None:
        self._counts = Counter(counts)

    def count(self, key: ExampleKey) -> int:
        return self._counts[key]

    def plan(self, comparisons: Sequence[Comparison]) -> list[tuple[ExampleKey, ...]]:
        """For each comparison, the keys it is kept as an example of (empty: bodies not kept)."""
        pending: Counter[ExampleKey] = Counter()
        chosen: list[tuple[ExampleKey, ...]] = []
        for comparison in comparisons:
            keys = tuple(k for k in example_keys(comparison) if self._counts[k] + pending[k] < self.policy.limit(k))
            pending.update(keys)
            chosen.append(keys)
        return chosen

    def commit(self, chosen: Iterable[tuple[ExampleKey, ...]]) -> None:
        for keys in chosen:
            self._counts.update(keys)
