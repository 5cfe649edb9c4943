"""What the store hands back: frozen values converted from ORM rows at the package boundary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from diffs.exchange import ErrorKind, FieldDiff, Headers, Outcome, SentRequest


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    """One audited change of a service's primary."""

    id: int
    service: str
    from_side: str
    to_side: str
    reason: str
    actor: str
    at: datetime
    """UTC."""


@dataclass(frozen=True, slots=True)
class NoiseMark:
    """A reviewer's decision that differences at (endpoint, path pattern) are noise."""

    id: int
    endpoint: str
    path: str
    note: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position in a listing ordered newest first: the (started_at, id) of the last item seen."""

    started_at: datetime
    id: str

    def encode(self) -> str:
        """An opaque token for URLs."""
        return f"{self.started_at.isoformat()}|{self.id}"

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Inverse of `encode`; ValueError on anything else."""
        at, sep, ident = token.partition("|")
        parsed = datetime.fromisoformat(at)
        if not sep or parsed.tzinfo is None:
            raise ValueError(f"not a cursor: {token!r}")
        return cls(parsed, ident)


@dataclass(frozen=True, slots=True)
class ExchangeSummary:
    """One exchange as a listing shows it (no headers, bodies or field diffs)."""

    id: str
    started_at: datetime
    service: str
    method: str
    path: str
    endpoint: str
    outcome: Outcome
    skip_reason: str | None
    primary_app: str
    primary_status: int | None
    primary_latency_ms: float
    shadow_app: str | None
    shadow_status: int | None
    shadow_latency_ms: float | None
    shadow_error: ErrorKind | None
    diff_count: int
    """Field diffs that are not noise."""
    noise_count: int
    bodies_kept: bool


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[ExchangeSummary, ...]
    next_cursor: Cursor | None
    """Pass as `before` to get the next (older) page; None on the last page."""


@dataclass(frozen=True, slots=True)
class StoredSide:
    """One side's response as stored: headers redacted (empty) and body None when retention did not keep them."""

    app: str
    status: int | None
    latency_ms: float
    error: ErrorKind
    headers: Headers
    body: bytes | None
    body_truncated: bool = False
    sent: SentRequest | None = None
    """The request this side was actually sent (None when retention kept no payload, or nothing was recorded)."""


@dataclass(frozen=True, slots=True)
class StoredExchange:
    """One exchange with everything kept about it."""

    summary: ExchangeSummary
    query: str
    request_headers: Headers
    """Empty when retention did not keep this exchange's payload."""
    request_body: bytes | None
    """None when retention did not keep bodies for this exchange."""
    primary: StoredSide
    shadow: StoredSide | None
    secondary: StoredSide | None
    diffs: tuple[FieldDiff, ...]

    @property
    def id(self) -> str:
        return self.summary.id


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A live exchange's request as the store kept it, for `shadowdiff replay store`."""

    id: str
    started_at: datetime
    service: str
    method: str
    path: str
    """Decoded, as the proxy recorded it."""
    query: str
    """Secret parameters redacted."""
    headers: Headers | None
    """Secret values redacted; None when retention kept only the exchange's summary (no headers, no body)."""
    body: bytes | None
    """None when retention kept only the summary."""
    body_truncated: bool = False
