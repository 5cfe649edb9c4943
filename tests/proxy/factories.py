"""Builders for exchanges in the proxy's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime

from diffs.exchange import Exchange, RecordedRequest, Role, SideResponse


def exchange(n: int = 0, service: str = "orders") -> Exchange:
    request = RecordedRequest("GET", f"/api/orders/{n}", "", (("accept", "*/*"),), b"")
    primary = SideResponse(Role.PRIMARY, "v1", 200, (), b"{}", 1.5)
    shadow = SideResponse(Role.SHADOW, "v2", 200, (), b"{}", 2.5)
    return Exchange(f"id-{n}", datetime.now(UTC), service, request, primary, shadow)
