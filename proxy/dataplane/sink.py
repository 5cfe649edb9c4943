"""Where finished exchanges go: the `ExchangeSink` the mirror hands them to (the analysis channel in a server)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from diffs.exchange import Exchange

log = structlog.get_logger("shadowdiff.sink")

Handler = Callable[[Exchange], Awaitable[None] | None]


def body_bytes(exchange: Exchange) -> int:
    """The bytes of every body an exchange holds (what bounds on queued exchanges count)."""
    size = len(exchange.request.body) + len(exchange.primary.body)
    if exchange.shadow is not None:
        size += len(exchange.shadow.body)
    if exchange.secondary is not None:
        size += len(exchange.secondary.body)
    return size


class ExchangeSink(Protocol):
    def submit(self, exchange: Exchange) -> bool:
        """Hand on one exchange without blocking; False when it was dropped (the caller counts it)."""
        ...


class LoggingSink:
    """Logs one structured line per exchange: a sink for tests and tools that need no comparison (it is callable)."""

    def __init__(self, logger: structlog.typing.FilteringBoundLogger | None = None) -> None:
        self._log = logger if logger is not None else structlog.get_logger("shadowdiff.exchange")

    def submit(self, exchange: Exchange) -> bool:
        self(exchange)
        return True

    def __call__(self, exchange: Exchange) -> None:
        shadow = exchange.shadow
        self._log.info(
            "exchange",
            id=exchange.id,
            service=exchange.service,
            method=exchange.request.method,
            path=exchange.request.path,
            primary_app=exchange.primary.app,
            primary_status=exchange.primary.status,
            primary_error=str(exchange.primary.error),
            primary_ms=round(exchange.primary.latency_ms, 2),
            shadow_status=None if shadow is None else shadow.status,
            shadow_error=None if shadow is None else str(shadow.error),
            shadow_ms=None if shadow is None else round(shadow.latency_ms, 2),
            skip_reason=exchange.skip_reason,
        )
