"""The admin plane's front door: refuse what a web page on another site could make a browser send, token or not.

Every request (reads too) must name this admin plane in `Host`: an IP address, a loopback name, the configured
`admin_host`, or one of `admin_allowed_hosts`. A page whose DNS name was rebound to 127.0.0.1 reaches us with its own
name in `Host`, so it cannot read `/api/v1/exchanges`. (An IP address cannot be rebound: a browser sends it only to
a page it loaded from that address.)

Every mutation (any method but GET, HEAD, OPTIONS):
- with an `Origin` header (every browser sends one on a cross-site POST), only from this admin plane's own origin;
  `Origin: null` (sandboxed frames, redirects, file pages) is refused; without `Origin`, the same for `Referer`;
- a body only as `application/json`, which no page on another site can send without a CORS preflight we never
  answer; or as a URL-encoded form carrying the CSRF token of the browser session (`csrf_token`), which the report
  pages put in their forms. No body at all is fine (`rollback` takes none).

Refusals are JSON `{"error": ...}` like the rest of the admin API, or a short HTML page for a browser.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import re
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.config import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
CSRF_FIELD = "csrf_token"
CSRF_SCOPE_KEY = "shadowdiff.csrf_token"
"""Where the guard leaves the session's CSRF token for the page handlers (`csrf_token(request.scope)`)."""
FORM_LIMIT = 64 * 1024
"""The largest form body read to find its CSRF token; the report's forms are a few hundred bytes."""
_SESSION = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def allowed_host_names(settings: Settings) -> frozenset[str]:
    """The names (besides IP addresses) this admin plane answers to."""
    names = set(LOOPBACK_NAMES)
    if settings.admin_host.strip("[]").lower() not in WILDCARD_HOSTS:
        names.add(settings.admin_host.strip("[]").lower())
    names.update(h.strip().strip("[]").lower() for h in settings.admin_allowed_hosts)
    return frozenset(names)


def csrf_token(scope: Scope) -> str:
    """The CSRF token of this request's browser session ("" outside the guard)."""
    return str(scope.get(CSRF_SCOPE_KEY, ""))


def _split_host(value: str) -> tuple[str, int | None] | None:
    """("localhost", 8900) from "localhost:8900", ("::1", None) from "[::1]"; None when it is not a host."""
    try:
        parts = urlsplit("//" + value.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query:
        return None
    return parts.hostname.lower(), port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AdminGuard:
    """ASGI middleware in front of the whole admin app (API, /api/v1, report pages, /metrics)."""

    def __init__(self, app: ASGIApp, *, allowed_names: Iterable[str], cookie_name: str = "shadowdiff_admin") -> None:
        self.app = app
        self.allowed_names = frozenset(allowed_names)
        self.any_host = "*" in self.allowed_names
        self.cookie_name = cookie_name
        self._secret = secrets.token_bytes(32)

    def host_allowed(self, host: str | None) -> bool:
        if host is None:
            return False
        split = _split_host(host)
        if split is None:
            return False
        return self.any_host or _is_ip(split[0]) or split[0] in self.allowed_names

    def token_for(self, session: str) -> str:
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.host_allowed(host):
            await _refuse(
                scope,
                send,
                421,
                "HOST_NOT_ALLOWED",
                f"this admin plane does not answer to Host {host!r}: use its address, or add the name to "
                "admin_allowed_hosts",
            )
            return
        session = self._session(headers)
        fresh = session is None
        if session is None:
            session = secrets.token_urlsafe(24)
        scope[CSRF_SCOPE_KEY] = self.token_for(session)
        if scope["method"] not in SAFE_METHODS:
            refusal = _cross_site(headers, str(host), scope.get("scheme", "http"))
            if refusal is not None:
                await _refuse(scope, send, 403, "CROSS_SITE_REQUEST", refusal)
                return
            checked = await self._check_body(scope, receive, headers, None if fresh else session)
            if isinstance(checked, tuple):
                await _refuse(scope, send, *checked)
                return
            receive = checked
        if fresh:
            send = self._setting_cookie(send, session)
        await self.app(scope, receive, send)

    def _session(self, headers: Headers) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is the client's problem: start a new session
            return None
        morsel = cookie.get(self.cookie_name)
        return morsel.value if morsel is not None and _SESSION.match(morsel.value) else None

    async def _check_body(
        self, scope: Scope, receive: Receive, headers: Headers, session: str | None
    ) -> Receive | tuple[int, str, str]:
        """`receive` to hand on (the form replayed), or (status, code, message) to refuse with."""
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
            return receive
        if not media:
            if _no_body(headers):
                return receive
            return 415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json"
        if media != "application/x-www-form-urlencoded":
            return 415, "UNSUPPORTED_MEDIA_TYPE", f"admin changes take application/json, not {media}"
        body = await _read_body(receive, FORM_LIMIT)
        if body is None:
            return 413, "FORM_TOO_LARGE", f"a form over {FORM_LIMIT} bytes is not one of the report's"
        presented = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True)).get(CSRF_FIELD, "")
        if session is None or not hmac.compare_digest(presented.encode(), self.token_for(session).encode()):
            return 403, "CSRF_TOKEN_INVALID", "the form's session token is missing or expired: reload the page, retry"
        return _replay(body)

    def _setting_cookie(self, send: Send, session: str) -> Send:
        cookie = f"{self.cookie_name}={session}; Path=/; HttpOnly; SameSite=Strict"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        return sending


def _origin_of(value: str, scheme: str) -> tuple[str, int] | None:
    parts = urlsplit(value)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def _cross_site(headers: Headers, host: str, scheme: str) -> str | None:
    """Why a mutation looks sent by another site's page (None when it does not)."""
    name = "origin" if "origin" in headers else "referer" if "referer" in headers else None
    if name is None:
        return None  # not a browser (curl, the CLI, scripts): the body's media type is what keeps pages out
    value = headers[name]
    if value.strip().lower() == "null":
        return "refused: a request with Origin null (a sandboxed or redirected page) cannot change anything"
    claimed = _origin_of(value, scheme)
    target = _split_host(host)
    if claimed is None or target is None:
        return f"refused: {name.title()} {value!r} is not an http(s) origin"
    target_port = target[1] or _DEFAULT_PORTS.get(urlsplit(value).scheme, _DEFAULT_PORTS.get(scheme, 80))
    if claimed != (target[0], target_port):
        return f"refused: a page at {value!r} cannot change this admin plane (only its own pages can)"
    return None


def _no_body(headers: Headers) -> bool:
    return "transfer-encoding" not in headers and headers.get("content-length", "0").strip() in ("", "0")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    accept = Headers(scope=scope).get("accept", "")
    if "text/html" in accept:
        text = html.escape(message)
        body = (
            f'<!doctype html><meta charset="utf-8"><title>Refused · shadowdiff</title>'
            f'<p class="error">{text}</p><p><a href="/">Back to the report</a></p>'
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        payload: dict[str, Any] = {"error": {"code": code, "message": message}}
        body = json.dumps(payload).encode()
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
