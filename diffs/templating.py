"""Endpoint templates: `GET /api/orders/42` → `GET /api/orders/{id}`, so every count has a bounded label.

Three sources, in this order:

1. Configured patterns (`/api/orders/{order_id}/items/{item_id}`) win.
2. A segment that cannot be a word is an id, `{id}`: an integer, a UUID, a ULID, 16+ hex digits, a prefixed token
   (`ORD-5F3A9C1B`, `cus_Nffrfe8sF3aQ2x`), a code (`SKU-0048`), a random-looking token (`5rCadNROXW8`); with an
   extension it keeps it (`17.json` → `{id}.json`). Every automatic placeholder is `{id}`, so an endpoint keeps its
   name when the ids its clients use change shape (V1's integers before a promotion, V2's tokens after).
3. Learned from traffic (`TemplateLearner`): a position under a prefix where ids were seen (rule 2) is an id position,
   and any value there that is not a plain word is an id too (the random ids rule 2 cannot tell from words); a
   position that has seen `learn_after` distinct values, most of them not single words (slugs), holds a parameter
   whatever its values. What is learned is a fact (`LearnedTemplate`) that the caller persists and shares, so every
   process names a request the same way once the facts have reached it.

Words (`products`, `sku`, `v2`, `settings2024`, `page-2`) stay literal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

ID = "{id}"
OVERFLOW = "(other endpoints)"
"""The path of the endpoint counting a service's requests past its bound of distinct endpoints (`max_endpoints`)."""
_INT = re.compile(r"\d+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_HEX = re.compile(r"[0-9a-fA-F]{16,}")
# A short alphabetic prefix, a separator, then 8+ characters that look generated (see _generated).
_TOKEN = re.compile(r"([A-Za-z]{1,12}[-_])+([0-9A-Za-z]{8,})")
_CODE = re.compile(r"[A-Za-z]{1,12}[-_]\d{3,}")
_RANDOM = re.compile(r"[A-Za-z0-9_-]{10,64}")
_EXTENSION = re.compile(r"(.+)\.([A-Za-z][A-Za-z0-9]{0,5})")
_WORD = re.compile(r"[a-z]+(?:[-_][a-z]+)*\d{0,2}")
_SINGLE_WORD = re.compile(r"[a-z]+\d{0,2}")
_PLACEHOLDER = re.compile(r"\{[^{}/]+\}")


def _generated(tail: str) -> bool:
    """Hex with digits (ORD-5F3A9C1B), or mixed-case letters with digits (Stripe-style ids); not `settings2024`."""
    digits = sum(c.isdigit() for c in tail)
    if digits < 2:
        return False
    if all(c in "0123456789abcdefABCDEF" for c in tail):
        return True
    return any(c.islower() for c in tail) and any(c.isupper() for c in tail)


def _class(c: str) -> int:
    return 0 if c.islower() else 1 if c.isupper() else 2 if c.isdigit() else 3


def _random_looking(segment: str) -> bool:
    """Base62/64 ids (`5rCadNROXW8`, `1OD76YTDHYV`): letters and digits switching often, unlike words that end in a
    number (`settings2024`) or CamelCase (`HelloWorld2024`)."""
    if not _RANDOM.fullmatch(segment) or not any(c.isdigit() for c in segment):
        return False
    lower, upper = any(c.islower() for c in segment), any(c.isupper() for c in segment)
    if not (lower or upper):
        return False
    switches = sum(_class(a) != _class(b) for a, b in zip(segment, segment[1:], strict=False))
    return switches >= (5 if lower and upper else 3)


def _is_id(segment: str) -> bool:
    if _INT.fullmatch(segment) or _UUID.fullmatch(segment) or _ULID.fullmatch(segment):
        return True
    if _HEX.fullmatch(segment) and any(c.isdigit() for c in segment):
        return True
    token = _TOKEN.fullmatch(segment)
    if token and _generated(token.group(2)):
        return True
    return bool(_CODE.fullmatch(segment)) or _random_looking(segment)


@lru_cache(maxsize=4096)
def segment_placeholder(segment: str) -> str | None:
    """The placeholder for an id-like path segment (`{id}`, `{id}.json`), or None when the segment stays literal."""
    if not segment or (segment.isalpha() and segment.islower()):
        return None  # the common word (`api`, `orders`), without a regular expression
    if segment.isdigit() or _is_id(segment):
        return ID
    extended = _EXTENSION.fullmatch(segment)
    if extended and _is_id(extended.group(1)):
        return f"{ID}.{extended.group(2)}"
    return None


def is_word(segment: str) -> bool:
    """A route word rather than an id: lower-case words, perhaps joined by - or _, perhaps a short number (`v2`)."""
    return _WORD.fullmatch(segment) is not None


def _extension(segment: str) -> tuple[str, str]:
    extended = _EXTENSION.fullmatch(segment)
    return (extended.group(1), "." + extended.group(2)) if extended else (segment, "")


Kind = Literal["id", "any"]


@dataclass(frozen=True, slots=True)
class LearnedTemplate:
    """A position learned to hold ids: `pattern` is the prefix and the position, `/posts/{id}` or `/u/{id}/x/{id}`."""

    service: str
    pattern: str
    kind: Kind
    """"id": values there that are not plain words are ids; "any": every value there is a parameter (slugs)."""

    @property
    def prefix(self) -> tuple[str, ...]:
        return tuple(self.pattern.strip("/").split("/")[:-1])


class TemplateLearner:
    """Positions of one service learned from traffic; bounded (`max_prefixes` positions watched, `learn_after`
    values kept for each)."""

    def __init__(self, service: str, *, learn_after: int = 20, max_prefixes: int = 2000) -> None:
        self.service = service
        self.learn_after = learn_after
        self.max_prefixes = max_prefixes
        self.learned: dict[tuple[str, ...], Kind] = {}
        self._seen: dict[tuple[str, ...], set[str]] = {}
        self.new: list[LearnedTemplate] = []
        """Facts learned here and not yet taken by the caller (to persist and share)."""

    def add(self, fact: LearnedTemplate) -> bool:
        """Take a fact (from the store, learned elsewhere); True when it changes anything here."""
        current = self.learned.get(fact.prefix)
        if current == "any" or current == fact.kind:
            return False
        self.learned[fact.prefix] = fact.kind
        self._seen.pop(fact.prefix, None)
        return True

    def kind(self, prefix: tuple[str, ...]) -> Kind | None:
        return self.learned.get(prefix)

    def saw_id(self, prefix: tuple[str, ...]) -> bool:
        """An id (by the rules) at this position; True when that teaches something new."""
        if prefix in self.learned:
            return False
        return self._learn(prefix, "id")

    def saw_literal(self, prefix: tuple[str, ...], segment: str) -> bool:
        """A literal value at this position; True when the position is now learned to hold a parameter."""
        if self.learned.get(prefix) == "any":
            return False
        seen = self._seen.get(prefix)
        if seen is None:
            if len(self._seen) >= self.max_prefixes:
                return False
            seen = self._seen[prefix] = set()
        if segment in seen or len(seen) >= self.learn_after:
            return False
        seen.add(segment)
        if len(seen) < self.learn_after:
            return False
        singles = sum(1 for s in seen if _SINGLE_WORD.fullmatch(s))
        if singles * 2 > len(seen):
            return False  # mostly single words: the routes of an API, not its records
        return self._learn(prefix, "any")

    def _learn(self, prefix: tuple[str, ...], kind: Kind) -> bool:
        self.learned[prefix] = kind
        self._seen.pop(prefix, None)
        self.new.append(LearnedTemplate(self.service, "/" + "/".join((*prefix, ID)), kind))
        return True

    def take(self) -> list[LearnedTemplate]:
        """The facts learned since the last call."""
        new, self.new = self.new, []
        return new


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
    """Maps (method, raw path) to an endpoint template; results are cached (LRU) since it runs per exchange.

    With a `learner`, what the rules recognise teaches it positions, and what it learned templates the rest.
    """

    def __init__(
        self, patterns: Sequence[str] = (), *, cache_size: int = 4096, learner: TemplateLearner | None = None
    ) -> None:
        by_length: dict[int, list[_Pattern]] = {}
        for text in patterns:
            pattern = _Pattern(text)
            by_length.setdefault(len(pattern.segments), []).append(pattern)
        # More literal segments first: /api/products/sku/{sku} beats /api/products/{id}/{action}.
        self._patterns = {
            n: sorted(ps, key=lambda p: -sum(lit is not None for lit in p.literals)) for n, ps in by_length.items()
        }
        self.learner = learner
        self._cached = lru_cache(maxsize=cache_size)(self._template)

    def template(self, method: str, path: str) -> str:
        """`("get", "/api/orders/42")` → `"GET /api/orders/{id}"`."""
        return self._cached(method, path)

    def learn(self, facts: Iterable[LearnedTemplate]) -> bool:
        """Take facts learned elsewhere; True when any changed how paths are named (the cache is then dropped)."""
        if self.learner is None:
            return False
        changed = False
        for fact in facts:
            changed = self.learner.add(fact) or changed
        if changed:
            self._cached.cache_clear()
        return changed

    def _template(self, method: str, path: str) -> str:
        method = method.upper()
        path = path.split("?", 1)[0].split("#", 1)[0] or "/"
        stripped = path.strip("/")
        segments = stripped.split("/") if stripped else []
        for pattern in self._patterns.get(len(segments), ()):
            if pattern.matches(method, segments):
                return f"{method} {pattern.text}"
        templated: list[str] = []
        learned = False
        learner = self.learner
        for segment in segments:
            placeholder = segment_placeholder(segment)
            if learner is not None:
                prefix = tuple(templated)
                kind = learner.kind(prefix)
                if placeholder is not None:
                    learned = learner.saw_id(prefix) or learned
                elif kind == "any" or (kind == "id" and not is_word(_extension(segment)[0])):
                    placeholder = ID + _extension(segment)[1]
                elif segment and learner.saw_literal(prefix, segment):
                    learned = True
                    placeholder = ID + _extension(segment)[1]
            templated.append(placeholder or segment)
        if learned:
            # Names given before this lesson are stale; the result below already follows it.
            self._cached.cache_clear()
        trailing = "/" if path.endswith("/") and segments else ""
        return f"{method} /{'/'.join(templated)}{trailing}"
