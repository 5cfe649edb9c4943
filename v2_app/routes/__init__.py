"""HTTP routes: thin endpoints that parse input, call one service method and render JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def resource(path: str, **handlers: Endpoint) -> Route:
    """One route per path with a handler per method, so a wrong method gets a 405 whose Allow lists them all."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method  # Starlette allows HEAD wherever GET is
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers), name=path)
