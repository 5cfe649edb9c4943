"""Conversions at the storage boundary: comparisons to row values for inserts, fetched rows back to records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from diffs.exchange import Comparison, DiffKind, ErrorKind, FieldDiff, Headers, Outcome, SentRequest, SideResponse
from diffs.storage.records import ExchangeSummary, StoredSide

MAX_VALUE_CHARS = 4096
"""A diff value longer than this as JSON is stored as a JSON string of its first characters, ending in "…"."""


def clip(text: str, limit: int) -> str:
    """Fit a bounded column: PostgreSQL refuses longer values, and one bad row must not sink a batch."""
    return text if len(text) <= limit else text[:limit]


def _default(value: object) -> str:
    return str(value)


def encode_value(value: Any) -> str | None:
    """A diff value as JSON text (None stays NULL: the field is absent on that side)."""
    if value is None:
        return None
    text = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
    if len(text) > MAX_VALUE_CHARS:
        text = orjson.dumps(text[:MAX_VALUE_CHARS] + "…").decode()
    return text


def decode_value(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def encode_headers(headers: Headers) -> str:
    return orjson.dumps(headers).decode()


def decode_headers(text: str | None) -> Headers:
    return () if text is None else tuple((name, value) for name, value in orjson.loads(text))


def exchange_values(comparison: Comparison, exchange_id: str, bodies_kept: bool) -> dict[str, Any]:
    """The `exchanges` row of one comparison."""
    exchange = comparison.exchange
    noise = sum(1 for d in comparison.diffs if d.noise)
    values: dict[str, Any] = {
        "id": exchange_id,
        "started_at": exchange.started_at,
        "service": clip(exchange.service, 64),
        "method": clip(exchange.request.method, 16),
        "path": exchange.request.path,
        "query": exchange.request.query,
        "endpoint": clip(comparison.endpoint, 512),
        "outcome": comparison.outcome.value,
        "skip_reason": None if exchange.skip_reason is None else clip(exchange.skip_reason, 64),
        "diff_count": len(comparison.diffs) - noise,
        "noise_count": noise,
        "bodies_kept": bodies_kept,
        "run": None if exchange.run is None else clip(exchange.run, 64),
    }
    for name, side in (("primary", exchange.primary), ("shadow", exchange.shadow), ("secondary", exchange.secondary)):
        values[f"{name}_app"] = clip(side.app, 32) if side else None
        values[f"{name}_status"] = side.status if side else None
        values[f"{name}_latency_ms"] = side.latency_ms if side else None
        values[f"{name}_error"] = side.error.value if side else None
    return values


def payload_values(comparison: Comparison, exchange_id: str) -> dict[str, Any]:
    """The `exchange_payloads` row of an exchange retention keeps: its headers and bodies."""
    exchange = comparison.exchange
    request = exchange.request
    values: dict[str, Any] = {
        "exchange_id": exchange_id,
        "request_headers": encode_headers(request.headers),
        "request_body": request.body,
        "request_truncated": request.body_truncated,
    }
    for name, side in (("primary", exchange.primary), ("shadow", exchange.shadow), ("secondary", exchange.secondary)):
        values.update(_side_payload(name, side))
    return values


def _side_payload(name: str, side: SideResponse | None) -> dict[str, Any]:
    return {
        f"{name}_headers": encode_headers(side.headers) if side else None,
        f"{name}_body": side.body if side else None,
        f"{name}_truncated": side.body_truncated if side else False,
        f"{name}_sent": encode_sent(side.sent) if side and side.sent else None,
    }


def encode_sent(sent: SentRequest) -> str:
    body = None if sent.body is None else sent.body.decode("utf-8", "replace")
    return orjson.dumps({"target": sent.target, "headers": sent.headers, "body": body}).decode()


def decode_sent(text: str | None) -> SentRequest | None:
    if text is None:
        return None
    data = orjson.loads(text)
    body = data.get("body")
    headers = tuple((name, value) for name, value in data.get("headers", ()))
    return SentRequest(data["target"], headers, None if body is None else body.encode("utf-8"))


def diff_values(comparison: Comparison, exchange_id: str) -> list[dict[str, Any]]:
    """The `field_diffs` rows of one comparison."""
    started_at = comparison.exchange.started_at
    run = None if comparison.exchange.run is None else clip(comparison.exchange.run, 64)
    return [
        {
            "exchange_id": exchange_id,
            "started_at": started_at,
            "endpoint": clip(d.endpoint or comparison.endpoint, 512),
            "path": clip(d.path, 1024),
            "kind": d.kind.value,
            "primary_value": encode_value(d.primary_value),
            "shadow_value": encode_value(d.shadow_value),
            "noise": d.noise,
            "run": run,
            "primary_at": None if d.primary_at is None else clip(d.primary_at, 1024),
            "shadow_at": None if d.shadow_at is None else clip(d.shadow_at, 1024),
        }
        for d in comparison.diffs
    ]


def summary(row: Any) -> ExchangeSummary:
    """An `exchanges` row (ORM object or Row with the same attributes) as a summary."""
    return ExchangeSummary(
        id=row.id,
        started_at=row.started_at,
        service=row.service,
        method=row.method,
        path=row.path,
        endpoint=row.endpoint,
        outcome=Outcome(row.outcome),
        skip_reason=row.skip_reason,
        primary_app=row.primary_app,
        primary_status=row.primary_status,
        primary_latency_ms=row.primary_latency_ms,
        shadow_app=row.shadow_app,
        shadow_status=row.shadow_status,
        shadow_latency_ms=row.shadow_latency_ms,
        shadow_error=None if row.shadow_error is None else ErrorKind(row.shadow_error),
        diff_count=row.diff_count,
        noise_count=row.noise_count,
        bodies_kept=row.bodies_kept,
    )


def stored_side(exchange: Any, payload: Any, name: str) -> StoredSide | None:
    """One side of a fetched exchange, or None when it was never sent there."""
    app = getattr(exchange, f"{name}_app")
    if app is None:
        return None
    return StoredSide(
        app=app,
        status=getattr(exchange, f"{name}_status"),
        latency_ms=getattr(exchange, f"{name}_latency_ms"),
        error=ErrorKind(getattr(exchange, f"{name}_error")),
        headers=decode_headers(getattr(payload, f"{name}_headers") if payload else None),
        body=getattr(payload, f"{name}_body") if payload else None,
        body_truncated=bool(getattr(payload, f"{name}_truncated")) if payload else False,
        sent=decode_sent(getattr(payload, f"{name}_sent")) if payload else None,
    )


def field_diffs(rows: Sequence[Any]) -> tuple[FieldDiff, ...]:
    return tuple(
        FieldDiff(
            exchange_id=row.exchange_id,
            endpoint=row.endpoint,
            path=row.path,
            kind=DiffKind(row.kind),
            primary_value=decode_value(row.primary_value),
            shadow_value=decode_value(row.shadow_value),
            noise=row.noise,
            primary_at=row.primary_at,
            shadow_at=row.shadow_at,
        )
        for row in rows
    )
