"""The AI service: cached generation over a provider chain that falls through on any provider failure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from v2_app.ai_providers import AIProvider, ProviderError
from v2_app.cache import CacheService
from v2_app.exceptions import ServiceUnavailableError
from v2_app.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    provider: str
    """Name of the provider that answered (the one that answered first, when served from the cache)."""
    cached: bool


class AIService:
    def __init__(
        self,
        providers: Sequence[AIProvider],
        cache: CacheService,
        *,
        metrics: Metrics,
        logger: FilteringBoundLogger,
    ) -> None:
        if not providers:
            raise ValueError("AIService needs at least one provider")
        self._providers = tuple(providers)
        self._cache = cache
        self._metrics = metrics
        self._logger = logger.bind(logger="AIService")

    async def generate_text(self, prompt: str, max_tokens: int) -> Generation:
        """Cached by (prompt, max_tokens); otherwise the first provider in the chain that answers."""
        key = _cache_key(prompt, max_tokens)
        hit = await self._cache.get(key)
        if isinstance(hit, dict):
            return Generation(text=str(hit["text"]), provider=str(hit["provider"]), cached=True)
        failures: list[str] = []
        for provider in self._providers:
            try:
                text = await provider.generate(prompt, max_tokens)
            except ProviderError as exc:
                self._metrics.ai_requests.labels(provider=provider.name, outcome=exc.kind).inc()
                self._logger.warning("AI provider failed", provider=provider.name, kind=exc.kind, error=str(exc))
                failures.append(str(exc))
                continue
            self._metrics.ai_requests.labels(provider=provider.name, outcome="ok").inc()
            if failures:
                self._logger.info("AI provider fallback answered", provider=provider.name, failed=len(failures))
            await self._cache.set(key, {"text": text, "provider": provider.name})
            return Generation(text=text, provider=provider.name, cached=False)
        raise ServiceUnavailableError("No AI provider answered", {"failures": failures})


def _cache_key(prompt: str, max_tokens: int) -> str:
    digest = hashlib.sha256(json.dumps([prompt, max_tokens]).encode()).hexdigest()
    return f"gen:{digest}"
