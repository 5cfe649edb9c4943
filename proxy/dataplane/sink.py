"""Where finished exchanges go: the `ExchangeSink` the mirror hands them to (the analysis channel in a server)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from diffs.exchange import Exchange, SideResponse

log = structlog.get_logger("shadowdiff.sink")

Handler = Callable[[Exchange], Awaitable[None] | None]


def body_bytes(exchange: Exchange) -> int:
    """The bytes of every body an exchange holds (what bounds on queued exchanges count), rewritten request bodies
    included."""
    size = len(exchange.request.body) + _side_bytes(exchange.primary)
    if exchange.shadow is not None:
        size += _side_bytes(exchange.shadow)
    if exchange.secondary is not None:
        size += _side_bytes(exchange.secondary)
    return size


def _side_bytes(side: SideResponse) -> int:
    sent = side.sent
    return len(side.body) if sent is None or sent.body is None else len(side.body) + len(sent.body)


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
