"""Recorded requests checked as the proxy's HTTP server would, and built into ASGI scopes for the data plane."""

from __future__ import annotations

import pytest

from proxy.config import load_settings
from proxy.dataplane.capture import session_key
from proxy.dataplane.http1.server import ServerLimits
from proxy.dataplane.routing import RouteTable
from proxy.replay.requests import Bad, Preparer, Recorded, Request, parse_set_header

SETTINGS = load_settings(environ={})


def preparer(**options: object) -> Preparer:
    return Preparer(RouteTable(SETTINGS.services), services=SETTINGS.services, **options)  # type: ignore[arg-type]


def recorded(
    method: str = "GET", target: str = "/api/products/1", headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
) -> Recorded:
    return Recorded("entry 1", method, target, headers, body)


def test_a_request_becomes_the_scope_uvicorn_would_build() -> None:
    request = preparer().prepare(
        recorded(
            "post",
            "https://shop.test/api/orders/%C3%A9t%C3%A9?q=a%20b#frag",
            (
                ("Host", "shop.test"),
                ("Content-Type", "application/json"),
                ("Content-Length", "999"),
                ("Connection", "keep-alive"),
                ("Transfer-Encoding", "chunked"),
                ("X-Request-ID", "old"),
                ("Authorization", "[REDACTED]"),
                ("Cookie", "[redacted]"),
                ("Proxy-Authorization", "x"),
                ("Expect", "100-continue"),
            ),
            b'{"a": 1}',
        )
    )
    assert isinstance(request, Request)
    assert (request.method, request.service, request.session) == ("POST", "orders", "-")
    scope = request.scope()
    assert scope["path"] == "/api/orders/été" and scope["raw_path"] == b"/api/orders/%C3%A9t%C3%A9"
    assert scope["query_string"] == b"q=a%20b"
    assert scope["headers"] == [
        (b"host", b"shop.test"),
        (b"content-type", b"application/json"),
        (b"content-length", b"8"),
    ]
    assert scope["client"] is None


def test_non_ascii_in_a_target_is_sent_as_utf8_like_browsers_do() -> None:
    request = preparer().prepare(recorded(target="/api/products/é?name=ü"))
    assert isinstance(request, Request)
    assert (request.raw_path, request.query) == ("/api/products/%C3%A9", "name=%C3%BC")


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (recorded(method="G ET"), "method 'G ET' is not an HTTP token"),
        (recorded(method=""), "method '' is not an HTTP token"),
        (recorded(target="api/products"), "target 'api/products' is not a path or an http(s) URL"),
        (recorded(target="ftp://x/y"), "target 'ftp://x/y' is not a path or an http(s) URL"),
        (recorded(target="/a b"), "target '/a b' has a space or a control character"),
        (recorded(target="/a\x00b"), "target '/a\\x00b' has a space or a control character"),
        (recorded(headers=(("x y", "1"),)), "header name 'x y' is not an HTTP token"),
        (recorded(headers=(("", "1"),)), "header name '' is not an HTTP token"),
        (recorded(headers=(("x-a", "1\r\nInjected: yes"),)), "header x-a has a control character in its value"),
        (recorded(headers=(("x-a", "1\x00"),)), "header x-a has a control character in its value"),
        (recorded(headers=(("x-a", "雪"),)), "header x-a has characters outside ISO-8859-1"),
        (recorded(headers=(("Upgrade", "websocket"),)), "an upgrade to 'websocket' (WebSocket) is not replayed"),
    ],
)
def test_what_the_http_layer_refuses_is_a_bad_entry_with_its_reason(item: Recorded, reason: str) -> None:
    assert preparer().prepare(item) == Bad("entry 1", reason)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (recorded(target="/" + "a" * 8192), "request line longer than max_header_line (8192 bytes; live: 414)"),
        (recorded(headers=(("x-a", "v" * 8189),)), "header x-a longer than max_header_line (8192 bytes; live: 431)"),
        (
            recorded(headers=tuple((f"x-{n}", "v" * 4000) for n in range(9))),
            "header fields of 36063 bytes, over max_header_size (32768; live: 431)",
        ),
        (
            recorded(headers=tuple((f"x-{n}", "1") for n in range(101))),
            "101 header fields, over max_header_count (100; live: 431)",
        ),
        (recorded(headers=(("Host", "a"), ("host", "b"))), "two Host header fields (live: 400)"),
        (
            recorded(headers=(("Transfer-Encoding", "gzip, chunked"),)),
            "transfer coding 'gzip, chunked' (only chunked is accepted; live: 501)",
        ),
    ],
)
def test_what_the_proxys_server_protocol_refuses_is_a_bad_entry_too(item: Recorded, reason: str) -> None:
    assert preparer().prepare(item) == Bad("entry 1", reason)


def test_heads_within_the_limits_are_replayed_and_the_limits_are_the_settings() -> None:
    within = recorded(target="/" + "a" * 8100, headers=(("x-a", "v" * 8185), ("Transfer-Encoding", "chunked")))
    assert isinstance(preparer().prepare(within), Request)
    tight = preparer(limits=ServerLimits(max_header_line=256, max_header_size=1024, max_header_count=2))
    assert tight.prepare(recorded(headers=(("a", "1"), ("b", "2"), ("c", "3")))) == Bad(
        "entry 1", "3 header fields, over max_header_count (2; live: 431)"
    )


def test_set_header_replaces_the_recorded_value_whatever_its_case() -> None:
    prepared = preparer(set_headers=[parse_set_header("Authorization: Bearer test-token")]).prepare(
        recorded(headers=(("AUTHORIZATION", "Bearer recorded"), ("accept", "*/*")))
    )
    assert isinstance(prepared, Request)
    assert prepared.headers == ((b"accept", b"*/*"), (b"authorization", b"Bearer test-token"))


@pytest.mark.parametrize("text", ["no colon", "bad name: x", ": empty", "X-A: a\x01"])
def test_a_malformed_set_header_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--set-header"):
        parse_set_header(text)


def test_filters_keep_a_service_or_an_endpoint_template() -> None:
    wanted = preparer(filters=["products", "POST /api/orders", "/api/orders/{id}/items"])
    kept = [
        target
        for method, target in [
            ("GET", "/api/products/7"),
            ("POST", "/api/orders"),
            ("GET", "/api/orders"),
            ("PUT", "/api/orders/3/items"),
            ("GET", "/api/orders/3"),
            ("GET", "/health"),
        ]
        if wanted.prepare(recorded(method, target)) is not None
    ]
    assert kept == ["/api/products/7", "/api/orders", "/api/orders/3/items"]
    assert wanted.filtered_out == 3


def test_sessions_come_from_the_configured_header_or_cookie_or_the_source() -> None:
    by_header = preparer(session_header="X-Session", session_cookie="sid")
    one = by_header.prepare(recorded(headers=(("x-session", "u1"), ("cookie", "sid=9"))))
    two = by_header.prepare(recorded(headers=(("cookie", "a=1; sid=9"),)))
    given = by_header.prepare(Recorded("line 2", "GET", "/", (), b"", None, "sha256:given"))
    assert isinstance(one, Request) and isinstance(two, Request) and isinstance(given, Request)
    assert one.session == session_key([("x-session", "u1")], "x-session", None)
    assert two.session == session_key([("cookie", "sid=9")], None, "sid")
    assert given.session == "sha256:given"
    assert one.session != two.session
