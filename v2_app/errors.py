"""Exception handlers: every error leaves as the standard body `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler
from structlog.typing import FilteringBoundLogger

from v2_app.exceptions import AppError
from v2_app.metrics import Metrics

_HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def error_response(status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": dict(details or {})}}, status)


def internal_error_response() -> JSONResponse:
    return error_response(500, "INTERNAL_ERROR", "Internal server error")


def error_handlers(metrics: Metrics, logger: FilteringBoundLogger) -> Mapping[Any, ExceptionHandler]:
    """Handlers for `AppError` (ours) and Starlette's `HTTPException` (unknown route, wrong method)."""
    log = logger.bind(logger="errors")

    async def app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        metrics.errors.labels(code=exc.code, status=str(exc.status_code)).inc()
        level = log.error if exc.status_code >= 500 else log.info
        level("Request refused", code=exc.code, status=exc.status_code, error=exc.message)
        return JSONResponse(exc.body(), exc.status_code)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
        metrics.errors.labels(code=code, status=str(exc.status_code)).inc()
        response = error_response(exc.status_code, code, exc.detail, {"path": request.url.path})
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    return {AppError: app_error, HTTPException: http_error}
