"""The readiness gate: whether a service's shadow may become its primary, and which criteria it fails (pure).

The web overview, /api/v1/readiness and `shadowdiff check` all call `assess`, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from diffs.counts import Counts
from diffs.percentiles import Latency


class Criteria(BaseModel):
    """When a service's shadow is ready to become its primary: the config's [readiness] section, query parameters of
    the web overview and /api/v1, and `shadowdiff check`'s flags all build this one type (validated like `NoiseConfig`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_samples: int = Field(default=100, ge=0)
    max_diff_rate: float = Field(default=0.01, ge=0, le=1)
    """Exchanges with a finding (noise excluded) / samples."""
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_ratio: float = Field(default=1.2, gt=0)
    """Shadow p99 / primary p99 (the migration guide expects V2 faster: below 1)."""


@dataclass(frozen=True, slots=True)
class Failure:
    criterion: str
    """"min_samples", "max_diff_rate", "max_error_rate" or "max_p99_ratio"."""
    actual: float | None
    limit: float
    message: str


@dataclass(frozen=True, slots=True)
class Readiness:
    failures: tuple[Failure, ...]

    @property
    def ready(self) -> bool:
        return not self.failures


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def assess(counts: Counts, latency: Latency, criteria: Criteria) -> Readiness:
    """The criteria the shadow fails; none means ready."""
    failures = []
    if counts.samples < criteria.min_samples:
        failures.append(
            Failure(
                "min_samples",
                counts.samples,
                criteria.min_samples,
                f"only {counts.samples} sample{'' if counts.samples == 1 else 's'}, need {criteria.min_samples}",
            )
        )
    diff_rate = counts.diff_rate
    if diff_rate is not None and diff_rate > criteria.max_diff_rate:
        failures.append(
            Failure(
                "max_diff_rate",
                diff_rate,
                criteria.max_diff_rate,
                f"diff rate {_pct(diff_rate)} > {_pct(criteria.max_diff_rate)}",
            )
        )
    error_rate = counts.error_rate
    if error_rate is not None and error_rate > criteria.max_error_rate:
        failures.append(
            Failure(
                "max_error_rate",
                error_rate,
                criteria.max_error_rate,
                f"shadow error rate {_pct(error_rate)} > {_pct(criteria.max_error_rate)}",
            )
        )
    ratio = latency.ratio("p99")
    if ratio is None:
        if counts.samples:
            failures.append(
                Failure("max_p99_ratio", None, criteria.max_p99_ratio, "no shadow latencies to compare p99 with")
            )
    elif ratio > criteria.max_p99_ratio:
        failures.append(
            Failure(
                "max_p99_ratio",
                ratio,
                criteria.max_p99_ratio,
                f"shadow p99 is {ratio:.2f}x the primary's > {criteria.max_p99_ratio:.2f}x",
            )
        )
    return Readiness(tuple(failures))
