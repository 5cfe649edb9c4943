"""Recorded requests, checked as the proxy's HTTP server would check them, and turned into ASGI scopes.

A replayed request never passes through uvicorn's parser or the proxy's server protocol (`http1.server`), so what
they would refuse is refused here, with a reason: a method or header name that is not a token, a target or header
value with control characters, an upgrade (WebSocket) request, a head over the proxy's limits (`max_header_line`,
`max_header_size`, `max_header_count`: 414/431 live), two Host fields (400), a transfer coding other than chunked
(501). Headers the data plane rebuilds for each request (Content-Length, Transfer-Encoding and the
other hop-by-hop fields, X-Request-ID: every replayed request gets a fresh id) are left out, and so are headers a
recording redacted: a replay sends no "[REDACTED]" credentials (`--set-header` supplies real ones).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from diffs.redaction import REDACTED
from proxy.dataplane.capture import session_key
from proxy.dataplane.headers import HOP_BY_HOP
from proxy.dataplane.http1.server import ServerLimits
from proxy.dataplane.routing import RouteTable

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_NOT_SENT = frozenset(h.decode() for h in HOP_BY_HOP) | {"content-length", "x-request-id", "expect"}
_ALL_SESSIONS = "-"
"""The session of requests that name none: one, replayed in recorded order."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as a source read it, before it is checked."""

    where: str
    """Its position for messages: "entry 12", "record 3 (byte 5120)", "line 40"."""
    method: str
    target: str
    """Path and query as sent (percent-encoded), or an absolute URL."""
    headers: tuple[tuple[str, str], ...]
    body: bytes
    at: float | None = None
    """When it was recorded (epoch seconds); None when the source does not say."""
    session: str | None = None
    """A session key the source already computed (the proxy's capture); None: computed from the headers."""


@dataclass(frozen=True, slots=True)
class Bad:
    """An entry that cannot be replayed, and why."""

    where: str
    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    """A checked request, ready to be sent through the data plane."""

    where: str
    method: str
    raw_path: str
    query: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    at: float | None
    session: str
    service: str

    def scope(self) -> dict[str, Any]:
        """The ASGI scope uvicorn would build for it (client unknown: no address is added to X-Forwarded-For)."""
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": unquote(self.raw_path),
            "raw_path": self.raw_path.encode("latin-1"),
            "query_string": self.query.encode("latin-1"),
            "root_path": "",
            "headers": list(self.headers),
            "client": None,
            "server": None,
        }


def parse_set_header(text: str) -> tuple[str, str]:
    """`--set-header 'Authorization: Bearer test'` → ("authorization", "Bearer test"); ValueError when malformed."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.fullmatch(name):
        raise ValueError(f"--set-header {text!r} is not 'Name: value'")
    if _BAD_VALUE.search(value):
        raise ValueError(f"--set-header {text!r} has a control character in its value")
    return name.lower(), value


class Preparer:
    """Checks recorded requests and builds them for the data plane: the same routing, the session key, overrides."""

    def __init__(
        self,
        routes: RouteTable,
        *,
        set_headers: Sequence[tuple[str, str]] = (),
        session_header: str | None = None,
        session_cookie: str | None = None,
        filters: Sequence[str] = (),
        services: Iterable[str] = (),
        limits: ServerLimits | None = None,
    ) -> None:
        self.routes = routes
        self.limits = limits or ServerLimits()
        self.set_headers = tuple(set_headers)
        self._replaced = frozenset(name for name, _ in self.set_headers)
        self.session_header = session_header
        self.session_cookie = session_cookie
        known = frozenset(services)
        self._services = frozenset(f for f in filters if f in known)
        self._endpoints = tuple(_EndpointFilter(f) for f in filters if f not in known)
        self.filtered_out = 0

    def prepare(self, recorded: Recorded) -> Request | Bad | None:
        """The request, why it cannot be replayed, or None when `--filter` leaves it out."""
        method = recorded.method.strip()
        if not _TOKEN.fullmatch(method):
            return Bad(recorded.where, f"method {method!r} is not an HTTP token")
        method = method.upper()
        target = _origin_form(recorded.target)
        if target is None:
            return Bad(recorded.where, f"target {recorded.target[:80]!r} is not a path or an http(s) URL")
        if _BAD_TARGET.search(target):
            return Bad(recorded.where, f"target {target[:80]!r} has a space or a control character")
        refused = self._over_limits(method, target, recorded.headers)
        if refused is not None:
            return Bad(recorded.where, refused)
        raw_path, _, query = target.partition("?")
        raw_path = quote(raw_path, safe="/:@!$&'()*+,;=-._~%")  # non-ASCII as UTF-8, as browsers send it
        query = quote(query, safe="/?:@!$&'()*+,;=-._~%[]")
        headers: list[tuple[bytes, bytes]] = []
        for name, value in recorded.headers:
            lower = name.strip().lower()
            if not _TOKEN.fullmatch(lower):
                return Bad(recorded.where, f"header name {name[:60]!r} is not an HTTP token")
            if _BAD_VALUE.search(value):
                return Bad(recorded.where, f"header {lower} has a control character in its value")
            if lower == "upgrade":
                return Bad(recorded.where, f"an upgrade to {value.strip()[:30]!r} (WebSocket) is not replayed")
            if lower in _NOT_SENT or lower.startswith("proxy-") or lower in self._replaced:
                continue
            if value.strip().upper() == REDACTED:
                continue
            try:
                headers.append((lower.encode("latin-1"), value.strip().encode("latin-1")))
            except UnicodeEncodeError:
                return Bad(recorded.where, f"header {lower} has characters outside ISO-8859-1")
        headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self.set_headers]
        if recorded.body or method in ("POST", "PUT", "PATCH"):
            headers.append((b"content-length", str(len(recorded.body)).encode()))
        service = self.routes.resolve(unquote(raw_path))
        if not self._wanted(service, method, raw_path):
            self.filtered_out += 1
            return None
        session = recorded.session or session_key(recorded.headers, self.session_header, self.session_cookie)
        return Request(
            recorded.where,
            method,
            raw_path,
            query,
            tuple(headers),
            recorded.body,
            recorded.at,
            session or _ALL_SESSIONS,
            service,
        )

    def _over_limits(self, method: str, target: str, headers: Sequence[tuple[str, str]]) -> str | None:
        """Why the proxy's server would refuse this head as recorded (its status in the reason), or None."""
        limits = self.limits
        if len(target) > limits.max_header_line:  # as http1.server measures them: the target, each "name: value\r\n"
            return f"request line longer than max_header_line ({limits.max_header_line} bytes; live: 414)"
        if len(headers) > limits.max_header_count:
            return f"{len(headers)} header fields, over max_header_count ({limits.max_header_count}; live: 431)"
        size, hosts = 0, 0
        for name, value in headers:
            line = len(name) + len(value) + 4
            if line > limits.max_header_line:
                return f"header {name[:60]} longer than max_header_line ({limits.max_header_line} bytes; live: 431)"
            size += line
            lower = name.strip().lower()
            if lower == "host":
                hosts += 1
            elif lower == "transfer-encoding" and value.strip().lower() != "chunked":
                return f"transfer coding {value.strip()[:30]!r} (only chunked is accepted; live: 501)"
        if size > limits.max_header_size:
            return f"header fields of {size} bytes, over max_header_size ({limits.max_header_size}; live: 431)"
        if hosts > 1:
            return "two Host header fields (live: 400)"
        return None

    def _wanted(self, service: str, method: str, raw_path: str) -> bool:
        if not self._services and not self._endpoints:
            return True
        if service in self._services:
            return True
        path = unquote(raw_path)
        return any(f.matches(method, path) for f in self._endpoints)


def _origin_form(target: str) -> str | None:
    target = target.strip()
    if target.startswith("/"):
        return target.split("#", 1)[0]
    if target.lower().startswith(("http://", "https://")):
        parts = urlsplit(target)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path
    return None


class _EndpointFilter:
    """`--filter "GET /api/orders/{id}"` (method optional): a placeholder matches any one path segment."""

    def __init__(self, text: str) -> None:
        method, _, path = text.strip().rpartition(" ")
        self.method = method.strip().upper() or None
        self.segments = tuple(
            None if s.startswith("{") and s.endswith("}") else s for s in path.strip().strip("/").split("/")
        )

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        segments = path.strip("/").split("/")
        if len(segments) != len(self.segments):
            return False
        return all(want is None or want == got for want, got in zip(self.segments, segments, strict=True))
