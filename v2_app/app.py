"""`create_app(settings)`: wires settings, database, cache, AI providers, metrics and routes into one Starlette app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO

import httpx
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.middleware import Middleware

from v2_app.ai_providers import AIProvider, GeminiProvider, OfflineProvider, OllamaProvider
from v2_app.ai_service import AIService
from v2_app.cache import CacheBackend, CacheService, MemoryTTLBackend, RedisBackend
from v2_app.customer_service import CustomerService
from v2_app.database import Database
from v2_app.errors import error_handlers
from v2_app.logs import build_logger
from v2_app.metrics import Metrics
from v2_app.middleware import RequestContextMiddleware
from v2_app.order_service import OrderService
from v2_app.product_service import ProductService
from v2_app.routes.ai import ai_routes
from v2_app.routes.orders import order_routes
from v2_app.routes.products import product_routes
from v2_app.routes.system import system_routes
from v2_app.settings import V2Settings


def create_app(settings: V2Settings, *, log_stream: TextIO | None = None) -> Starlette:
    """The V2 app. Its lifespan migrates the schema on start-up and closes the database, cache and HTTP client."""
    logger = build_logger(settings.log_level, json=settings.log_json, stream=log_stream)
    metrics = Metrics()
    db = Database(settings.database_url, observe_query=metrics.observe_query)
    backend: CacheBackend = (
        RedisBackend(settings.redis_url) if settings.redis_url else MemoryTTLBackend(settings.cache_max_entries)
    )

    def cache(namespace: str) -> CacheService:
        return CacheService(
            backend,
            namespace,
            ttl_seconds=settings.cache_ttl_seconds,
            key_prefix=settings.cache_key_prefix,
            metrics=metrics,
            logger=logger,
        )

    http = httpx.AsyncClient(timeout=settings.ai_timeout_seconds) if _needs_http(settings) else None
    products = ProductService(db, cache("product"), logger)
    orders = OrderService(db, products, logger)
    ai = AIService(_providers(settings, http), cache("ai"), metrics=metrics, logger=logger)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            await db.migrate()
            logger.info(
                "V2 started",
                database=make_url(settings.database_url).render_as_string(hide_password=True),
                cache="redis" if settings.redis_url else "memory",
                ai_providers=list(settings.ai_providers),
            )
            yield
        finally:
            if http is not None:
                await http.aclose()
            await backend.close()
            await db.dispose()

    app = Starlette(
        routes=[
            *system_routes(metrics),
            *product_routes(products),
            *order_routes(orders, CustomerService(db)),
            *ai_routes(ai, products),
        ],
        middleware=[Middleware(RequestContextMiddleware, metrics=metrics, logger=logger)],
        exception_handlers=error_handlers(metrics, logger),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    return app


def _needs_http(settings: V2Settings) -> bool:
    return any(name != "offline" for name in settings.ai_providers)


def _providers(settings: V2Settings, http: httpx.AsyncClient | None) -> list[AIProvider]:
    providers: list[AIProvider] = []
    for name in settings.ai_providers:
        if name == "offline":
            providers.append(OfflineProvider())
            continue
        assert http is not None
        if name == "gemini":
            assert settings.gemini_api_key is not None  # enforced by V2Settings
            providers.append(
                GeminiProvider(
                    http,
                    url=settings.gemini_url,
                    api_key=settings.gemini_api_key,
                    model=settings.gemini_model,
                    timeout=settings.ai_timeout_seconds,
                )
            )
        else:
            providers.append(
                OllamaProvider(
                    http, url=settings.ollama_url, model=settings.ollama_model, timeout=settings.ai_timeout_seconds
                )
            )
    return providers
