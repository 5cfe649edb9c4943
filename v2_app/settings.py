"""V2's settings: one validated object, built once at start-up and passed in explicitly."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AIProviderName = Literal["gemini", "ollama", "offline"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


class V2Settings(BaseModel):
    """Everything V2 needs to start; a bad value fails here, naming the key and the value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = "sqlite+aiosqlite:///./v2.db"
    redis_url: str | None = None
    cache_ttl_seconds: float = Field(default=30, gt=0)
    cache_max_entries: int = Field(default=10_000, ge=1)
    """Bound of the in-memory cache; the oldest entries are evicted past it."""
    cache_key_prefix: str = "v2"
    """Prefix of every cache key, so several apps (or tests) can share one Redis."""
    ai_providers: list[AIProviderName] = Field(default=["offline"], min_length=1)
    """Tried in order; the first that answers wins. Put "offline" last to always get an answer."""
    gemini_url: str = "https://generativelanguage.googleapis.com"
    gemini_api_key: str | None = None
    gemini_model: str = "gemini-1.5-flash"
    ollama_url: str = "http://127.0.0.1:11434"
    ollama_model: str = "llama3.2"
    ai_timeout_seconds: float = Field(default=5, gt=0)
    log_level: LogLevel = "info"
    log_json: bool = True

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        for prefix in _SQLITE_PREFIXES:
            if value.startswith(prefix):
                return "sqlite+aiosqlite:///" + value.removeprefix(prefix)
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            return value
        raise ValueError(f"database_url has value {value!r}: expected sqlite:///path or sqlite+aiosqlite:///path")

    @field_validator("ai_providers")
    @classmethod
    def _no_repeats(cls, value: list[AIProviderName]) -> list[AIProviderName]:
        if len(set(value)) != len(value):
            raise ValueError(f"ai_providers has value {value!r}: a provider may appear only once")
        return value

    @model_validator(mode="after")
    def _gemini_needs_key(self) -> V2Settings:
        if "gemini" in self.ai_providers and not self.gemini_api_key:
            raise ValueError("ai_providers includes 'gemini' but gemini_api_key is not set")
        return self
