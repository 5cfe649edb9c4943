"""The values that flow from the proxy into the comparison pipeline: exchanges, side responses, field diffs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Role(enum.StrEnum):
    """Which part a side plays in one exchange."""

    PRIMARY = "primary"
    SHADOW = "shadow"
    SECONDARY = "secondary"


class ErrorKind(enum.StrEnum):
    """Why a side has no usable response. A transport failure is data on the exchange, not an exception."""

    NONE = "none"
    CONNECT = "connect"
    TIMEOUT = "timeout"
    RESET = "reset"
    TOO_LARGE = "too_large"
    DROPPED = "dropped"  # never sent: in-flight cap reached


class Outcome(enum.StrEnum):
    MATCH = "match"
    DIFF = "diff"
    SHADOW_ERROR = "shadow_error"
    SKIPPED = "skipped"  # sampled out, too large, non-comparable
    DROPPED = "dropped"  # queue full


class DiffKind(enum.StrEnum):
    CHANGED = "changed"
    TYPE_CHANGED = "type_changed"
    ADDED = "added"  # a field present on the shadow only
    REMOVED = "removed"  # a field present on the primary only
    REORDERED = "reordered"  # the same list items in another order
    ITEM_ADDED = "item_added"  # a list item (or text line) on the shadow only
    ITEM_REMOVED = "item_removed"  # a list item (or text line) on the primary only
    STATUS = "status"
    HEADER = "header"


Headers = tuple[tuple[str, str], ...]
"""Header pairs in arrival order, names lower-cased; repeated names stay repeated."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    """Raw path as the client sent it, without the query string."""
    query: str
    headers: Headers
    body: bytes
    body_truncated: bool = False


@dataclass(frozen=True, slots=True)
class SentRequest:
    """What one upstream was actually sent: its request target and headers, and the body when the proxy rewrote it
    (ids of that side's own records), so a reviewer sees what the shadow got, not only what the client sent."""

    target: str
    """Path and query as sent (`/posts/5rCadNROXW8?user_id=6`), raw."""
    headers: Headers
    body: bytes | None = None
    """None: the client's body as it was."""


@dataclass(frozen=True, slots=True)
class SideResponse:
    """One upstream's answer to the request (or why there is none)."""

    role: Role
    app: str
    """Which implementation answered: "v1" or "v2"."""
    status: int | None
    headers: Headers
    body: bytes
    latency_ms: float
    """From sending the request to the last body byte (or the failure)."""
    error: ErrorKind = ErrorKind.NONE
    body_truncated: bool = False
    sent: SentRequest | None = None
    """The request this side got (None when not recorded)."""

    @property
    def ok(self) -> bool:
        return self.error is ErrorKind.NONE and self.status is not None


@dataclass(frozen=True, slots=True)
class Exchange:
    """One client request with every side's response, as the proxy saw it."""

    id: str
    """The X-Request-ID shared by every side."""
    started_at: datetime
    service: str
    request: RecordedRequest
    primary: SideResponse
    shadow: SideResponse | None = None
    secondary: SideResponse | None = None
    skip_reason: str | None = None
    """Set when the exchange was not mirrored (sampled_out, request_too_large, mirror_off, loop_guard)."""
    run: str | None = None
    """The replay run that sent this request (`shadowdiff replay`); None for live traffic."""


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One difference between the primary's and the shadow's response."""

    exchange_id: str
    endpoint: str
    """Endpoint template, e.g. "GET /api/orders/{id}"."""
    path: str
    """JSON path template with list indices folded, e.g. "root.items[*].price"; "status" or "header.content-type"."""
    kind: DiffKind
    primary_value: Any
    shadow_value: Any
    noise: bool = False
    primary_at: str | None = None
    """Where the difference is in the primary's body when `path` folds list indices: `root.items[2].stock`, or
    `root.line.12` for a text body (None: at `path` itself, or the item is not on this side)."""
    shadow_at: str | None = None
    """The same on the shadow's side, which differs when lists were aligned by key (`root.items[0].stock`)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The verdict on one exchange: its endpoint, outcome and field diffs."""

    exchange: Exchange
    endpoint: str
    outcome: Outcome
    diffs: tuple[FieldDiff, ...] = field(default_factory=tuple)
    noisy: frozenset[tuple[str, DiffKind]] = frozenset()
    """(path, kind) of the differences between the secondary and the side running its app, on this exchange."""
