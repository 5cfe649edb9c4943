"""Endpoint templates: `GET /api/orders/42` → `GET /api/orders/{id}`, so every count has a bounded label.

Configured patterns (`/api/orders/{order_id}/items/{item_id}`) win; otherwise a segment is templated only when it
cannot be a word: an integer `{id}`, a UUID `{uuid}`, a ULID `{ulid}`, 16+ hex digits `{hex}`, or a prefixed token
such as `ORD-5F3A9C1B` or `cus_Nffrfe8sF3aQ2x` `{token}`. Words (`products`, `sku`, `settings2024`) and short codes
(`SKU-0001`) stay literal: a person names those with a pattern, e.g. `/api/products/sku/{sku}`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_INT = re.compile(r"\d+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_HEX = re.compile(r"[0-9a-fA-F]{16,}")
# A short alphabetic prefix, a separator, then 8+ characters that look generated (see _generated).
_TOKEN = re.compile(r"([A-Za-z]{1,12}[-_])+([0-9A-Za-z]{8,})")
_PLACEHOLDER = re.compile(r"\{[^{}/]+\}")


def _generated(tail: str) -> bool:
    """Hex with digits (ORD-5F3A9C1B), or mixed-case letters with digits (Stripe-style ids); not `settings2024`."""
    digits = sum(c.isdigit() for c in tail)
    if digits < 2:
        return False
    if all(c in "0123456789abcdefABCDEF" for c in tail):
        return True
    return any(c.islower() for c in tail) and any(c.isupper() for c in tail)


def segment_placeholder(segment: str) -> str | None:
    """The placeholder for an id-like path segment, or None when the segment stays literal."""
    if not segment:
        return None
    if _INT.fullmatch(segment):
        return "{id}"
    if _UUID.fullmatch(segment):
        return "{uuid}"
    if _ULID.fullmatch(segment):
        return "{ulid}"
    if _HEX.fullmatch(segment) and any(c.isdigit() for c in segment):
        return "{hex}"
    token = _TOKEN.fullmatch(segment)
    if token and _generated(token.group(2)):
        return "{token}"
    return None


class _Pattern:
    __slots__ = ("literals", "method", "segments", "text")

    def __init__(self, text: str) -> None:
        method, _, path = text.strip().rpartition(" ")
        self.method = method.strip().upper() or None
        self.segments = tuple(path.strip("/").split("/")) if path.strip("/") else ()
        self.literals = tuple(None if _PLACEHOLDER.fullmatch(s) else s for s in self.segments)
        self.text = "/" + "/".join(self.segments)

    def matches(self, method: str, segments: Sequence[str]) -> bool:
        if self.method is not None and self.method != method:
            return False
        return all(lit is None or lit == seg for lit, seg in zip(self.literals, segments, strict=True))


class EndpointTemplater:
    """Maps (method, raw path) to an endpoint template; results are cached (LRU) since it runs per exchange."""

    def __init__(self, patterns: Sequence[str] = (), *, cache_size: int = 4096) -> None:
        by_length: dict[int, list[_Pattern]] = {}
        for text in patterns:
            pattern = _Pattern(text)
            by_length.setdefault(len(pattern.segments), []).append(pattern)
        # More literal segments first: /api/products/sku/{sku} beats /api/products/{id}/{action}.
        self._patterns = {
            n: sorted(ps, key=lambda p: -sum(lit is not None for lit in p.literals)) for n, ps in by_length.items()
        }
        self._cached = lru_cache(maxsize=cache_size)(self._template)

    def template(self, method: str, path: str) -> str:
        """`("get", "/api/orders/42")` → `"GET /api/orders/{id}"`."""
        return self._cached(method, path)

    def _template(self, method: str, path: str) -> str:
        method = method.upper()
        path = path.split("?", 1)[0].split("#", 1)[0] or "/"
        stripped = path.strip("/")
        segments = stripped.split("/") if stripped else []
        for pattern in self._patterns.get(len(segments), ()):
            if pattern.matches(method, segments):
                return f"{method} {pattern.text}"
        templated = [segment_placeholder(s) or s for s in segments]
        trailing = "/" if path.endswith("/") and segments else ""
        return f"{method} /{'/'.join(templated)}{trailing}"
