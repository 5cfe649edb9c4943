"""The admin plane refuses what another site's page could make a browser send: the attacks of issue 13, replayed
byte for byte against a real admin server, and the legitimate clients that must keep working."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.config import load_settings
from proxy.control.guard import AdminGuard, allowed_host_names
from tests.proxy.report_seed import ReportApp, report_app
from tests.servers import run_server

ATTACK_BODY = b'{"to":"v2","reason":"x"}'
EVIL = "http://evil.example"
Served = tuple[str, ReportApp]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with report_app(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as ctx:
        async with run_server(ctx.app) as url:
            yield url, ctx


async def raw(url: str, request: bytes) -> tuple[int, bytes]:
    """Send exact bytes, return the status and the whole response."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(data.split(b" ", 2)[1]), data


def post(path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("path", ["/api/services/ai/promote", "/api/v1/services/ai/promote"])
async def test_a_cross_site_text_plain_promote_is_refused(served: Served, path: str) -> None:
    url, ctx = served
    host = url.removeprefix("http://")
    headers = {"Content-Type": "text/plain", "Origin": EVIL}
    status, response = await raw(url, post(path, host, headers, ATTACK_BODY))
    assert status == 403, response
    assert b"CROSS_SITE_REQUEST" in response
    assert ctx.state.primary("ai") == "v1" and await ctx.store.list_promotions("ai") == []


@pytest.mark.parametrize("path", ["/api/services/ai/rollback", "/api/v1/services/ai/rollback"])
async def test_a_cross_site_rollback_is_refused(served: Served, path: str) -> None:
    url, ctx = served
    await ctx.state.promote("ai", "v2", reason="set up", actor="test")
    host = url.removeprefix("http://")
    status, _ = await raw(url, post(path, host, {"Content-Type": "text/plain", "Origin": EVIL}, ATTACK_BODY))
    assert status == 403
    status, _ = await raw(url, post(path, host, {"Origin": EVIL}, b""))  # no body, no type: Origin still counts
    assert status == 403
    assert ctx.state.primary("ai") == "v2"


async def test_a_text_plain_body_without_an_origin_is_refused_too(served: Served) -> None:
    """A browser page can send text/plain without a preflight; only JSON proves a non-browser or same-site client."""
    url, ctx = served
    host = url.removeprefix("http://")
    status, response = await raw(
        url, post("/api/services/ai/promote", host, {"Content-Type": "text/plain"}, ATTACK_BODY)
    )
    assert status == 415 and b"application/json" in response
    assert ctx.state.primary("ai") == "v1"


async def test_the_web_form_refuses_origin_null(served: Served) -> None:
    url, ctx = served
    async with httpx.AsyncClient(base_url=url) as client:
        token = await csrf_token(client)
        response = await client.post(
            "/promotions/ai",
            data={"action": "promote", "csrf_token": token},
            headers={"Origin": "null"},
        )
    assert response.status_code == 403 and "Origin null" in response.text
    assert ctx.state.primary("ai") == "v1"


async def test_a_form_without_the_session_token_is_refused(served: Served) -> None:
    url, ctx = served
    async with (
        httpx.AsyncClient(base_url=url) as client,
        httpx.AsyncClient(base_url=url) as other,
        httpx.AsyncClient(base_url=url) as fresh,
    ):
        await csrf_token(client)  # the client has a session, but does not send its token
        bare = await client.post("/promotions/ai", data={"action": "promote"})
        foreign = await client.post("/promotions/ai", data={"action": "promote", "csrf_token": await csrf_token(other)})
        no_session = await fresh.post(
            "/noise", data={"endpoint": "GET /x", "path": "root.a", "csrf_token": await csrf_token(other)}
        )
    for response in (bare, foreign, no_session):
        assert response.status_code == 403 and "CSRF_TOKEN_INVALID" in response.text
    assert ctx.state.primary("ai") == "v1" and await ctx.store.list_noise_marks() == []


@pytest.mark.parametrize("path", ["/api/v1/exchanges", "/api/services", "/", "/metrics"])
async def test_a_foreign_host_name_cannot_read(served: Served, path: str) -> None:
    """DNS rebinding: evil.example now resolves to 127.0.0.1, so the browser sends Host: evil.example."""
    url, _ = served
    request = f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode()
    status, response = await raw(url, request)
    assert status == 421 and b"HOST_NOT_ALLOWED" in response
    assert b"exchange" not in response.split(b"\r\n\r\n", 1)[1].lower()


async def test_legitimate_clients_keep_working(served: Served) -> None:
    url, ctx = served
    port = url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=url) as client:
        # An API client or the CLI: JSON, no Origin.
        assert (await client.post("/api/services/ai/promote", json={"to": "v2"})).status_code == 200
        # A script on the report's own origin, and one reaching it as localhost.
        own = await client.post("/api/v1/services/ai/rollback", json={}, headers={"Origin": url})
        assert own.status_code == 200 and own.json()["primary"] == "v1"
        for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
            assert (await client.get("/api/v1/exchanges", headers={"Host": host})).status_code == 200
        # Bodiless DELETE and rollback from curl.
        assert (await client.post("/api/services/ai/rollback")).status_code == 200
        # The report's own form, from its own page.
        token = await csrf_token(client)
        form = await client.post(
            "/promotions/ai",
            data={"action": "promote", "confirm": "yes", "csrf_token": token},  # ai is not ready: confirmed
            headers={"Origin": url},
        )
        assert form.status_code == 303
        referred = await client.post(
            "/noise",
            data={"endpoint": "GET /api/ai", "path": "root.x", "csrf_token": token},
            headers={"Referer": f"{url}/endpoint?endpoint=x"},
        )
        assert referred.status_code == 303
    assert ctx.state.primary("ai") == "v2" and len(await ctx.store.list_noise_marks()) == 1


@pytest.mark.parametrize(
    ("overrides", "host", "allowed"),
    [
        ({}, "127.0.0.1:8900", True),
        ({}, "127.9.9.9", True),
        ({}, "localhost:8900", True),
        ({}, "LOCALHOST", True),
        ({}, "[::1]:8900", True),
        ({}, "10.0.0.5:8900", True),  # an IP address cannot be rebound to us
        ({}, "evil.example", False),
        ({}, "localhost.evil.example", False),
        ({}, "evil.example:8900@127.0.0.1", False),
        ({}, "", False),
        ({"admin_host": "admin.internal", "admin_token": "t"}, "admin.internal:8900", True),
        ({"admin_allowed_hosts": ["shadowdiff.example.com"]}, "shadowdiff.example.com", True),
        ({"admin_allowed_hosts": ["*"]}, "anything.example", True),
    ],
)
def test_host_allow_list(overrides: dict[str, Any], host: str, allowed: bool) -> None:
    settings = load_settings(overrides=overrides, environ={})
    guard = AdminGuard(lambda *a: None, allowed_names=allowed_host_names(settings))  # type: ignore[arg-type,return-value]
    assert guard.host_allowed(host) is allowed


async def csrf_token(client: httpx.AsyncClient) -> str:
    """The session's token, as a page load hands it to the browser (cookie set, token in every form)."""
    page = (await client.get("/noise")).text
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)
