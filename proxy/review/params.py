"""Query parameters of the web report and /api/v1, validated: a bad one is a `BadRequest` naming it (a 422)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import ValidationError

from diffs.exchange import Outcome
from diffs.readiness import Criteria
from diffs.report import Window, parse_since, window_of
from diffs.storage import Cursor, queries


class BadRequest(ValueError):
    """A query parameter or body that does not validate: becomes a 422 naming the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def window_from(params: Mapping[str, str], now: datetime | None = None) -> Window:
    """`since`: a duration back from now (15m, 1h, 7d), an ISO 8601 time, or "all" (default: each service since its
    last promotion); `until`: a duration or a time; `run`: a replay run's id, or "live" for live traffic only
    (default: all traffic)."""
    now = now or datetime.now(UTC)
    raw_until = (params.get("until") or "").strip()
    try:
        until = parse_since(raw_until, now) if raw_until else None
    except ValueError as exc:
        raise BadRequest("until", str(exc)) from None
    run = (params.get("run") or "").strip() or None
    if run is not None and len(run) > 64:
        raise BadRequest("run", "a run id has at most 64 characters")
    try:
        return window_of(params.get("since"), now, until=until, run=run)
    except ValueError as exc:
        raise BadRequest("since", str(exc)) from None


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise BadRequest(name, f"must be an integer from {low} to {high}, not {raw!r}")
    return int(raw)


def float_param(params: Mapping[str, str], name: str, default: float) -> float:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(name, f"must be a number, not {raw!r}") from None
    if value < 0:
        raise BadRequest(name, f"must not be negative, not {raw!r}")
    return value


def criteria_from(params: Mapping[str, str], base: Criteria) -> Criteria:
    """Readiness criteria from query parameters, each defaulting to `base`'s."""
    try:
        return Criteria(
            min_samples=int_param(params, "min_samples", base.min_samples, 0, 1_000_000_000),
            max_diff_rate=float_param(params, "max_diff_rate", base.max_diff_rate),
            max_error_rate=float_param(params, "max_error_rate", base.max_error_rate),
            max_p99_ratio=float_param(params, "max_p99_ratio", base.max_p99_ratio),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        raise BadRequest(name, f"{error['msg'].lower()}, not {params.get(name)!r}") from None


def exchange_filter(params: Mapping[str, str], services: list[str]) -> queries.ExchangeFilter:
    """Filters from query parameters: service, endpoint, outcome, path (needs endpoint), since, until, run."""
    service = params.get("service") or None
    if service is not None and service not in services:
        raise BadRequest("service", f"unknown service {service!r}; known: {', '.join(services)}")
    outcome = params.get("outcome") or None
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        raise BadRequest("outcome", f"must be one of {', '.join(o.value for o in Outcome)}, not {outcome!r}")
    endpoint = params.get("endpoint") or None
    path = params.get("path") or None
    if path is not None and endpoint is None:
        raise BadRequest("path", "filtering by field path needs an endpoint too")
    window = window_from(params)
    return queries.ExchangeFilter(service, endpoint, outcome, window.since, window.until, path, window.run)


def cursor_from(params: Mapping[str, str]) -> Cursor | None:
    raw = params.get("before") or None
    if raw is None:
        return None
    try:
        return Cursor.decode(raw)
    except ValueError:
        raise BadRequest("before", "not a cursor from a previous page's next_cursor") from None
