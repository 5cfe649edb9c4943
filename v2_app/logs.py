"""Structured logging: JSON lines with request-scoped fields taken from contextvars."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger, Processor

from v2_app.settings import LogLevel


def build_logger(level: LogLevel = "info", *, json: bool = True, stream: TextIO | None = None) -> FilteringBoundLogger:
    """A logger of its own (structlog's global config stays untouched), so several apps can share a process."""
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
    ]
    logger: FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stdout),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
    )
    return logger.bind(app="v2")


def bind_request(request_id: str, **fields: Any) -> dict[str, Any]:
    """Bind request-scoped fields for every log line of this request; returns tokens for `unbind_request`."""
    return dict(structlog.contextvars.bind_contextvars(request_id=request_id, **fields))


def unbind_request(tokens: dict[str, Any]) -> None:
    structlog.contextvars.reset_contextvars(**tokens)
