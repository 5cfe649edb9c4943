"""Text bodies compared in parts: lines (or, for one long line such as minified HTML, tags and words), so that one
line that varies between runs is noise on its own and does not hide a hundred real changes elsewhere.

Each differing block of parts is one change at `root.line.N` (`root.token.N`), N being where the block starts in the
primary's text, counted from 1: the same numbering in the primary-vs-shadow and the primary-vs-secondary comparisons,
so noise is recognised per block. A block's place on each side is `root.line.N` or `root.line.N-M`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from diffs.exchange import DiffKind

MAX_PARTS = 10_000
"""Texts with more parts than this are compared as one value (difflib is quadratic in the worst case)."""
LONG_LINE = 200
"""A text of one line longer than this is compared token by token."""
_TOKENS = re.compile(r"<[^<>]*>|[^<\s]+|\s+")
_SPAN = re.compile(r"root\.(line|token)\.(\d+)(?:-(\d+))?")


@dataclass(frozen=True, slots=True)
class TextChange:
    path: str
    kind: DiffKind
    primary: str | None
    shadow: str | None
    primary_at: str | None
    shadow_at: str | None


def _parts(a: str, b: str) -> tuple[str, list[str], list[str]] | None:
    """The unit ("line" or "token") and both texts cut into it; None when they are best compared whole."""
    la, lb = a.splitlines(), b.splitlines()
    if len(la) > 1 or len(lb) > 1:
        unit, pa, pb = "line", la, lb
    elif max(len(a), len(b)) > LONG_LINE:
        unit, pa, pb = "token", _TOKENS.findall(a), _TOKENS.findall(b)
    else:
        return None
    if max(len(pa), len(pb)) > MAX_PARTS:
        return None
    return unit, pa, pb


def _span(unit: str, start: int, end: int) -> str | None:
    """`root.line.3` or `root.line.3-5` for the parts [start, end) counted from 0; None for an empty span."""
    if end <= start:
        return None
    return f"root.{unit}.{start + 1}" if end - start == 1 else f"root.{unit}.{start + 1}-{end}"


def text_changes(a: str, b: str) -> list[TextChange] | None:
    """The differing blocks of two texts, or None when they are compared as one value (short or huge)."""
    cut = _parts(a, b)
    if cut is None:
        return None
    unit, pa, pb = cut
    glue = "\n" if unit == "line" else ""
    changes = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, pa, pb, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if unit == "token" and not "".join(pa[i1:i2]).strip() and not "".join(pb[j1:j2]).strip():
            continue  # whitespace between tokens only
        kind = {"replace": DiffKind.CHANGED, "delete": DiffKind.ITEM_REMOVED, "insert": DiffKind.ITEM_ADDED}[tag]
        changes.append(
            TextChange(
                f"root.{unit}.{i1 + 1}",
                kind,
                glue.join(pa[i1:i2]) if i2 > i1 else None,
                glue.join(pb[j1:j2]) if j2 > j1 else None,
                _span(unit, i1, i2),
                _span(unit, j1, j2),
            )
        )
    return changes


def span(at: str | None) -> tuple[str, int, int] | None:
    """`root.line.3-5` → ("line", 3, 5); `root.line.7` → ("line", 7, 7); None for anything else."""
    if at is None:
        return None
    match = _SPAN.fullmatch(at)
    if match is None:
        return None
    start = int(match.group(2))
    return match.group(1), start, int(match.group(3) or start)
