"""decode_body: every encoding and content type, and never an exception."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from typing import Any

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffs.decoding import decode_body, parse_media_type

DOC = b'{"id": 1, "items": [{"price": "11.00"}], "cached": false}'
VALUE = {"id": 1, "items": [{"price": "11.00"}], "cached": False}


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def headers(content_type: str | None = "application/json", encoding: str | None = None) -> tuple[tuple[str, str], ...]:
    pairs = []
    if content_type is not None:
        pairs.append(("content-type", content_type))
    if encoding is not None:
        pairs.append(("content-encoding", encoding))
    return tuple(pairs)


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (DOC, None),
        (DOC, "identity"),
        (gzip.compress(DOC), "gzip"),
        (gzip.compress(DOC), "x-gzip"),
        (gzip.compress(DOC[:20]) + gzip.compress(DOC[20:]), "gzip"),  # two gzip members back to back
        (zlib.compress(DOC), "deflate"),
        (raw_deflate(DOC), "deflate"),  # raw deflate, as some servers send it
        (brotli.compress(DOC), "br"),
        (brotli.compress(gzip.compress(DOC)), "gzip, br"),  # applied in order, undone in reverse
        (gzip.compress(DOC), "GZIP"),
    ],
)
def test_content_encodings_are_undone(body: bytes, encoding: str | None) -> None:
    decoded = decode_body(body, headers(encoding=encoding))
    assert (decoded.kind, decoded.value, decoded.decode_error) == ("json", VALUE, None)
    assert decoded.size == len(DOC)


@pytest.mark.parametrize(
    ("body", "encoding", "error"),
    [
        (gzip.compress(DOC)[:-12], "gzip", "truncated compressed stream"),
        (b"not gzip at all", "gzip", "invalid gzip stream"),
        (brotli.compress(DOC)[:-4], "br", "truncated compressed stream"),
        (b"not brotli at all", "br", "invalid br stream"),
        (DOC, "zstd", "unsupported content-encoding 'zstd'"),
        (gzip.compress(b"0" * 5000), "gzip", "decoded body exceeds 1000 bytes"),
        (brotli.compress(b"0" * 5000), "br", "decoded body exceeds 1000 bytes"),
        (zlib.compress(b"0" * 5000), "deflate", "decoded body exceeds 1000 bytes"),
    ],
)
def test_bad_or_oversized_streams_become_binary_with_a_reason(body: bytes, encoding: str, error: str) -> None:
    decoded = decode_body(body, headers(encoding=encoding), max_decoded=1000)
    assert decoded.kind == "binary"
    assert decoded.value == hashlib.sha256(body).hexdigest()
    assert decoded.decode_error is not None and decoded.decode_error.startswith(error)


@pytest.mark.parametrize(
    ("body", "content_type", "kind", "value", "has_error"),
    [
        (DOC, "application/json", "json", VALUE, False),
        (DOC, "application/problem+json", "json", VALUE, False),
        (DOC, "application/vnd.api+json; charset=utf-8", "json", VALUE, False),
        (b"  \n[1, 2]", None, "json", [1, 2], False),  # sniffed: starts with [ after whitespace
        (DOC, "text/plain", "json", VALUE, False),  # sniffed under a vague type
        (b"[1, 2", "text/plain", "text", "[1, 2", False),  # looked like JSON, is text, nothing was promised
        (b"{oops", "application/json", "text", "{oops", True),  # promised JSON, is not: text with the reason
        (b"[NaN]", "application/json", "text", "[NaN]", True),  # NaN is not JSON
        (b"<h1>Bad gateway</h1>", "text/html", "text", "<h1>Bad gateway</h1>", False),
        (b"caf\xe9", "text/plain; charset=latin-1", "text", "café", False),
        ("café".encode(), None, "text", "café", False),  # no type, valid UTF-8: text
        (b"a=1&a=2&b=", "application/x-www-form-urlencoded", "form", {"a": ["1", "2"], "b": [""]}, False),
        (b"", "application/json", "empty", None, False),
        (b"", None, "empty", None, False),
    ],
)
def test_content_types(body: bytes, content_type: str | None, kind: str, value: Any, has_error: bool) -> None:
    decoded = decode_body(body, headers(content_type))
    assert (decoded.kind, decoded.value, decoded.decode_error is not None) == (kind, value, has_error)


@pytest.mark.parametrize(
    ("body", "content_type", "has_error"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "image/png", False),
        (b"\xff\xfe\xfd", None, False),  # invalid UTF-8 and no type: binary
        (b"\xff\xfe\xfd", "text/plain", True),  # promised text in UTF-8, is not
        (b'{"a": "\xff"}', "application/json", True),  # promised JSON, not even UTF-8
    ],
)
def test_binary_is_compared_by_sha256(body: bytes, content_type: str | None, has_error: bool) -> None:
    decoded = decode_body(body, headers(content_type))
    assert decoded.kind == "binary"
    assert decoded.value == hashlib.sha256(body).hexdigest()
    assert (decoded.decode_error is not None) == has_error


def test_integers_past_64_bits_keep_their_precision() -> None:
    # orjson would turn these into (equal) floats; the fallback keeps two different ids different.
    a = decode_body(b'{"id": 184467440737095516150}', headers())
    b = decode_body(b'{"id": 184467440737095516151}', headers())
    assert a.value == {"id": 184467440737095516150}
    assert a.value != b.value


def test_deep_nesting_is_text_not_a_crash() -> None:
    decoded = decode_body(b"[" * 100_000 + b"]" * 100_000, headers())
    assert decoded.kind == "text"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Application/JSON; Charset=UTF-8", ("application/json", {"charset": "utf-8"})),
        ('text/html; charset="latin-1"', ("text/html", {"charset": "latin-1"})),
        ("", ("", {})),
        (None, ("", {})),
    ],
)
def test_parse_media_type(header: str | None, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_media_type(header) == expected


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from([None, "application/json", "text/plain", "application/x-www-form-urlencoded", "x/y"]),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "gzip, br", "compress"]),
)
def test_never_raises_on_any_bytes(body: bytes, content_type: str | None, encoding: str | None) -> None:
    decoded = decode_body(body, headers(content_type, encoding))
    assert decoded.kind in ("json", "form", "text", "binary", "empty")
