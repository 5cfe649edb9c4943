"""Request parsing: JSON bodies and the few field checks the code needs; every failure is a 400 `HTTPException`."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from starlette.exceptions import HTTPException
from starlette.requests import Request

# Ids above this cannot be in a SQLite INTEGER column, so they name nothing (and must not reach the driver).
SQLITE_MAX_INT = 2**63 - 1


def fits_sqlite(value: int) -> bool:
    return -SQLITE_MAX_INT <= value <= SQLITE_MAX_INT


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; floats are parsed as Decimal so money keeps its exact digits."""
    raw = await request.body()
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad_request("Invalid JSON body") from exc
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def get_str(body: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    """A non-empty string; None when the field is absent or null and not required."""
    value = body.get(field)
    if value is None:
        if required:
            raise bad_request(f"Field '{field}' is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"Field '{field}' must be a non-empty string")
    return value


def get_int(value: Any, label: str, *, minimum: int, maximum: int) -> int:
    if not is_int(value) or not minimum <= value <= maximum:
        raise bad_request(f"{label} must be an integer between {minimum} and {maximum}")
    return value


def get_decimal(value: Any, label: str, *, minimum: Decimal, maximum: Decimal) -> Decimal:
    """A number given as JSON number or numeric string, finite and within bounds."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise bad_request(f"{label} must be a number")
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | float) else Decimal(value)
    except InvalidOperation as exc:
        raise bad_request(f"{label} must be a number") from exc
    if not number.is_finite() or not minimum <= number <= maximum:
        raise bad_request(f"{label} must be a number between {minimum} and {maximum}")
    return number


def query_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name, "").strip()
    if raw == "":
        return default
    if not re.fullmatch(r"-?[0-9]{1,19}", raw) or not minimum <= int(raw) <= maximum:
        raise bad_request(f"Query parameter '{name}' must be an integer between {minimum} and {maximum}")
    return int(raw)


def path_id(request: Request, not_found: str) -> int:
    """The `{id:int}` path parameter; one too large for SQLite names nothing, so it is a 404."""
    value: int = request.path_params["id"]
    if not fits_sqlite(value):
        raise HTTPException(status_code=404, detail=not_found)
    return value
