"""What the pages show beyond numbers: bodies as lines with differing fields marked, an endpoint's field tree, and the
bar geometry of a latency chart (pure; the templates only lay these out)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from diffs.decoding import decode_body
from diffs.exchange import DiffKind, FieldDiff, Headers
from diffs.paths import ROOT, key_segment
from diffs.percentiles import Latency
from diffs.report import FieldSummary
from diffs.text_diff import span

# ---------------------------------------------------------------- exchange bodies, line by line


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a pretty-printed body and the field it shows; `marked` when that field differs, `noise` when it
    differs but the difference is noise (it differs between two copies of the primary too, or a reviewer said so)."""

    text: str
    path: str | None = None
    marked: bool = False
    noise: bool = False


@dataclass(frozen=True, slots=True)
class Highlights:
    """What to mark in one side's head and body.

    `places` are concrete paths (`root.items[2].stock`: that item only) or templates (`root.items[*].stock`: every
    item, for diffs stored without a place); a line is marked when its field is one of them or inside one. `alone`
    marks the line of the place itself, not what is inside (a reordered list: the list, not each item). `lines` are
    line numbers of a text body, from 1.
    """

    places: frozenset[str] = frozenset()
    alone: frozenset[str] = frozenset()
    lines: frozenset[int] = frozenset()

    @classmethod
    def of(cls, paths: Iterable[str]) -> Highlights:
        return cls(frozenset(paths))

    def __bool__(self) -> bool:
        return bool(self.places or self.alone or self.lines)

    def covers(self, template: str, place: str) -> bool:
        return (
            template in self.alone
            or place in self.alone
            or differs(place, self.places)
            or (template != place and differs(template, self.places))
        )


NOTHING = Highlights()
_SHADOW_ONLY = frozenset({DiffKind.ADDED, DiffKind.ITEM_ADDED})
_PRIMARY_ONLY = frozenset({DiffKind.REMOVED, DiffKind.ITEM_REMOVED})


def highlights(diffs: Iterable[FieldDiff], side: Literal["primary", "shadow"]) -> Highlights:
    """Where these diffs are on one side: an added item only on the shadow, a removed one only on the primary, a list
    item by its own index on each side (aligned by key), a text block by its own lines."""
    places: set[str] = set()
    alone: set[str] = set()
    lines: set[int] = set()
    for d in diffs:
        if d.kind in (_PRIMARY_ONLY if side == "shadow" else _SHADOW_ONLY):
            continue
        at = d.primary_at if side == "primary" else d.shadow_at
        text = span(at) if at is not None else span(d.path)
        if text is not None:
            lines.update(range(text[1], text[2] + 1) if text[0] == "line" else (1,))
        elif d.kind is DiffKind.REORDERED:
            alone.add(at or d.path)
        else:
            places.add(at or d.path)
    return Highlights(frozenset(places), frozenset(alone), frozenset(lines))


def json_lines(value: Any) -> list[tuple[str, str, str]]:
    """Pretty-print JSON (indent 2) as (path template, concrete path, line): `root.items[*].price` is the template
    diff paths use, `root.items[2].price` says which item."""
    out: list[tuple[str, str, str]] = []

    def emit(node: Any, path: str, place: str, depth: int, prefix: str, trailing: str) -> None:
        pad = "  " * depth
        if isinstance(node, dict) and node:
            out.append((path, place, f"{pad}{prefix}{{"))
            items = list(node.items())
            for n, (key, child) in enumerate(items):
                comma = "," if n < len(items) - 1 else ""
                segment = key_segment(str(key))
                label = json.dumps(str(key), ensure_ascii=False) + ": "
                emit(child, path + segment, place + segment, depth + 1, label, comma)
            out.append((path, place, f"{pad}}}{trailing}"))
        elif isinstance(node, list) and node:
            out.append((path, place, f"{pad}{prefix}["))
            for n, child in enumerate(node):
                emit(child, path + "[*]", f"{place}[{n}]", depth + 1, "", "," if n < len(node) - 1 else "")
            out.append((path, place, f"{pad}]{trailing}"))
        else:
            out.append((path, place, f"{pad}{prefix}{json.dumps(node, ensure_ascii=False)}{trailing}"))

    emit(value, ROOT, ROOT, 0, "", "")
    return out


def differs(path: str, diff_paths: frozenset[str]) -> bool:
    """Whether `path` is a differing field or lies inside one."""
    if path in diff_paths:
        return True
    return any(path.startswith(d) and path[len(d)] in ".[" for d in diff_paths if len(path) > len(d))


def mark_lines(
    lines: Iterable[tuple[str, str, str]], marked: Highlights, noise: Highlights = NOTHING
) -> tuple[Line, ...]:
    result = []
    for path, place, text in lines:
        hit = marked.covers(path, place)
        result.append(Line(text, path, hit, not hit and noise.covers(path, place)))
    return tuple(result)


def body_view(
    body: bytes | None, headers: Headers, marked: Highlights = NOTHING, noise: Highlights = NOTHING
) -> tuple[Line, ...]:
    """A stored body as lines to show: JSON pretty-printed with differing fields marked, text with its differing
    lines marked."""
    if body is None:
        return (Line("(body not kept for this exchange)"),)
    decoded = decode_body(body, headers)
    if decoded.kind == "json":
        return mark_lines(json_lines(decoded.value), marked, noise)
    if decoded.kind == "empty":
        return (Line("(empty body)"),)
    if decoded.kind == "binary":
        return (Line(f"(binary body, {decoded.size} bytes, sha256 {decoded.value})"),)
    text = decoded.value if isinstance(decoded.value, str) else json.dumps(decoded.value, indent=2)
    whole = ROOT in marked.places
    result = []
    for number, line in enumerate(text.splitlines() or [""], 1):
        hit = whole or number in marked.lines
        result.append(Line(line, ROOT, hit, not hit and (ROOT in noise.places or number in noise.lines)))
    return tuple(result)


def header_view(
    status: int | None, headers: Headers, marked: Highlights = NOTHING, noise: Highlights = NOTHING
) -> tuple[Line, ...]:
    """The status line and headers, marking a differing status or header."""
    shown = [("status", f"status {status if status is not None else '–'}")]
    shown += [(f"header.{name.lower()}", f"{name}: {value}") for name, value in headers]
    result = []
    for path, text in shown:
        hit = path in marked.places
        result.append(Line(text, path, hit, not hit and path in noise.places))
    return tuple(result)


# ---------------------------------------------------------------- the field tree of an endpoint

_SEGMENT = re.compile(r'\.[A-Za-z0-9_$@-]+|\["(?:[^"\\]|\\.)*"\]|\[\*\]')


@dataclass(frozen=True, slots=True)
class TreeRow:
    """One row of an endpoint's field tree: a differing field, or an ancestor shown only to hold the tree together."""

    label: str
    path: str
    depth: int
    field: FieldSummary | None = None


def _segments(path: str) -> list[str]:
    return _SEGMENT.findall(path, len(ROOT))


def field_tree(fields: Iterable[FieldSummary]) -> tuple[TreeRow, ...]:
    """Status and header fields first, then body fields nested under their ancestors, in path order."""
    by_path = {f.path: f for f in fields}
    flat = sorted(p for p in by_path if not p.startswith(ROOT))
    rows = [TreeRow(p, p, 0, by_path[p]) for p in flat]
    body = sorted((p for p in by_path if p.startswith(ROOT)), key=_segments)
    shown: set[str] = set()
    for path in body:
        segments = _segments(path)
        for depth in range(len(segments) + 1):
            prefix = ROOT + "".join(segments[:depth])
            if prefix in shown:
                continue
            shown.add(prefix)
            label = ROOT if depth == 0 else segments[depth - 1].lstrip(".")
            rows.append(TreeRow(label, prefix, depth, by_path.get(prefix)))
    return tuple(rows)


# ---------------------------------------------------------------- the latency chart


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    role: str
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    baseline: float
    bars: tuple[Bar, ...]
    groups: tuple[tuple[float, str], ...]
    """(x centre, "p50") under each pair of bars."""
    empty: bool


def latency_chart(latency: Latency, width: int = 360, height: int = 170) -> Chart:
    """Bar geometry for primary vs shadow p50/p90/p99 (inline SVG; no chart library, no script)."""
    top, bottom, left = 18.0, 24.0, 10.0
    baseline = height - bottom
    values = [
        (q, role, getattr(getattr(latency, role), q)) for q in ("p50", "p90", "p99") for role in ("primary", "shadow")
    ]
    peak = max((v for _, _, v in values if v is not None), default=None)
    group_width = (width - 2 * left) / 3
    bar_width = group_width * 0.32
    bars, groups = [], []
    for n, q in enumerate(("p50", "p90", "p99")):
        centre = left + group_width * (n + 0.5)
        groups.append((centre, q))
        for k, role in enumerate(("primary", "shadow")):
            value = getattr(getattr(latency, role), q)
            h = 0.0 if value is None or not peak else (baseline - top) * value / peak
            x = centre - bar_width - 2 if k == 0 else centre + 2
            bars.append(Bar(round(x, 1), round(baseline - h, 1), round(bar_width, 1), round(h, 1), role, _short(value)))
    return Chart(width, height, baseline, tuple(bars), tuple(groups), peak is None)


def _short(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"
