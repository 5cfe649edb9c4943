"""Cache service over a pluggable backend: in-memory with TTL by default, Redis when configured.

A failing backend never fails a request: the error is logged and counted, and the lookup is a miss.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError
from structlog.typing import FilteringBoundLogger

from v2_app.metrics import Metrics


class CacheBackend(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float) -> None: ...

    async def delete(self, *keys: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def close(self) -> None: ...


class MemoryTTLBackend:
    """A dict with expiry times, bounded: past `max_entries` the oldest entry is evicted."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[float, str]] = {}
        self._max_entries = max_entries
        self._clock = clock

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        return value

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._entries.pop(key, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock() + ttl, value)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    async def close(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisBackend:
    """redis.asyncio with short socket timeouts, so a slow Redis costs a miss, not a stalled request."""

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        self._client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )

    async def get(self, key: str) -> str | None:
        value = await self._client.get(key)
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._client.set(key, value, px=max(1, int(ttl * 1000)))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._client.delete(*keys)

    async def delete_prefix(self, prefix: str) -> int:
        keys = [key async for key in self._client.scan_iter(match=_glob_escape(prefix) + "*", count=500)]
        if keys:
            await self._client.unlink(*keys)
        return len(keys)

    async def close(self) -> None:
        await self._client.aclose()


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class CacheService:
    """JSON values under `<prefix>:<namespace>:<key>`, with hits and misses counted per namespace."""

    def __init__(
        self,
        backend: CacheBackend,
        namespace: str,
        *,
        ttl_seconds: float = 30,
        key_prefix: str = "v2",
        metrics: Metrics | None = None,
        logger: FilteringBoundLogger | None = None,
    ) -> None:
        self.backend = backend
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds
        self._prefix = f"{key_prefix}:{namespace}:"
        self._metrics = metrics
        self._logger = logger

    def key(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> Any | None:
        """The cached value, or None on a miss (absent, expired, or the backend failed)."""
        try:
            raw = await self.backend.get(self.key(key))
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            raw = None
        if self._metrics is not None:
            counter = self._metrics.cache_misses if raw is None else self._metrics.cache_hits
            counter.labels(namespace=self.namespace).inc()
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl_seconds: float | None = None) -> None:
        payload = json.dumps(value, separators=(",", ":"))
        try:
            await self.backend.set(self.key(key), payload, ttl_seconds or self.ttl_seconds)
        except (RedisError, OSError) as exc:
            self._failed("set", exc)

    async def delete(self, *keys: str) -> None:
        try:
            await self.backend.delete(*(self.key(key) for key in keys))
        except (RedisError, OSError) as exc:
            self._failed("delete", exc)

    async def invalidate_prefix(self, prefix: str = "") -> int:
        """Drop every key of this namespace starting with `prefix` (all of them by default)."""
        try:
            return await self.backend.delete_prefix(self.key(prefix))
        except (RedisError, OSError) as exc:
            self._failed("invalidate", exc)
            return 0

    def _failed(self, operation: str, exc: Exception) -> None:
        if self._metrics is not None:
            self._metrics.cache_errors.labels(namespace=self.namespace).inc()
        if self._logger is not None:
            self._logger.warning("Cache backend failed", namespace=self.namespace, operation=operation, error=repr(exc))
