"""proxy.dataplane.http1.wire: what the proxy may write into a request line or header, checked as h11 checks it."""

from __future__ import annotations

import h11
import pytest

from proxy.dataplane.http1.wire import (
    UnsafeRequest,
    encode_target,
    request_head,
    safe_field_name,
    safe_field_value,
    safe_target,
)


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/api/orders/7", True),
        ("/a%2Fb?q=x%26y&z", True),
        ("/orders/1007\r\nX-Injected: yes", False),
        ("/orders/1 HTTP/1.0", False),
        ("/orders/\x00", False),
        ("/orders/\t1", False),
        ("/orders/é", False),  # not as it is: encode_target percent-encodes it
        ("", False),
    ],
)
def test_targets_are_checked_as_h11_checks_them(target: str, safe: bool) -> None:
    assert safe_target(target) is safe
    h11_accepts = True
    try:
        h11.Request(method="GET", target=target.encode("utf-8"), headers=[("host", "a")])
    except h11.LocalProtocolError:
        h11_accepts = False
    assert h11_accepts is safe


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("1007", True),
        ("a b\tc", True),
        ("1\r\nX-Injected: yes", False),
        ("1\n", False),
        ("a\x00b", False),
        (" leading", False),
        ("trailing ", False),
        ("", True),
        ("€", False),  # not latin-1
    ],
)
def test_field_values_are_checked_as_h11_checks_them(value: str, safe: bool) -> None:
    assert safe_field_value(value) is safe


@pytest.mark.parametrize(("name", "safe"), [("x-request-id", True), ("x id", False), ("x:id", False), ("", False)])
def test_field_names_are_tokens(name: str, safe: bool) -> None:
    assert safe_field_name(name) is safe


def test_non_ascii_text_in_a_target_is_percent_encoded_controls_never() -> None:
    assert encode_target("/orders/€?q=é") == "/orders/%E2%82%AC?q=%C3%A9"
    assert encode_target("/plain") == "/plain"
    for unsafe in ("/a b", "/a\r\nb", "/a\x7fb", "/a\x85b"):
        with pytest.raises(UnsafeRequest):
            encode_target(unsafe)


@pytest.mark.parametrize(
    "headers",
    [
        [("x-id", "1\r\nX-Injected: yes")],
        [("x-id\r\nX-Injected", "yes")],
        [("x-id", "1\nX-Injected: yes")],
        [("x-id", "1\x00")],
        [("x-id", "€")],
    ],
)
def test_a_head_with_a_line_break_anywhere_is_refused(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(UnsafeRequest):
        request_head("GET", "/x", headers, None)


def test_a_valid_head_is_what_h11_would_have_written() -> None:
    written, chunked = request_head("POST", "/x?y=1", [("host", "a"), ("x-id", "7")], b"{}")
    assert not chunked
    assert written == b"POST /x?y=1 HTTP/1.1\r\nhost: a\r\nx-id: 7\r\ncontent-length: 2\r\n\r\n"
    server = h11.Connection(h11.SERVER)
    server.receive_data(written + b"{}")
    request = server.next_event()
    assert isinstance(request, h11.Request) and request.target == b"/x?y=1"
