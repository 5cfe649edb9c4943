"""Header hygiene: what is forwarded to each upstream and what goes back to the client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from diffs.exchange import Headers

RawHeaders = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1 hop-by-hop fields, plus every Proxy-* field (checked by prefix) and whatever Connection names.
HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"http2-settings")
)
SHADOW_MARKER = "x-shadow-request"
REQUEST_ID = "x-request-id"
REDACTED = "[redacted]"
# Secrets never leave the proxy inside an exchange (DESIGN rule 4); their presence is still visible.
SECRET_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie", "set-cookie"))
# Rebuilt by the proxy for each upstream rather than copied.
_REBUILT = frozenset((b"host", b"content-length", b"x-forwarded-for", b"x-request-id", b"x-shadow-request"))


def _connection_tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def _is_hop(name: bytes, named: set[bytes] | None) -> bool:
    return name in HOP_BY_HOP or name.startswith(b"proxy-") or (named is not None and name in named)


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Inbound:
    """The client's request headers, read once and sorted into what each upstream needs."""

    forward: list[tuple[str, str]]
    """End-to-end headers forwarded unchanged to every side, with the X-Forwarded-* set appended."""
    recorded: Headers
    """What the client sent (lower-cased names, secrets redacted), for the exchange."""
    host: str | None
    request_id: str
    request_id_given: bool
    marked: bool
    """The request already carries X-Shadow-Request: it came from a shadow, so it is never mirrored again."""
    content_type: str
    content_length: int | None
    sample_key: str | None


def read_inbound(
    raw: RawHeaders,
    *,
    client_host: str | None,
    scheme: str,
    sample_key_header: bytes | None = None,
) -> Inbound:
    """Sort the client's headers (ASGI: lower-case bytes names) in one pass."""
    forward: list[tuple[str, str]] = []
    recorded: list[tuple[str, str]] = []
    host = xff = request_id = content_type = sample_key = None
    content_length: int | None = None
    marked = has_proto = has_fwd_host = False
    named: set[bytes] | None = None
    for name, value in raw:
        text = value.decode("latin-1")
        key = name.decode("latin-1")
        recorded.append((key, REDACTED if key in SECRET_HEADERS else text))
        if name == b"connection":
            tokens = _connection_tokens(value) - {b"close", b"keep-alive"}
            named = tokens if named is None else named | tokens
        if name in _REBUILT:
            if name == b"host":
                host = text
            elif name == b"content-length":
                content_length = int(text) if text.isdigit() else None
            elif name == b"x-forwarded-for":
                xff = text if xff is None else f"{xff}, {text}"
            elif name == b"x-request-id":
                request_id = text
            else:
                marked = True
            continue
        if _is_hop(name, None):
            continue
        if name == b"content-type":
            content_type = text
        elif name == b"x-forwarded-proto":
            has_proto = True
        elif name == b"x-forwarded-host":
            has_fwd_host = True
        if sample_key_header is not None and name == sample_key_header:
            sample_key = text
        forward.append((key, text))
    if named:
        forward = [(k, v) for k, v in forward if k.encode("latin-1") not in named]
    if client_host is not None:
        forward.append(("x-forwarded-for", client_host if xff is None else f"{xff}, {client_host}"))
    elif xff is not None:
        forward.append(("x-forwarded-for", xff))
    # An outer proxy's X-Forwarded-Proto/-Host describe the original request better than we can: keep them.
    if not has_proto:
        forward.append(("x-forwarded-proto", scheme))
    if not has_fwd_host and host is not None:
        forward.append(("x-forwarded-host", host))
    given = bool(request_id)
    rid = request_id if request_id else new_request_id()
    forward.append(("x-request-id", rid))
    return Inbound(
        forward=forward,
        recorded=tuple(recorded),
        host=host,
        request_id=rid,
        request_id_given=given,
        marked=marked,
        content_type=content_type or "",
        content_length=content_length,
        sample_key=sample_key,
    )


def upstream_headers(inbound: Inbound, *, host: str | None, shadow: bool) -> list[tuple[str, str]]:
    """The headers for one upstream: `host` None lets the client library set it from the upstream URL."""
    headers = inbound.forward.copy()
    if host is not None:
        headers.append(("host", host))
    if shadow:
        headers.append((SHADOW_MARKER, "1"))
    return headers


def client_headers(raw: tuple[tuple[bytes, bytes], ...], request_id: str, body_length: int | None = None) -> RawHeaders:
    """An upstream's response headers as the client gets them: hop-by-hop removed, X-Request-ID ensured.

    With `body_length` (a buffered body), Content-Length is added when the upstream sent none (it was chunked).
    """
    named: set[bytes] | None = None
    for name, value in raw:
        if name.lower() == b"connection":
            tokens = _connection_tokens(value)
            named = tokens if named is None else named | tokens
    out: RawHeaders = []
    has_id = has_length = False
    for name, value in raw:
        lower = name.lower()
        if _is_hop(lower, named):
            continue
        if lower == b"x-request-id":
            has_id = True
        elif lower == b"content-length":
            has_length = True
        out.append((lower, value))
    if not has_id:
        out.append((b"x-request-id", request_id.encode("latin-1")))
    if body_length is not None and not has_length:
        out.append((b"content-length", str(body_length).encode("latin-1")))
    return out


def recorded_headers(raw: RawHeaders | tuple[tuple[bytes, bytes], ...]) -> Headers:
    """Headers for the exchange: lower-cased names, latin-1 text, secrets redacted."""
    out = []
    for name, value in raw:
        key = name.decode("latin-1").lower()
        out.append((key, REDACTED if key in SECRET_HEADERS else value.decode("latin-1")))
    return tuple(out)
