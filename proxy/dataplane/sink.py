"""Where finished exchanges go: a bounded queue drained by consumer tasks, never blocking the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from diffs.exchange import Exchange

log = structlog.get_logger("shadowdiff.sink")

Handler = Callable[[Exchange], Awaitable[None] | None]


def body_bytes(exchange: Exchange) -> int:
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


class QueueSink:
    """A bounded asyncio.Queue drained by `workers` tasks that call `handler(exchange)` (sync or async).

    When the queue is full the exchange is dropped: `submit` returns False, `dropped` grows and
    `on_drop("queue_full")` is called. The proxy counts the metric from the return value, so wire `on_drop`
    to something else (a log, a second counter), not to the same metric.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        maxsize: int,
        workers: int = 1,
        on_drop: Callable[[str], None] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if maxsize < 1 or workers < 1:
            raise ValueError("maxsize and workers must be at least 1")
        self._max_bytes = max_bytes
        self._bytes = 0
        self._handler = handler
        self._queue: asyncio.Queue[Exchange] = asyncio.Queue(maxsize)
        self._workers = workers
        self._on_drop = on_drop
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.dropped = 0
        self.handled = 0
        self.failed = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def held_bytes(self) -> int:
        return self._bytes

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    def submit(self, exchange: Exchange) -> bool:
        if self._closing:
            return self._drop("closed")
        size = body_bytes(exchange)
        if self._max_bytes is not None and self._bytes + size > self._max_bytes:
            return self._drop("queue_full")
        try:
            self._queue.put_nowait(exchange)
        except asyncio.QueueFull:
            return self._drop("queue_full")
        self._bytes += size
        return True

    def _drop(self, reason: str) -> bool:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(reason)
        return False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self._workers - len(self._tasks)):
            task = loop.create_task(self._consume())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _consume(self) -> None:
        while True:
            exchange = await self._queue.get()
            try:
                result = self._handler(exchange)
                if inspect.isawaitable(result):
                    await result
                self.handled += 1
            except Exception:
                # One bad exchange must not stop the consumer: log it and go on.
                self.failed += 1
                log.exception("exchange handler failed", exchange_id=exchange.id)
            finally:
                self._bytes -= body_bytes(exchange)
                self._queue.task_done()

    async def aclose(self, timeout: float) -> None:
        """Stop accepting, let the workers drain what is queued for up to `timeout` seconds, then cancel them."""
        self._closing = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left = self._queue.qsize()
        if left:
            log.warning("exchanges left undrained at shutdown", count=left)


class LoggingSink:
    """Logs one structured line per exchange; the stand-in until the comparison pipeline is wired.

    Usable directly as a sink or as a `QueueSink` handler (it is callable).
    """

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
