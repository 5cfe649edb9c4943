"""Reading other tools' recordings: HAR 1.2 (browsers, Playwright, mitmproxy) and GoReplay's `.gor` files.

Both readers are pure: bytes in, `Recorded` requests (or `Bad` entries, with their position) out. A truncated file
yields every entry before the cut, then one `Bad` saying where it ends.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlencode, urlsplit

from proxy.replay.requests import Bad, Recorded

GOR_SEPARATOR = "\n🐵🙈🙉\n".encode()
"""Between two GoReplay payloads; each payload is a header line (`1 <id> <start ns> <latency>`) and raw HTTP."""
GOR_REQUEST = b"1"
_GOR_HEADER = re.compile(rb"[123] [0-9A-Za-z\-]+ \d+")
_ENTRIES = re.compile(r'"entries"\s*:\s*\[')


class FormatError(ValueError):
    """The whole file is unusable (not what its content first looked like)."""


# ---------------------------------------------------------------- HAR


def har_entries(text: str, notes: Counter[str]) -> Iterator[Recorded | Bad]:
    """The requests of a HAR file in `startedDateTime` order, from the origin most of them went to."""
    raw, cut = _har_raw_entries(text)
    items: list[tuple[int, dict[str, object]]] = []
    for number, entry in enumerate(raw, 1):
        if isinstance(entry, dict) and isinstance(entry.get("request"), dict):
            items.append((number, entry))
        else:
            items.append((number, {}))
    origins = Counter(_origin(entry) for _, entry in items if entry)
    main = origins.most_common(1)[0][0] if origins else None
    recorded: list[tuple[float, int, Recorded | Bad]] = []
    for number, entry in items:
        where = f"entry {number}"
        if not entry:
            recorded.append((0.0, number, Bad(where, "has no request object")))
            continue
        origin = _origin(entry)
        if origin != main:
            notes[f"entries to other origins than {main} (not replayed)"] += 1
            continue
        item = _har_request(where, entry)
        at = item.at if isinstance(item, Recorded) and item.at is not None else 0.0
        recorded.append((at, number, item))
    recorded.sort(key=lambda t: (t[0], t[1]))  # HAR does not promise order; ties keep the file's
    for _, _, item in recorded:
        yield item
    if cut is not None:
        yield cut


def _har_raw_entries(text: str) -> tuple[list[object], Bad | None]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return _salvage(text, exc)
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise FormatError("not a HAR file: it has no log.entries list")
    return entries, None


def _salvage(text: str, error: json.JSONDecodeError) -> tuple[list[object], Bad | None]:
    """A truncated HAR: the entries that are whole, then where the file breaks off."""
    start = _ENTRIES.search(text)
    if start is None:
        raise FormatError(f"not valid JSON (line {error.lineno} column {error.colno}: {error.msg})") from None
    decoder = json.JSONDecoder()
    entries: list[object] = []
    position = start.end()
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            break
        try:
            entry, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            where = f"entry {len(entries) + 1}"
            return entries, Bad(where, f"the file ends inside it (line {exc.lineno} column {exc.colno}): truncated?")
        entries.append(entry)
    line = text.count("\n", 0, error.pos) + 1
    return entries, Bad(f"after entry {len(entries)}", f"the HAR is not valid JSON past line {line}: {error.msg}")


def _origin(entry: dict[str, object]) -> str:
    request = entry.get("request")
    url = request.get("url") if isinstance(request, dict) else None
    if not isinstance(url, str):
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _har_request(where: str, entry: dict[str, object]) -> Recorded | Bad:
    request = entry["request"]
    assert isinstance(request, dict)
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        return Bad(where, "has no request method or url")
    if not url.lower().startswith(("http://", "https://")):
        return Bad(where, f"url {url[:60]!r} is not http(s)")
    headers: list[tuple[str, str]] = []
    authority = None
    for header in request.get("headers") or []:
        if not isinstance(header, dict) or not isinstance(header.get("name"), str):
            return Bad(where, "has a header without a name")
        name, value = header["name"], str(header.get("value", ""))
        if name.startswith(":"):  # HTTP/2 pseudo-headers: only the authority means anything in HTTP/1.1
            authority = value if name == ":authority" else authority
            continue
        headers.append((name, value))
    if authority and not any(name.lower() == "host" for name, _ in headers):
        headers.append(("host", authority))
    body = _har_body(request)
    if isinstance(body, str):
        return Bad(where, body)
    at = None
    started = entry.get("startedDateTime")
    if isinstance(started, str):
        try:
            at = datetime.fromisoformat(started).timestamp()
        except ValueError:
            at = None
    return Recorded(where, method, url, tuple(headers), body, at)


def _har_body(request: dict[str, object]) -> bytes | str:
    """The body, or why it is missing."""
    post = request.get("postData")
    size = request.get("bodySize")
    if not isinstance(post, dict):
        if isinstance(size, int) and size > 0:
            return f"its body ({size} bytes) is not in the HAR"
        return b""
    text = post.get("text")
    if isinstance(text, str):
        if post.get("encoding") == "base64":
            try:
                return base64.b64decode(text, validate=True)
            except binascii.Error:
                return "its base64 body is not valid base64"
        return text.encode("utf-8")
    params = post.get("params")
    if isinstance(params, list):
        pairs = [(str(p.get("name", "")), str(p.get("value", ""))) for p in params if isinstance(p, dict)]
        return urlencode(pairs).encode("ascii")
    return b""


# ---------------------------------------------------------------- GoReplay


def looks_like_gor(head: bytes) -> bool:
    return _GOR_HEADER.match(head) is not None


def gor_records(chunks: Iterator[bytes], notes: Counter[str]) -> Iterator[Recorded | Bad]:
    """Requests from a GoReplay file's payloads (responses, types 2 and 3, are not replayed)."""
    buffer = b""
    offset = number = 0
    for chunk in chunks:
        buffer += chunk
        while True:
            end = buffer.find(GOR_SEPARATOR)
            if end < 0:
                break
            number += 1
            yield from _gor_payload(number, offset, buffer[:end], notes)
            offset += end + len(GOR_SEPARATOR)
            buffer = buffer[end + len(GOR_SEPARATOR) :]
    if buffer.strip():
        number += 1
        yield Bad(f"record {number} (byte {offset})", "the file ends before its separator: truncated?")


def _gor_payload(number: int, offset: int, payload: bytes, notes: Counter[str]) -> Iterator[Recorded | Bad]:
    where = f"record {number} (byte {offset})"
    header, _, raw = payload.partition(b"\n")
    meta = header.split(b" ")
    if len(meta) < 3 or not meta[2].isdigit():
        yield Bad(where, f"malformed payload header {header[:60]!r}")
        return
    if meta[0] != GOR_REQUEST:
        notes["GoReplay response payloads (not replayed)"] += 1
        return
    parsed = parse_http_request(raw)
    if isinstance(parsed, str):
        yield Bad(where, parsed)
        return
    method, target, headers, body = parsed
    yield Recorded(where, method, target, headers, body, int(meta[2]) / 1e9)


def parse_http_request(raw: bytes) -> tuple[str, str, tuple[tuple[str, str], ...], bytes] | str:
    """A raw HTTP/1.x request as sent on the wire, or why it is not one."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    newline = b"\r\n"
    if not sep:
        head, sep, rest = raw.partition(b"\n\n")
        newline = b"\n"
        if not sep:
            return "no blank line ends the request head: truncated?"
    lines = head.split(newline)
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return f"request line {lines[0][:60]!r} is not 'METHOD target HTTP/1.x'"
    headers: list[tuple[str, str]] = []
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            return "has a folded header line (obsolete line folding is refused)"
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return f"header line {line[:60]!r} is not 'Name: value'"
        text_name, text_value = name.decode("latin-1"), value.strip().decode("latin-1")
        lower = text_name.lower()
        if lower == "content-length":
            if not text_value.isdigit() or (length is not None and int(text_value) != length):
                return f"Content-Length {text_value!r} is not one length"
            length = int(text_value)
        elif lower == "transfer-encoding":
            chunked = text_value.lower().endswith("chunked")
        headers.append((text_name, text_value))
    if chunked:
        body = _dechunk(rest)
        if isinstance(body, str):
            return body
    elif length is not None:
        if len(rest) < length:
            return f"its body is {len(rest)} of {length} bytes: truncated?"
        body = rest[:length]
    else:
        body = b""
    return parts[0].decode("latin-1"), parts[1].decode("latin-1"), tuple(headers), body


def _dechunk(data: bytes) -> bytes | str:
    out: list[bytes] = []
    position = 0
    while True:
        end = data.find(b"\r\n", position)
        if end < 0:
            return "its chunked body ends early: truncated?"
        size_text = data[position:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return f"chunk size {size_text[:20]!r} is not hexadecimal"
        if size == 0:
            return b"".join(out)
        start = end + 2
        if len(data) < start + size + 2:
            return "its chunked body ends early: truncated?"
        out.append(data[start : start + size])
        position = start + size + 2
