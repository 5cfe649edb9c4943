"""Exchanges counted by outcome, and the rates the reports and the readiness gate judge (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from diffs.exchange import Outcome


@dataclass(frozen=True, slots=True)
class Counts:
    """Exchanges by outcome. `samples` are the ones compared: match + diff + shadow_error."""

    match: int = 0
    diff: int = 0
    shadow_error: int = 0
    skipped: int = 0
    dropped: int = 0
    findings: int = 0
    """Exchanges with at least one diff in a finding field (noise and noise-marked fields excluded)."""
    noisy_match: int = 0
    """Matching exchanges that still differed, only in fields flagged noise on the spot (the secondary differed too)."""

    @classmethod
    def of(cls, outcomes: Mapping[str, int], findings: int = 0, noisy_match: int = 0) -> Counts:
        return cls(
            match=outcomes.get(Outcome.MATCH, 0),
            diff=outcomes.get(Outcome.DIFF, 0),
            shadow_error=outcomes.get(Outcome.SHADOW_ERROR, 0),
            skipped=outcomes.get(Outcome.SKIPPED, 0),
            dropped=outcomes.get(Outcome.DROPPED, 0),
            findings=findings,
            noisy_match=noisy_match,
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.match + other.match,
            self.diff + other.diff,
            self.shadow_error + other.shadow_error,
            self.skipped + other.skipped,
            self.dropped + other.dropped,
            self.findings + other.findings,
            self.noisy_match + other.noisy_match,
        )

    @property
    def total(self) -> int:
        return self.match + self.diff + self.shadow_error + self.skipped + self.dropped

    @property
    def mirrored(self) -> int:
        """Sent to the shadow: everything but what was skipped (dropped ones were mirrored, not compared)."""
        return self.total - self.skipped

    @property
    def samples(self) -> int:
        return self.match + self.diff + self.shadow_error

    def rate(self, count: int) -> float | None:
        return None if self.samples == 0 else count / self.samples

    @property
    def match_rate(self) -> float | None:
        return self.rate(self.match)

    @property
    def raw_diff_rate(self) -> float | None:
        """Exchanges with any diff, noise included."""
        return self.rate(self.diff)

    @property
    def diff_rate(self) -> float | None:
        """Exchanges with a finding: the rate readiness judges."""
        return self.rate(self.findings)

    @property
    def noise_only(self) -> int:
        """Exchanges that differed, but only in noise: flagged on the spot, or in fields judged or marked noise."""
        return self.noisy_match + max(0, self.diff - self.findings)

    @property
    def noise_rate(self) -> float | None:
        """Exchanges whose differences were all noise: differ, yet count as matching for readiness."""
        return self.rate(self.noise_only)

    @property
    def error_rate(self) -> float | None:
        return self.rate(self.shadow_error)

    @property
    def clean_match(self) -> int:
        """Exchanges where nothing differed at all."""
        return self.match - self.noisy_match

    @property
    def shares(self) -> dict[str, float | None]:
        """Every exchange in exactly one column, as fractions of all that add up to 1: match (nothing differed),
        noise only, finding, shadow error, skipped, dropped (mirrored but not compared: a full queue)."""
        parts = {
            "match": self.clean_match,
            "noise_only": self.noise_only,
            "finding": min(self.findings, self.diff),
            "shadow_error": self.shadow_error,
            "skipped": self.skipped,
            "dropped": self.dropped,
        }
        total = sum(parts.values())
        return {name: (count / total if total else None) for name, count in parts.items()}
