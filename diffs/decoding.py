"""Turn a response body into a comparable value: undo Content-Encoding, then parse JSON, form, text or hash binary.

Never raises: a body that cannot be decoded becomes text or binary with a `decode_error` saying why.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

import brotli
import orjson

from diffs.exchange import Headers

BodyKind = Literal["json", "form", "text", "binary", "empty"]
MAX_DECODED_BYTES = 32 * 1024 * 1024
"""A compressed body may not expand past this (a decompression bomb becomes binary with an error)."""

_JSON_START = frozenset(b"{[")
_WHITESPACE = b" \t\r\n"
# 19 digits in a row may be an integer past 64 bits; translate+find is ~6x faster than a regex search for them.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


@dataclass(frozen=True, slots=True)
class DecodedBody:
    kind: BodyKind
    value: Any
    """Parsed JSON; `dict[str, list[str]]` for a form; `str` for text; binary: its sha256 hex digest; empty: None."""
    media_type: str = ""
    """Lower-cased media type without parameters, e.g. "application/json"; "" when absent."""
    decode_error: str | None = None
    size: int = 0
    """Bytes after Content-Encoding was undone."""


class _DecodeError(Exception):
    pass


def header_value(headers: Headers, name: str) -> str | None:
    """All values of one (lower-case) header joined by ", ", or None when absent."""
    values = [v for k, v in headers if k == name]
    return ", ".join(values) if values else None


def parse_media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """`"Application/JSON; charset=UTF-8"` → `("application/json", {"charset": "utf-8"})`."""
    if not content_type:
        return "", {}
    media, *params = content_type.split(";")
    parsed = {}
    for param in params:
        key, sep, value = param.partition("=")
        if sep:
            parsed[key.strip().lower()] = value.strip().strip('"').lower()
    return media.strip().lower(), parsed


def is_json_media(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    out = bytearray()
    data = body
    while data:
        decompressor = zlib.decompressobj(wbits)
        out += decompressor.decompress(data, limit + 1 - len(out))
        if len(out) > limit or decompressor.unconsumed_tail:
            raise _DecodeError(f"decoded body exceeds {limit} bytes")
        if not decompressor.eof:
            raise _DecodeError("truncated compressed stream")
        # gzip allows several members back to back; anything after a zlib or raw stream is junk.
        data = decompressor.unused_data if wbits > zlib.MAX_WBITS else b""
    return bytes(out)


def _unbrotli(body: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    out = decompressor.process(body, output_buffer_limit=limit + 1)
    if len(out) > limit:
        raise _DecodeError(f"decoded body exceeds {limit} bytes")
    if not decompressor.is_finished():
        raise _DecodeError("truncated compressed stream")
    return bytes(out)


def _undo_encoding(body: bytes, encoding: str, limit: int) -> bytes:
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(body, 16 + zlib.MAX_WBITS, limit)
        if encoding == "deflate":
            # RFC 9110 says zlib-wrapped; some servers send raw deflate, so try both.
            try:
                return _inflate(body, zlib.MAX_WBITS, limit)
            except zlib.error:
                return _inflate(body, -zlib.MAX_WBITS, limit)
        if encoding == "br":
            return _unbrotli(body, limit)
    except (zlib.error, brotli.error) as exc:
        raise _DecodeError(f"invalid {encoding} stream: {exc}") from exc
    raise _DecodeError(f"unsupported content-encoding {encoding!r}")


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes) -> Any:
    """orjson; the standard library where orjson would lose precision (integers past 64 bits become floats there)."""
    if data.translate(_DIGITS_AS_ZERO).find(_LONG_DIGITS) < 0:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library accepts a few documents orjson refuses (e.g. lone surrogates)
    return json.loads(data, parse_constant=_strict_constant)


def _text(data: bytes, charset: str | None) -> str | None:
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _binary(data: bytes, media_type: str, error: str | None = None) -> DecodedBody:
    return DecodedBody("binary", hashlib.sha256(data).hexdigest(), media_type, error, len(data))


def decode_body(body: bytes, headers: Headers, *, max_decoded: int = MAX_DECODED_BYTES) -> DecodedBody:
    """Decode one response body by its Content-Encoding and Content-Type (sniffing JSON when the type is vague)."""
    media_type, params = parse_media_type(header_value(headers, "content-type"))
    data = body
    encodings = [e.strip().lower() for e in (header_value(headers, "content-encoding") or "").split(",")]
    try:
        for encoding in reversed([e for e in encodings if e and e != "identity"]):
            data = _undo_encoding(data, encoding, max_decoded)
    except _DecodeError as exc:
        return _binary(body, media_type, str(exc))
    if not data:
        return DecodedBody("empty", None, media_type)

    declared_json = is_json_media(media_type)
    if declared_json or (media_type != "application/x-www-form-urlencoded" and _looks_like_json(data)):
        try:
            return DecodedBody("json", parse_json(data), media_type, None, len(data))
        except (ValueError, RecursionError) as exc:
            error = f"invalid JSON: {exc}" if declared_json else None
            text = _text(data, params.get("charset"))
            if text is None:
                return _binary(data, media_type, error or "invalid UTF-8")
            return DecodedBody("text", text, media_type, error, len(data))

    text = _text(data, params.get("charset"))
    if text is None:
        return _binary(data, media_type, "invalid text encoding" if media_type.startswith("text/") else None)
    if media_type == "application/x-www-form-urlencoded":
        return DecodedBody("form", parse_qs(text, keep_blank_values=True), media_type, None, len(data))
    return DecodedBody("text", text, media_type, None, len(data))


def _looks_like_json(data: bytes) -> bool:
    start = data.lstrip(_WHITESPACE)[:1]
    return bool(start) and start[0] in _JSON_START
