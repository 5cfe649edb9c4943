"""Noise: differences the primary's own app also shows between two runs, or that a person marked as noise.

Three sources, none guessed:

1. Per exchange — the secondary (a second copy of the primary's app) answered the same request; every path where
   primary and secondary differ is noise on that exchange, and so is everything below it.
2. Aggregate — `NoiseTracker` counts, per endpoint and path, how often primary-vs-shadow (raw) and
   primary-vs-secondary (noise) differ, over the exchanges that had a secondary, and calls a field a real finding
   only when its raw rate clearly exceeds its noise rate (see `NoiseTracker.is_signal`).
3. Marks — `(endpoint, path pattern)` pairs a person marked as noise, loaded from the store by the caller.

Recommended ignore rules for the demo apps (generated on every run, so noise by construction): `**.created_at`,
`**.updated_at` and `root.order_number` (a secondary measures the same thing without configuration).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from diffs.exchange import FieldDiff
from diffs.paths import ROOT, PatternSet, ancestors
from diffs.rules import NoiseConfig

ANY_ENDPOINT = "*"


class NoiseMark(NamedTuple):
    """A person's verdict that a field is noise; a plain pair so rows from the store fit as they are."""

    endpoint: str
    """Endpoint template, or "*" for every endpoint."""
    path: str
    """Path pattern (`root.order_number`, `**.created_at`), or exactly `status` / `header.<name>`."""


class Marks:
    """Marks indexed by endpoint, each side's patterns precompiled."""

    def __init__(self, marks: Iterable[tuple[str, str]] = ()) -> None:
        body: dict[str, list[str]] = {}
        self._exact: set[tuple[str, str]] = set()
        for endpoint, path in marks:
            if path.startswith(ROOT) or "*" in path or not (path == "status" or path.startswith("header.")):
                body.setdefault(endpoint, []).append(path)
            else:
                self._exact.add((endpoint, path))  # "status" must not read as the body field root.status
        self._body = {endpoint: PatternSet(paths) for endpoint, paths in body.items()}
        self._size = sum(len(p) for p in body.values()) + len(self._exact)

    def __len__(self) -> int:
        return self._size

    def is_marked(self, endpoint: str, path: str) -> bool:
        for key in (endpoint, ANY_ENDPOINT):
            if (key, path) in self._exact:
                return True
            patterns = self._body.get(key)
            if patterns is not None and patterns.matches(path):
                return True
        return False


def is_noisy(path: str, noisy: frozenset[str]) -> bool:
    """The path, or one of its ancestors, differed between primary and secondary."""
    return bool(noisy) and (path in noisy or any(a in noisy for a in ancestors(path)))


def flag_noise(diffs: Sequence[FieldDiff], noisy: frozenset[str], marks: Marks, endpoint: str) -> list[FieldDiff]:
    """The diffs with `noise=True` where the secondary showed the same path differing, or a mark matches."""
    if not noisy and not len(marks):
        return list(diffs)
    return [
        dataclasses.replace(d, noise=True)
        if not d.noise and (is_noisy(d.path, noisy) or marks.is_marked(endpoint, d.path))
        else d
        for d in diffs
    ]


@dataclass(slots=True)
class FieldCounts:
    raw: int = 0
    """Exchanges whose primary-vs-shadow diffs include the path."""
    raw_measured: int = 0
    """... of those, the ones that also had a secondary."""
    noise: int = 0
    """Exchanges whose primary-vs-secondary diffs include the path."""


@dataclass(slots=True)
class EndpointCounts:
    exchanges: int = 0
    """Exchanges compared (match or diff)."""
    measured: int = 0
    """... of those, the ones with a usable secondary: the denominator of both rates."""
    fields: dict[str, FieldCounts] = field(default_factory=dict)
    untracked_paths: int = 0
    """Paths not counted because the endpoint already had `max_paths` (keys that are really ids, usually)."""


@dataclass(frozen=True, slots=True)
class FieldRates:
    raw_rate: float
    noise_rate: float
    signal: bool


class NoiseTracker:
    """Pure in-memory counts per (endpoint template, path template); bounded because both are templates.

    Not thread-safe: one tracker per worker loop (the comparer runs synchronously inside it).
    """

    def __init__(self, config: NoiseConfig | None = None, *, max_paths: int = 2000) -> None:
        self.config = config or NoiseConfig()
        # Decimal, so that 3 diffs in 10,000 sits exactly on the 0.03% line rather than a float's width past it.
        self._absolute = Decimal(repr(self.config.absolute_threshold))
        self._relative = Decimal(repr(self.config.relative_threshold))
        self.max_paths = max_paths
        self._endpoints: dict[str, EndpointCounts] = {}

    def record(self, endpoint: str, raw_paths: Iterable[str], noise_paths: Iterable[str] | None) -> None:
        """Count one compared exchange; `noise_paths` is None when it had no usable secondary."""
        counts = self._endpoints.setdefault(endpoint, EndpointCounts())
        counts.exchanges += 1
        measured = noise_paths is not None
        counts.measured += measured
        for path in set(raw_paths):
            if (entry := self._entry(counts, path)) is not None:
                entry.raw += 1
                entry.raw_measured += measured
        for path in set(noise_paths or ()):
            if (entry := self._entry(counts, path)) is not None:
                entry.noise += 1

    def _entry(self, counts: EndpointCounts, path: str) -> FieldCounts | None:
        entry = counts.fields.get(path)
        if entry is None:
            if len(counts.fields) >= self.max_paths:
                counts.untracked_paths += 1
                return None
            entry = counts.fields[path] = FieldCounts()
        return entry

    def _counts(self, endpoint: str, path: str) -> tuple[int, int, int]:
        """(raw, noise, total) over the exchanges that had a secondary; with none yet, raw over all and noise 0."""
        counts = self._endpoints.get(endpoint)
        entry = counts.fields.get(path) if counts else None
        if counts is None or entry is None:
            return 0, 0, 0
        if counts.measured:
            return entry.raw_measured, entry.noise, counts.measured
        return entry.raw, 0, counts.exchanges

    def rates(self, endpoint: str, path: str) -> tuple[float, float]:
        """(raw rate, noise rate) of one field; see `_counts` for the denominator."""
        raw, noise, total = self._counts(endpoint, path)
        return (raw / total, noise / total) if total else (0.0, 0.0)

    def is_signal(self, endpoint: str, path: str) -> bool:
        """A real finding: raw − noise > absolute threshold and raw − noise > relative threshold × noise (rates).

        Both rates share one denominator (exchanges with a secondary), so the test runs on counts, exactly. With the
        defaults a field that never differs between primary and secondary is a finding once its raw rate passes
        0.03%; one that differs on the secondary half of the time needs a raw rate above 60%. Equal rates are never a
        finding. (Diffy's own test is |raw − noise| / (raw + noise) > 20% and |raw − noise| / total > 0.03%, which
        asks for raw > 1.5 × noise; `NoiseConfig` defines the relative threshold as a fraction of the noise rate.)
        """
        raw, noise, total = self._counts(endpoint, path)
        excess = raw - noise
        return excess > self._absolute * total and excess > self._relative * noise

    def endpoint_counts(self, endpoint: str) -> EndpointCounts | None:
        return self._endpoints.get(endpoint)

    def field_rates(self, endpoint: str) -> Mapping[str, FieldRates]:
        """Every tracked path of one endpoint with its rates and verdict, for reports."""
        counts = self._endpoints.get(endpoint)
        if counts is None:
            return {}
        result = {}
        for path in counts.fields:
            raw_rate, noise_rate = self.rates(endpoint, path)
            result[path] = FieldRates(raw_rate, noise_rate, self.is_signal(endpoint, path))
        return result

    def endpoints(self) -> list[str]:
        return list(self._endpoints)
