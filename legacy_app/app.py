"""The legacy app: `create_app(settings)` wires the database, the routes and the JSON error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from legacy_app.ai import AIHandlers
from legacy_app.customers import CustomerHandlers
from legacy_app.database import Database
from legacy_app.errors import InternalErrorMiddleware, http_exception_handler
from legacy_app.orders import OrderHandlers
from legacy_app.products import ProductHandlers
from legacy_app.settings import LegacySettings

APP_NAME = "legacy"
VERSION = "1.4.2"

logger = logging.getLogger("legacy_app")


def _configure_logging(level: str) -> None:
    logger.setLevel(level.upper())
    # Uvicorn configures only its own loggers; give ours a handler unless the host already set logging up.
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "app": APP_NAME, "version": VERSION})


def create_app(settings: LegacySettings) -> Starlette:
    """The V1 Starlette app on its own SQLite database; tables are created here, the engine closed on shutdown."""
    _configure_logging(settings.log_level)
    db = Database(settings.database_url)
    db.create_tables()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info(f"Legacy app {VERSION} started on {db.engine.url}")
        try:
            yield
        finally:
            db.close()
            logger.info("Legacy app stopped")

    routes = [
        Route("/health", health, methods=["GET"]),
        *ProductHandlers(db).routes(),
        *CustomerHandlers(db).routes(),
        *OrderHandlers(db).routes(),
        *AIHandlers(db).routes(),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(InternalErrorMiddleware)],
        exception_handlers={HTTPException: http_exception_handler},
        lifespan=lifespan,
    )
    app.state.db = db
    return app
