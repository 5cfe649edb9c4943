"""Take secrets out of exchanges and field diffs before anything is stored: pure functions, no I/O.

What is redacted:
- header values of `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`, and of any header
  whose name matches a configured field (`x-auth-token` matches `token`);
- in JSON bodies, the value of every object key that matches a configured field, at any depth;
- in form bodies (`application/x-www-form-urlencoded`) and in `multipart/form-data` bodies, the value of every field
  whose name matches, by the same rule as JSON keys (a file part's content too, when its field name matches);
- query-string parameters whose name matches a configured field;
- in field diffs whose path ends in such a field or header, both values become `sha256:<12 hex>`, so a difference is
  still reported without the secret; other diff values are redacted like bodies.

A key matches a field when its words end with the field's words, ignoring case and `_`/`-`/camelCase boundaries:
`password` matches `Password`, `user_password` and `newPassword`; `card_number` matches `cardNumber`; `token`
matches `access_token` but not `max_tokens` or `token_count`.

A multipart body whose parts cannot be told apart (no boundary) but that holds a field name that matches is replaced
whole by a marker. Not redacted: other bodies (text, compressed bytes) are stored as they came, with only their
headers redacted. The hash of a short secret can be brute-forced; it identifies a value, it does not hide a weak one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import orjson

from diffs.exchange import Comparison, Exchange, FieldDiff, Headers, SentRequest, SideResponse

REDACTED = "[REDACTED]"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
DEFAULT_FIELDS = ("password", "card_number", "token", "secret", "api_key")

_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[a-z0-9]+")
_INDEX_SUFFIX = re.compile(r"(\[(\*|\d+)\])+$")
# The last key of a path template when quoted: `["a.b"]` (diffs.paths), or deepdiff's `['a.b']`.
_QUOTED_LAST = re.compile(r"""\[("(?:[^"\\]|\\.)*"|'[^']*')\]$""")
_BOUNDARY = re.compile(r'(?:^|;)\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_PART_NAME = re.compile(rb'(?:^|;)\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', re.IGNORECASE)
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
UNSPLITTABLE_MULTIPART = b"[REDACTED: a multipart body without a boundary]"


@lru_cache(maxsize=8192)
def words(name: str) -> tuple[str, ...]:
    """`newPassword` -> ("new", "password"); `X-API-Key` -> ("x", "api", "key")."""
    spaced = _CAMEL.sub(r"\1_\2", _CAMEL_ACRONYM.sub(r"\1_\2", name))
    return tuple(_WORD.findall(spaced.lower()))


def _hash(value: Any) -> str:
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        data = repr(value).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Redactor:
    """Redacts one configured set of field names (and the secret headers) everywhere an exchange carries them."""

    fields: tuple[str, ...] = DEFAULT_FIELDS
    """Body and query field names, e.g. the settings' `redact_fields`."""
    headers: frozenset[str] = SECRET_HEADERS
    _field_words: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    _needle: re.Pattern[bytes] = field(init=False, repr=False, compare=False)
    _known: dict[str, bool] = field(init=False, repr=False, compare=False)
    """Answers of `is_secret_key` so far (and below, of the header and path checks): they repeat endlessly."""
    _known_headers: dict[str, bool] = field(init=False, repr=False, compare=False)
    _known_paths: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        split = tuple(dict.fromkeys(w for w in (words(f) for f in self.fields) if w))
        # A key that can match contains its words joined one of these ways; bodies holding none stay unparsed.
        # "\\u": a JSON escape could spell a key without its plain bytes, so such bodies are always parsed.
        needles = {sep.join(w).encode() for w in split for sep in ("_", "-", "")} | {b"\\u"}
        object.__setattr__(self, "_field_words", split)
        object.__setattr__(self, "headers", frozenset(h.lower() for h in self.headers))
        object.__setattr__(self, "_needle", re.compile(b"|".join(map(re.escape, sorted(needles)))))
        object.__setattr__(self, "_known", {})
        object.__setattr__(self, "_known_headers", {})
        object.__setattr__(self, "_known_paths", {})

    def is_secret_key(self, key: str) -> bool:
        """Whether a JSON key or query parameter named `key` holds a secret."""
        known = self._known.get(key)
        if known is None:
            key_words = words(key)
            joined = "".join(key_words)
            known = any(key_words[-len(f) :] == f or joined == "".join(f) for f in self._field_words)
            self._remember(key, known)
        return known

    def is_secret_header(self, name: str) -> bool:
        known = self._known_headers.get(name)
        if known is None:
            known = name.lower() in self.headers or self.is_secret_key(name)
            self._remember(name, known, self._known_headers)
        return known

    def _remember(self, key: str, answer: bool, known: dict[str, bool] | None = None) -> None:
        known = self._known if known is None else known
        if len(known) < 65_536:  # bounded: keys come from clients
            known[key] = answer

    def redact_headers(self, headers: Headers) -> Headers:
        """Secret header values become "[REDACTED]"; names and order stay."""
        redacted: list[tuple[str, str]] | None = None
        for i, (name, _) in enumerate(headers):
            if self.is_secret_header(name):
                redacted = redacted if redacted is not None else list(headers)
                redacted[i] = (name, REDACTED)
        return headers if redacted is None else tuple(redacted)

    def redact_value(self, value: Any) -> Any:
        """A JSON value with every secret key's value replaced, at any depth (the same object when none is)."""
        if isinstance(value, dict):
            changed: dict[Any, Any] | None = None
            for k, v in value.items():
                new = REDACTED if isinstance(k, str) and self.is_secret_key(k) else self.redact_value(v)
                if new is not v:
                    changed = changed if changed is not None else dict(value)
                    changed[k] = new
            return value if changed is None else changed
        if isinstance(value, list | tuple):
            items = [self.redact_value(v) for v in value]
            return value if all(new is old for new, old in zip(items, value, strict=True)) else items
        return value

    def redact_body(self, body: bytes, content_type: str | None = None) -> bytes:
        """A JSON, form or multipart body with secrets redacted; other bodies unchanged (documented above).

        `content_type` (the Content-Type header) tells a form or multipart body; anything else is tried as JSON.
        """
        if not body:
            return body
        media = (content_type or "").partition(";")[0].strip().lower()
        if media == FORM:
            return self._redact_form(body)
        if media == MULTIPART:
            return self._redact_multipart(body, content_type or "")
        if not self._might_hold_secret(body):
            return body
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            try:
                # orjson refuses some valid JSON (integers beyond 64 bits); the standard library does not.
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return body
        redacted = self.redact_value(parsed)
        return body if redacted is parsed else orjson.dumps(redacted, default=str)

    def _redact_form(self, body: bytes) -> bytes:
        # A field name may be percent-encoded ("pass%77ord"): only a body with neither a needle nor a "%" is skipped.
        if b"%" not in body and not self._might_hold_secret(body):
            return body
        text = body.decode("latin-1")  # byte for byte: what is not redacted is stored exactly as it came
        redacted = self.redact_query(text)
        return body if redacted is text else redacted.encode("latin-1")

    def _redact_multipart(self, body: bytes, content_type: str) -> bytes:
        if b"%" not in body and b"=?" not in body and not self._might_hold_secret(body):
            return body
        match = _BOUNDARY.search(content_type)
        if match is None:
            return UNSPLITTABLE_MULTIPART
        delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
        pieces = body.split(delimiter)
        changed = False
        for i in range(1, len(pieces)):  # pieces[0] is the preamble; a piece starting "--" follows the last part
            if not pieces[i].startswith(b"--"):
                redacted = self._redact_part(pieces[i])
                changed = changed or redacted is not pieces[i]
                pieces[i] = redacted
        return delimiter.join(pieces) if changed else body

    def _redact_part(self, piece: bytes) -> bytes:
        """One part (CRLF, headers, blank line, content, CRLF) with its content redacted when its name matches."""
        end, blank = piece.find(b"\r\n\r\n"), 4
        if end < 0:
            end, blank = piece.find(b"\n\n"), 2
        if end < 0:
            return piece  # cut inside the headers (a capped body): no content to hide
        head = piece[:end]
        disposition = next(
            (line.partition(b":")[2] for line in head.splitlines() if line.lower().startswith(b"content-disposition")),
            None,
        )
        found = _PART_NAME.search(disposition) if disposition is not None else None
        if found is None:
            return piece
        name = (found.group(1) or found.group(2) or b"").decode("utf-8", "replace")
        if not self.is_secret_key(unquote_plus(name)):
            return piece
        tail = b"\r\n" if piece.endswith(b"\r\n") else b"\n" if piece.endswith(b"\n") else b""
        return piece[: end + blank] + REDACTED.encode() + tail

    def redact_query(self, query: str) -> str:
        """`a=1&password=x` -> `a=1&password=[REDACTED]`; other parameters byte for byte."""
        if not query:
            return query
        parts = query.split("&")
        changed = False
        for i, part in enumerate(parts):
            name, sep, _ = part.partition("=")
            if sep and self.is_secret_key(unquote_plus(name)):
                parts[i] = f"{name}={REDACTED}"
                changed = True
        return "&".join(parts) if changed else query

    def is_secret_path(self, path: str) -> bool:
        """Whether a diff path ("root.user.password", "header.cookie") ends in a secret field or header."""
        known = self._known_paths.get(path)
        if known is None:
            known = self._secret_path(path)
            self._remember(path, known, self._known_paths)
        return known

    def _secret_path(self, path: str) -> bool:
        last = _INDEX_SUFFIX.sub("", path.strip())
        quoted = _QUOTED_LAST.search(last)
        if quoted:
            token = quoted.group(1)
            name = json.loads(token) if token.startswith('"') else token[1:-1]
        else:
            name = last.rsplit(".", 1)[-1]
        if path.startswith("header.") or path.startswith("headers."):
            return self.is_secret_header(name)
        return bool(name) and self.is_secret_key(name)

    def redact_diff(self, diff: FieldDiff) -> FieldDiff:
        """Hash both values of a secret path; redact secrets nested in any other diff's values."""
        if self.is_secret_path(diff.path):
            primary = None if diff.primary_value is None else _hash(diff.primary_value)
            shadow = None if diff.shadow_value is None else _hash(diff.shadow_value)
        else:
            primary = self.redact_value(diff.primary_value)
            shadow = self.redact_value(diff.shadow_value)
        if primary is diff.primary_value and shadow is diff.shadow_value:
            return diff
        return replace(diff, primary_value=primary, shadow_value=shadow)

    # The writer redacts every exchange on the event loop: build new values only where something changed.

    def redact_side(self, side: SideResponse) -> SideResponse:
        headers, body = self.redact_headers(side.headers), self.redact_body(side.body, _content_type(side.headers))
        sent = None if side.sent is None else self.redact_sent(side.sent)
        if headers is side.headers and body is side.body and sent is side.sent:
            return side
        return replace(side, headers=headers, body=body, sent=sent)

    def redact_sent(self, sent: SentRequest) -> SentRequest:
        """The request a side was sent: secret headers, query parameters and body fields redacted."""
        path, mark, query = sent.target.partition("?")
        redacted_query = self.redact_query(query)
        headers = self.redact_headers(sent.headers)
        body = None if sent.body is None else self.redact_body(sent.body, _content_type(sent.headers))
        if redacted_query is query and headers is sent.headers and body is sent.body:
            return sent
        return SentRequest(path + mark + redacted_query, headers, body)

    def redact_exchange(self, exchange: Exchange) -> Exchange:
        request = exchange.request
        headers = self.redact_headers(request.headers)
        body = self.redact_body(request.body, _content_type(request.headers))
        query = self.redact_query(request.query)
        if headers is not request.headers or body is not request.body or query is not request.query:
            request = replace(request, headers=headers, body=body, query=query)
        primary = self.redact_side(exchange.primary)
        shadow = None if exchange.shadow is None else self.redact_side(exchange.shadow)
        secondary = None if exchange.secondary is None else self.redact_side(exchange.secondary)
        unchanged = (
            request is exchange.request
            and primary is exchange.primary
            and shadow is exchange.shadow
            and secondary is exchange.secondary
        )
        if unchanged:
            return exchange
        return replace(exchange, request=request, primary=primary, shadow=shadow, secondary=secondary)

    def redact_comparison(self, comparison: Comparison) -> Comparison:
        """The comparison with its exchange and field diffs redacted."""
        exchange = self.redact_exchange(comparison.exchange)
        return self._with(comparison, exchange)

    def redact_summary(self, comparison: Comparison) -> Comparison:
        """Only what a summary row and its field diffs carry redacted: the query string and the diff values.

        Headers and bodies are left as they came, so the caller must not store them (the store writes no payload for
        an exchange whose bodies retention does not keep).
        """
        exchange = comparison.exchange
        request = exchange.request
        query = self.redact_query(request.query)
        if query is not request.query:
            exchange = replace(exchange, request=replace(request, query=query))
        return self._with(comparison, exchange)

    def _with(self, comparison: Comparison, exchange: Exchange) -> Comparison:
        """The comparison with this (redacted) exchange and its field diffs redacted."""
        if not comparison.diffs:
            return comparison if exchange is comparison.exchange else replace(comparison, exchange=exchange)
        diffs = tuple(self.redact_diff(d) for d in comparison.diffs)
        if exchange is comparison.exchange and all(
            new is old for new, old in zip(diffs, comparison.diffs, strict=True)
        ):
            return comparison
        return replace(comparison, exchange=exchange, diffs=diffs)

    def _might_hold_secret(self, body: bytes) -> bool:
        # Lower-casing first and then one case-sensitive scan is ~10x faster than an IGNORECASE alternation.
        return self._needle.search(body.lower()) is not None


def _content_type(headers: Headers) -> str | None:
    return next((value for name, value in headers if name.lower() == "content-type"), None)
