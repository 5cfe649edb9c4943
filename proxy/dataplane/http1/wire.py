"""What the proxy may write into a request line or header: h11's grammar, checked where a value is not the client's.

Values that came verbatim from the client's request were already validated by the server's parser. Anything the
proxy composes itself (an id rewritten into a path, a template value, a header it adds) is checked here before it
reaches a socket: a value h11 would refuse to send is never sent. `request_head` builds every request head the
client writes and refuses, with `UnsafeRequest`, one where a CR, LF or NUL would split a line, whatever part of the
head it came from. `safe_target`, `safe_field_value`, `safe_field_name` and `encode_target` let code that rewrites a
request (id correlation) check a value before it builds anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

# RFC 9112 grammar as h11 applies it (h11/_abnf.py): request-target = 1*VCHAR, field-name = token, field-value =
# field-vchar runs separated by SP/HTAB, where field-vchar is anything but NUL and whitespace (h11 tolerates other
# control characters, which real cookies contain).
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+").fullmatch
_FIELD_VALUE = re.compile(r"(?:[^\x00\t\n\v\f\r ]+(?:[ \t]+[^\x00\t\n\v\f\r ]+)*)?").fullmatch
_LATIN_1 = re.compile(r"[\x00-\xff]*").fullmatch
# Printable text outside ASCII is sent percent-encoded as UTF-8 (how a browser sends it); controls and spaces never.
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]").search
_TARGET_SAFE = "/?#&=%:@!$'()*+,;~-._[]"


class UnsafeRequest(ValueError):
    """A request line or header the proxy would write is not valid HTTP/1.1 (e.g. a CR/LF from a rewritten id)."""


def safe_target(target: str) -> bool:
    """True when `target` can go into a request line as it is (1*VCHAR, as h11 requires)."""
    # Three C calls instead of a regex (this runs for every upstream request): ASCII, no control characters or DEL
    # (not printable), no space.
    return target.isascii() and target.isprintable() and bool(target) and " " not in target


def safe_field_name(name: str) -> bool:
    return _TOKEN(name) is not None


def safe_field_value(value: str) -> bool:
    """True when `value` is a field value h11 would send: no NUL, CR, LF, no surrounding whitespace, latin-1."""
    return _FIELD_VALUE(value) is not None and _LATIN_1(value) is not None


def encode_target(target: str) -> str:
    """`target` ready for a request line: non-ASCII text percent-encoded as UTF-8; UnsafeRequest on controls/spaces."""
    if safe_target(target):
        return target
    if not target or _CONTROL_OR_SPACE(target) is not None:
        raise UnsafeRequest(f"request target {target[:80]!r} holds a control character or a space")
    return quote(target, safe=_TARGET_SAFE)


def request_head(
    method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | object | None
) -> tuple[bytes, bool]:
    """A request head, and whether its body goes chunked.

    `body`: bytes (framed with Content-Length unless the headers have one), None (no body), or anything else (a
    stream: chunked unless the headers have a Content-Length). UnsafeRequest when a CR, LF or NUL would split a
    line, wherever it came from, or the target is not valid.
    """
    lines = [f"{method} {encode_target(target)} HTTP/1.1\r\n"]
    has_length = False
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
        if len(name) == 14 and not has_length and name.lower() == "content-length":
            has_length = True
    chunked = False
    if isinstance(body, bytes):
        if not has_length:
            lines.append(f"content-length: {len(body)}\r\n")
    elif body is not None and not has_length:
        chunked = True
        lines.append("transfer-encoding: chunked\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # C-speed scans: a CR, LF or NUL inside any name or value shows up as one line end too many.
    count = len(lines)
    if text.count("\n") != count or text.count("\r") != count or "\x00" in text:
        raise UnsafeRequest(f"a header for {method} {target[:80]!r} holds CR, LF or NUL")
    try:
        return text.encode("latin-1"), chunked
    except UnicodeEncodeError:
        raise UnsafeRequest(f"a header for {method} {target[:80]!r} is not latin-1 text") from None
