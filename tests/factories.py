"""Builders for exchanges, side responses and requests, with the API contract's bodies (docs/api-contract.md).

primary(order_body())                      # a V1 200 JSON response
shadow(order_body(total="28.00"))          # a V2 one that differs in one field
exchange(primary=..., shadow=..., path="/api/orders/1")
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from diffs.exchange import ErrorKind, Exchange, Headers, RecordedRequest, Role, SideResponse

T0: Final = datetime(2026, 11, 28, 14, 48, 58, tzinfo=UTC)
JSON_HEADERS: Final[Headers] = (("content-type", "application/json"),)
_ids = itertools.count(1)


class _Same:
    """Default shadow: the primary's response, answered by V2."""


SAME: Final = _Same()
_NO_BODY: Final = object()


def encode(value: Any) -> bytes:
    return orjson.dumps(value)


def request(
    method: str = "GET",
    path: str = "/api/orders/1",
    *,
    query: str = "",
    headers: Headers = (("accept", "application/json"),),
    json: Any = _NO_BODY,
    body: bytes = b"",
    body_truncated: bool = False,
) -> RecordedRequest:
    if json is not _NO_BODY:
        body = encode(json)
        headers = (*headers, ("content-type", "application/json"))
    return RecordedRequest(method, path, query, headers, body, body_truncated)


def response(
    json: Any = _NO_BODY,
    *,
    role: Role = Role.PRIMARY,
    app: str | None = None,
    status: int | None = 200,
    body: bytes | None = None,
    content_type: str | None = "application/json",
    headers: Headers = (),
    latency_ms: float = 10.0,
    error: ErrorKind = ErrorKind.NONE,
    body_truncated: bool = False,
) -> SideResponse:
    """A side response; `json` is encoded with orjson, or pass raw `body` bytes. `headers` are added after the type."""
    if body is None:
        body = b"" if json is _NO_BODY else encode(json)
    all_headers = ((("content-type", content_type),) if content_type else ()) + tuple(headers)
    app = app or ("v2" if role is Role.SHADOW else "v1")
    return SideResponse(role, app, status, all_headers, body, latency_ms, error, body_truncated)


def primary(json: Any = _NO_BODY, **kwargs: Any) -> SideResponse:
    return response(json, role=Role.PRIMARY, **kwargs)


def shadow(json: Any = _NO_BODY, **kwargs: Any) -> SideResponse:
    return response(json, role=Role.SHADOW, **kwargs)


def secondary(json: Any = _NO_BODY, **kwargs: Any) -> SideResponse:
    return response(json, role=Role.SECONDARY, **kwargs)


def failed(
    role: Role = Role.SHADOW, error: ErrorKind = ErrorKind.TIMEOUT, *, latency_ms: float = 5000.0
) -> SideResponse:
    """A side with no response: the transport failed (timeout, connect, reset, ...)."""
    return SideResponse(role, "v2" if role is Role.SHADOW else "v1", None, (), b"", latency_ms, error)


def exchange(
    *,
    primary: SideResponse | None = None,
    shadow: SideResponse | _Same | None = SAME,
    secondary: SideResponse | None = None,
    method: str = "GET",
    path: str = "/api/orders/1",
    service: str = "orders",
    id: str | None = None,
    request: RecordedRequest | None = None,
    skip_reason: str | None = None,
    started_at: datetime | None = None,
    run: str | None = None,
) -> Exchange:
    """An exchange; the shadow defaults to the primary's response answered by V2 (so it matches)."""
    number = next(_ids)
    first = primary if primary is not None else response(order_body())
    if isinstance(shadow, _Same):
        shadow = replace(first, role=Role.SHADOW, app="v2")
    return Exchange(
        id=id or f"req-{number:06d}",
        started_at=started_at or T0 + timedelta(milliseconds=number),
        service=service,
        request=request or _request(method, path),
        primary=first,
        shadow=shadow,
        secondary=secondary,
        skip_reason=skip_reason,
        run=run,
    )


def _request(method: str, path: str) -> RecordedRequest:
    return request(method, path)


# Bodies from docs/api-contract.md ---------------------------------------------------------------------------------

_PRODUCT: Final = {
    "id": 1,
    "sku": "SKU-0001",
    "name": "Walnut Desk",
    "description": None,
    "cost_price": "120.00",
    "margin_rate": "10.0",
    "price": "132.00",
    "status": "active",
    "stock": 12,
    "created_at": "2026-11-28T14:48:58.123456+00:00",
    "updated_at": "2026-11-28T14:48:58.123456+00:00",
}

_ORDER: Final = {
    "id": 1,
    "order_number": "ORD-5F3A9C1B",
    "customer_id": 1,
    "status": "pending",
    "coupon": None,
    "items": [
        {
            "product_id": 3,
            "sku": "SKU-0003",
            "name": "Oak Shelf",
            "quantity": 2,
            "unit_price": "11.00",
            "line_total": "22.00",
        }
    ],
    "subtotal": "22.00",
    "discount": "0.00",
    "shipping": "5.00",
    "total": "27.00",
    "created_at": "2026-11-28T14:48:58.123456+00:00",
    "updated_at": "2026-11-28T14:48:58.123456+00:00",
}


def product_body(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_PRODUCT), **overrides}


def order_item(product_id: int = 3, quantity: int = 2, unit_price: str = "11.00", **overrides: Any) -> dict[str, Any]:
    line_total = f"{float(unit_price) * quantity:.2f}"
    item = {
        "product_id": product_id,
        "sku": f"SKU-{product_id:04d}",
        "name": f"Product {product_id}",
        "quantity": quantity,
        "unit_price": unit_price,
        "line_total": line_total,
    }
    return {**item, **overrides}


def order_body(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_ORDER), **overrides}


def v1_error(detail: str = "Product not found") -> dict[str, Any]:
    return {"detail": detail}


def v2_error(code: str = "NOT_FOUND", message: str = "Product 42 not found", **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {"resource": "Product", "id": "42"}}}


def ai_body(prompt: str = "hello world", *, provider: str = "offline", cached: bool = False) -> dict[str, Any]:
    return {"text": "Generated: " + " ".join(prompt.split()[:64]), "provider": provider, "cached": cached}
