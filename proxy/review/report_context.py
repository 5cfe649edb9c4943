"""What the web report and /api/v1 share: report loading, query parameters, the token check, exchanges as JSON."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from diffs.decoding import decode_body
from diffs.exchange import Headers, Outcome
from diffs.readiness import Criteria
from diffs.report import Report, Window, parse_since
from diffs.storage import Cursor, ExchangeSummary, NoiseMark, Store, StoredExchange, StoredSide, queries
from proxy.config import Settings
from proxy.control.promotion import PrimaryState


class BadRequest(ValueError):
    """A query parameter or body that does not validate: becomes a 422 naming the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


# ---------------------------------------------------------------- what the web pages and the API share


class ReportContext:
    """The store, the run-time primaries and the readiness criteria the report pages and the API read."""

    def __init__(
        self, settings: Settings, store: Store, state: PrimaryState, *, criteria: Criteria | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.criteria = criteria or Criteria()

    @property
    def services(self) -> list[str]:
        return list(self.state.services)

    async def report(self, window: Window, service: str | None = None, criteria: Criteria | None = None) -> Report:
        return await queries.load_report(
            self.store,
            window=window,
            criteria=criteria or self.criteria,
            noise=self.settings.noise,
            primaries=self.state.snapshot(),
            service=service,
            services=self.services,
        )

    def token_ok(self, request: Request, presented: str | None = None) -> bool:
        """No token configured, or the request carries it (Bearer header, or `presented` from a form)."""
        token = self.settings.admin_token
        if token is None:
            return True
        if presented is None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            presented = value.strip() if scheme.lower() == "bearer" else ""
        return secrets.compare_digest(presented.encode(), token.encode())


def window_from(params: Mapping[str, str], now: datetime | None = None) -> Window:
    """`since` / `until` query parameters: a duration back from now (15m, 1h, 7d) or an ISO 8601 time."""
    now = now or datetime.now(UTC)
    bounds: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        raw = (params.get(name) or "").strip()
        try:
            bounds[name] = parse_since(raw, now) if raw else None
        except ValueError as exc:
            raise BadRequest(name, str(exc)) from None
    return Window(bounds["since"], bounds["until"])


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
    return Criteria(
        min_samples=int_param(params, "min_samples", base.min_samples, 0, 1_000_000_000),
        max_diff_rate=float_param(params, "max_diff_rate", base.max_diff_rate),
        max_error_rate=float_param(params, "max_error_rate", base.max_error_rate),
        max_p99_ratio=float_param(params, "max_p99_ratio", base.max_p99_ratio),
    )


def exchange_filter(params: Mapping[str, str], services: list[str]) -> queries.ExchangeFilter:
    """Filters from query parameters: service, endpoint, outcome, path (needs endpoint), since, until."""
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
    return queries.ExchangeFilter(service, endpoint, outcome, window.since, window.until, path)


def cursor_from(params: Mapping[str, str]) -> Cursor | None:
    raw = params.get("before") or None
    if raw is None:
        return None
    try:
        return Cursor.decode(raw)
    except ValueError:
        raise BadRequest("before", "not a cursor from a previous page's next_cursor") from None


# ---------------------------------------------------------------- exchanges as JSON


def _headers(headers: Headers) -> list[list[str]]:
    return [[name, value] for name, value in headers]


def body_json(body: bytes | None, headers: Headers) -> dict[str, Any]:
    """A stored body: its text (or base64 when binary) and, when it is JSON, the parsed value."""
    if body is None:
        return {"kept": False}
    decoded = decode_body(body, headers)
    data: dict[str, Any] = {"kept": True, "kind": decoded.kind, "size": len(body)}
    if decoded.kind == "json":
        data["json"] = decoded.value
    elif decoded.kind in ("text", "form"):
        data["text"] = body.decode("utf-8", "replace")
    elif decoded.kind == "binary":
        data["base64"] = base64.b64encode(body).decode()
    return data


def summary_json(s: ExchangeSummary) -> dict[str, Any]:
    return {
        "id": s.id,
        "started_at": s.started_at.isoformat(),
        "service": s.service,
        "method": s.method,
        "path": s.path,
        "endpoint": s.endpoint,
        "outcome": s.outcome.value,
        "skip_reason": s.skip_reason,
        "primary": {"app": s.primary_app, "status": s.primary_status, "latency_ms": s.primary_latency_ms},
        "shadow": None
        if s.shadow_app is None
        else {
            "app": s.shadow_app,
            "status": s.shadow_status,
            "latency_ms": s.shadow_latency_ms,
            "error": None if s.shadow_error is None else s.shadow_error.value,
        },
        "diff_count": s.diff_count,
        "noise_count": s.noise_count,
        "bodies_kept": s.bodies_kept,
    }


def _side_json(side: StoredSide | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "app": side.app,
        "status": side.status,
        "latency_ms": side.latency_ms,
        "error": side.error.value,
        "headers": _headers(side.headers),
        "body": body_json(side.body, side.headers),
        "body_truncated": side.body_truncated,
        "sent": None
        if side.sent is None
        else {
            "target": side.sent.target,
            "headers": _headers(side.sent.headers),
            "body": None if side.sent.body is None else body_json(side.sent.body, side.sent.headers),
        },
    }


def exchange_json(x: StoredExchange) -> dict[str, Any]:
    return {
        **summary_json(x.summary),
        "query": x.query,
        "request": {"headers": _headers(x.request_headers), "body": body_json(x.request_body, x.request_headers)},
        "primary": _side_json(x.primary),
        "shadow": _side_json(x.shadow),
        "secondary": _side_json(x.secondary),
        "diffs": [
            {
                "path": d.path,
                "kind": d.kind.value,
                "primary": d.primary_value,
                "shadow": d.shadow_value,
                "noise": d.noise,
                "primary_at": d.primary_at,
                "shadow_at": d.shadow_at,
            }
            for d in x.diffs
        ],
    }


def noise_mark_json(mark: NoiseMark) -> dict[str, Any]:
    return {
        "id": mark.id,
        "endpoint": mark.endpoint,
        "path": mark.path,
        "note": mark.note,
        "created_at": mark.created_at.isoformat(),
    }
