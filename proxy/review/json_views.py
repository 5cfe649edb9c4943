"""Stored exchanges, their summaries and noise marks as the JSON /api/v1 returns."""

from __future__ import annotations

import base64
from typing import Any

from diffs.decoding import decode_body
from diffs.exchange import Headers
from diffs.storage import ExchangeSummary, NoiseMark, StoredExchange, StoredSide


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
