"""Operational endpoints: health and Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from v2_app import __version__
from v2_app.metrics import Metrics
from v2_app.routes import resource


def system_routes(metrics: Metrics) -> list[BaseRoute]:
    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "app": "v2", "version": __version__})

    async def prometheus(_request: Request) -> Response:
        return Response(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [resource("/health", GET=health), resource("/metrics", GET=prometheus)]
