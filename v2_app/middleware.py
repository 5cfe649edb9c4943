"""The outermost app layer: request id into the log context, timing by route template, and the 500 safety net."""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import FilteringBoundLogger

from v2_app.errors import internal_error_response
from v2_app.logs import bind_request, unbind_request
from v2_app.metrics import Metrics

_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
_MAX_REQUEST_ID = 128


def endpoint_template(scope: Scope) -> str:
    """`/api/orders/{id}` for the matched route, `unmatched` otherwise, so metric labels stay bounded."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return _CONVERTOR.sub(r"{\1}", path) if isinstance(path, str) else "unmatched"


class RequestContextMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware), so the contextvars it binds are seen by the endpoint's log lines."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, logger: FilteringBoundLogger) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger.bind(logger="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = (headers.get("x-request-id") or uuid.uuid4().hex)[:_MAX_REQUEST_ID]
        extra = {"shadow": True} if headers.get("x-shadow-request") == "1" else {}
        tokens = bind_request(request_id, **extra)
        status = 500
        response_started = False

        async def send_and_record(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_record)
        except Exception:
            self.logger.exception("Unhandled error", method=scope["method"], path=scope["path"])
            self.metrics.errors.labels(code="INTERNAL_ERROR", status="500").inc()
            if response_started:
                raise  # too late to send an error body; the server closes the connection
            status = 500
            await internal_error_response()(scope, receive, send)
        finally:
            elapsed = time.perf_counter() - started
            endpoint = endpoint_template(scope)
            self.metrics.request_duration.labels(method=scope["method"], endpoint=endpoint, status=str(status)).observe(
                elapsed
            )
            self.logger.info(
                "Request completed",
                method=scope["method"],
                path=scope["path"],
                endpoint=endpoint,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
            )
            unbind_request(tokens)
