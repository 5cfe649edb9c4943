"""The admin token check of the report's mutations: a Bearer header, or a form field on the web pages."""

from __future__ import annotations

import secrets

from starlette.requests import Request


def token_ok(token: str | None, request: Request, presented: str | None = None) -> bool:
    """No token configured, or the request carries it (Bearer header, or `presented` from a form)."""
    if token is None:
        return True
    if presented is None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        presented = value.strip() if scheme.lower() == "bearer" else ""
    return secrets.compare_digest(presented.encode(), token.encode())
