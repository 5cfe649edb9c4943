"""What two JSON values being "the same" means here: strict equality, shapes, tolerance, text similarity, display.

JSON semantics: object key order never matters; `1` and `1.0` are the same number; `true` and `1` differ.
"""

from __future__ import annotations

import difflib
import re
from decimal import Decimal
from typing import Any

import orjson

from diffs.rules import NumericTolerance

_NUMBER = frozenset({int, float})
_JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string"}
_DECIMAL = re.compile(r"\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*")
_WORDS = re.compile(r"\w+|[^\w\s]")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def json_type(value: Any) -> str:
    kind = type(value)
    if kind is dict:
        return "object"
    if kind is list:
        return "array"
    return _JSON_TYPES.get(kind, kind.__name__)


class TypeName(str):
    """A leaf of a schema skeleton: the JSON type that stood there."""

    __slots__ = ()


def skeleton(value: Any) -> Any:
    """Shape and JSON types only: objects keep their keys, arrays keep their distinct element shapes, leaves a type."""
    kind = type(value)
    if kind is dict:
        return {k: skeleton(v) for k, v in value.items()}
    if kind is list:
        shapes = {sort_key(s): s for s in map(skeleton, value)}
        return [shapes[k] for k in sorted(shapes)]
    if kind is TypeName:
        return value  # already a shape (an unordered list's items are reduced before they are walked)
    return TypeName(json_type(value))


def plain(value: Any) -> Any:
    return str(value) if type(value) is TypeName else value


def canonical(value: Any) -> bytes | None:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # integers past 64 bits, deep nesting, lone surrogates
        return None


def sort_key(value: Any) -> bytes:
    return canonical(value) or repr(value).encode("utf-8", "surrogatepass")


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: `==`, but `true` is not `1`; confirmed on canonical bytes for containers."""
    ta, tb = type(a), type(b)
    if ta is dict or ta is list:
        if ta is not tb or a != b:
            return False
        ca = canonical(a)
        return ca is not None and ca == canonical(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    return (ta is tb or (ta in _NUMBER and tb in _NUMBER)) and a == b


def text_similarity(a: str, b: str) -> float:
    """Word-level difflib ratio (punctuation counts as a word): 1.0 for equal texts, 0.0 for nothing in common."""
    if a == b:
        return 1.0
    wa, wb = _WORDS.findall(a), _WORDS.findall(b)
    if not wa and not wb:
        return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def similar(a: str, b: str, threshold: float) -> bool:
    wa, wb = _WORDS.findall(a), _WORDS.findall(b)
    if not wa and not wb:
        return text_similarity(a, b) >= threshold
    matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
    # The cheap upper bounds settle most unlike pairs before the quadratic ratio().
    bounds = (matcher.real_quick_ratio, matcher.quick_ratio, matcher.ratio)
    return all(bound() >= threshold for bound in bounds)


def _as_decimal(value: Any) -> Decimal | None:
    # Decimal on the shortest repr, so 27.01 − 27.00 is exactly 0.01 and a bound on the line is inside it.
    if type(value) in _NUMBER:
        return Decimal(repr(value))
    if type(value) is str and _DECIMAL.fullmatch(value):
        return Decimal(value.strip())  # money is a decimal string in this API ("12.50"): a tolerance applies to it too
    return None


def within_tolerance(a: Any, b: Any, tolerance: NumericTolerance) -> bool:
    """|a − b| ≤ absolute, or ≤ relative × |a| (a = the primary's value); decimal strings count as numbers."""
    x, y = _as_decimal(a), _as_decimal(b)
    if x is None or y is None or not (x.is_finite() and y.is_finite()):
        return False
    delta = abs(x - y)
    return delta <= Decimal(repr(tolerance.absolute)) or delta <= Decimal(repr(tolerance.relative)) * abs(x)


def clip(value: Any, limit: int) -> Any:
    """The value when its JSON fits in `limit` bytes, else its JSON cut to `limit` bytes plus a marker.

    What comes out always serializes with orjson: a value it cannot encode (an integer past 64 bits) becomes text.
    """
    kind = type(value)
    if value is None or kind is bool or kind is float or (kind is int and _INT64_MIN <= value <= _UINT64_MAX):
        return value
    if kind is str and len(value) * 4 <= limit:
        return value
    encoded = canonical(value)
    if encoded is not None and len(encoded) <= limit:
        return value
    if encoded is None:
        try:
            encoded = repr(value).encode("utf-8", "replace")
        except RecursionError:
            return "<value too deeply nested to show>"
        if len(encoded) <= limit:
            return encoded.decode()
    cut = encoded[:limit].decode("utf-8", "ignore")
    return f"{cut}…[truncated, {len(encoded)} bytes]"
