"""JSON path templates (`root.items[*].price`) and the rule patterns matched against them (`**.created_at`).

A template names a field with every list index folded to `[*]`, so it is the bounded unit every count is keyed by.
Keys made of `[A-Za-z0-9_$@-]` read as `.key`; any other key is quoted, `["a.b"]`, so templates stay unambiguous.

Pattern grammar (compiled once to one regular expression per rule set):

- `root.items[*].price` — anchored at the body's root; a leading `root` may be left out (`items[*].price`).
- `*` — exactly one key; `[*]` (or `[0]`) — one list index; `**` — any number of keys and indices, none included.
- `*` inside a key globs characters of that key: `**.*_at` is every key ending in `_at`.
- `**.created_at` — `created_at` at any depth; `**` alone — the root and everything below it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

ROOT = "root"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@-]+")
# One segment of a template: `.key`, `["quoted key"]` or `[*]`.
_SEGMENT = r'(?:\.[A-Za-z0-9_$@-]+|\["(?:[^"\\]|\\.)*"\]|\[\*\])'
_KEY_SEGMENT = r'(?:\.[A-Za-z0-9_$@-]+|\["(?:[^"\\]|\\.)*"\])'
_SEGMENTS = re.compile(_SEGMENT)
_PATTERN_TOKEN = re.compile(r'\[\*\]|\[\d+\]|\["(?:[^"\\]|\\.)*"\]|\.|[^.\[\]]+|.')
_INDEX = re.compile(r"\[\d+\]")
_CACHE_LIMIT = 65_536


def key_segment(key: str) -> str:
    """The template segment for one object key: `.key`, or `["key"]` when the key needs quoting."""
    if _PLAIN_KEY.fullmatch(key):
        return "." + key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def child(template: str, key: str) -> str:
    return template + key_segment(key)


def item(template: str) -> str:
    return template + "[*]"


def fold_path(parts: Iterable[str | int]) -> str:
    """`["items", 0, "price"]` (deepdiff's list form of `root['items'][0]['price']`) → `root.items[*].price`."""
    out = [ROOT]
    for part in parts:
        out.append("[*]" if isinstance(part, int) else key_segment(str(part)))
    return "".join(out)


def join(prefix: str, relative: str) -> str:
    """Re-root a template computed on a subtree (`root[*].price`) under the subtree's own template."""
    return prefix + relative[len(ROOT) :]


def concrete(template: str, indices: Sequence[int]) -> str:
    """The template with its `[*]` segments filled in from the left: `root.a[*].b`, (2,) → `root.a[2].b`."""
    if not indices:
        return template
    out, last, n = [], 0, 0
    for match in _SEGMENTS.finditer(template, len(ROOT)):
        if match.group() == "[*]" and n < len(indices):
            out.append(template[last : match.start()])
            out.append(f"[{indices[n]}]")
            last, n = match.end(), n + 1
    out.append(template[last:])
    return "".join(out)


def ancestors(template: str) -> Iterator[str]:
    """Every proper prefix of a template that is itself a template, nearest first: `root.a[*].b` → `root.a[*]`, ..."""
    ends = [m.start() for m in _SEGMENTS.finditer(template, len(ROOT))]
    for end in reversed(ends):
        yield template[:end]


def _compile_pattern(pattern: str) -> str:
    tokens = [t for t in _PATTERN_TOKEN.findall(pattern.strip()) if t != "."]
    if tokens and tokens[0] == ROOT:
        tokens = tokens[1:]
    parts = [ROOT]
    for token in tokens:
        if token == "**":
            parts.append(f"{_SEGMENT}*")
        elif token == "*":
            parts.append(_KEY_SEGMENT)
        elif token == "[*]" or _INDEX.fullmatch(token):
            parts.append(r"\[\*\]")
        elif token.startswith('["'):
            parts.append(re.escape(key_segment(json.loads(token[1:-1]))))
        elif token in ("[", "]"):
            raise ValueError(f'Path pattern {pattern!r} has an unbalanced bracket; use [*] or ["key"].')
        elif "*" in token:
            parts.append(r"\." + "[A-Za-z0-9_$@-]*".join(re.escape(piece) for piece in token.split("*")))
        else:
            parts.append(re.escape(key_segment(token)))
    return "".join(parts)


def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression matching a template that any of the patterns matches (None when there are none)."""
    bodies = [_compile_pattern(p) for p in patterns]
    if not bodies:
        return None
    return re.compile("|".join(f"(?:{body})" for body in bodies))


class PatternSet:
    """Does a template match any of these patterns? Precompiled, answers cached per template."""

    __slots__ = ("_cache", "_regex", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._regex = compile_patterns(self.patterns)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return self._regex is not None

    def matches(self, template: str) -> bool:
        if self._regex is None:
            return False
        hit = self._cache.get(template)
        if hit is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            hit = self._cache[template] = self._regex.fullmatch(template) is not None
        return hit

    def covers(self, template: str) -> bool:
        """The template or one of its ancestors matches."""
        return self.matches(template) or any(self.matches(a) for a in ancestors(template))


class PatternMap(Generic[T]):
    """Which value applies at a template: the last (pattern, value) pair whose pattern matches, so later rules win."""

    __slots__ = ("_cache", "_entries")

    def __init__(self, entries: Sequence[tuple[str, T]]) -> None:
        self._entries = [(re.compile(_compile_pattern(p)), v) for p, v in reversed(entries)]
        self._cache: dict[str, T | None] = {}

    def __bool__(self) -> bool:
        return bool(self._entries)

    def lookup(self, template: str) -> T | None:
        if not self._entries:
            return None
        if template in self._cache:
            return self._cache[template]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        found = next((v for regex, v in self._entries if regex.fullmatch(template)), None)
        self._cache[template] = found
        return found
