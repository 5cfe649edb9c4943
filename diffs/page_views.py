"""What the pages show beyond numbers: bodies as lines with differing fields marked, an endpoint's field tree, and the
bar geometry of a latency chart (pure; the templates only lay these out)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from diffs.decoding import decode_body
from diffs.exchange import Headers
from diffs.paths import ROOT, key_segment
from diffs.percentiles import Latency
from diffs.report import FieldSummary

# ---------------------------------------------------------------- exchange bodies, line by line


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a pretty-printed body and the field it shows; `marked` when that field differs, `noise` when it
    differs but the difference is noise (it differs between two copies of the primary too, or a reviewer said so)."""

    text: str
    path: str | None = None
    marked: bool = False
    noise: bool = False


def json_lines(value: Any) -> list[tuple[str, str]]:
    """Pretty-print JSON (indent 2) as (path template, line) pairs, lists folded to `[*]` as diff paths are."""
    out: list[tuple[str, str]] = []

    def emit(node: Any, path: str, depth: int, prefix: str, trailing: str) -> None:
        pad = "  " * depth
        if isinstance(node, dict) and node:
            out.append((path, f"{pad}{prefix}{{"))
            items = list(node.items())
            for n, (key, child) in enumerate(items):
                comma = "," if n < len(items) - 1 else ""
                emit(
                    child,
                    path + key_segment(str(key)),
                    depth + 1,
                    json.dumps(str(key), ensure_ascii=False) + ": ",
                    comma,
                )
            out.append((path, f"{pad}}}{trailing}"))
        elif isinstance(node, list) and node:
            out.append((path, f"{pad}{prefix}["))
            for n, child in enumerate(node):
                emit(child, path + "[*]", depth + 1, "", "," if n < len(node) - 1 else "")
            out.append((path, f"{pad}]{trailing}"))
        else:
            out.append((path, f"{pad}{prefix}{json.dumps(node, ensure_ascii=False)}{trailing}"))

    emit(value, ROOT, 0, "", "")
    return out


def differs(path: str, diff_paths: frozenset[str]) -> bool:
    """Whether `path` is a differing field or lies inside one."""
    if path in diff_paths:
        return True
    return any(path.startswith(d) and path[len(d)] in ".[" for d in diff_paths if len(path) > len(d))


def mark_lines(
    lines: Iterable[tuple[str, str]], diff_paths: Iterable[str], noise_paths: Iterable[str] = ()
) -> tuple[Line, ...]:
    wanted, noisy = frozenset(diff_paths), frozenset(noise_paths)
    result = []
    for path, text in lines:
        marked = differs(path, wanted)
        result.append(Line(text, path, marked, not marked and differs(path, noisy)))
    return tuple(result)


def body_view(
    body: bytes | None, headers: Headers, diff_paths: Iterable[str], noise_paths: Iterable[str] = ()
) -> tuple[Line, ...]:
    """A stored body as lines to show: JSON pretty-printed with differing fields marked, else text as it is."""
    if body is None:
        return (Line("(body not kept for this exchange)"),)
    decoded = decode_body(body, headers)
    if decoded.kind == "json":
        return mark_lines(json_lines(decoded.value), diff_paths, noise_paths)
    if decoded.kind == "empty":
        return (Line("(empty body)"),)
    if decoded.kind == "binary":
        return (Line(f"(binary body, {decoded.size} bytes, sha256 {decoded.value})"),)
    text = decoded.value if isinstance(decoded.value, str) else json.dumps(decoded.value, indent=2)
    marked = ROOT in frozenset(diff_paths)
    return tuple(Line(line, ROOT, marked) for line in text.splitlines() or [""])


def header_view(
    status: int | None, headers: Headers, diff_paths: Iterable[str], noise_paths: Iterable[str] = ()
) -> tuple[Line, ...]:
    """The status line and headers, marking a differing status or header."""
    wanted, noisy = frozenset(diff_paths), frozenset(noise_paths)
    shown = [("status", f"status {status if status is not None else '–'}")]
    shown += [(f"header.{name.lower()}", f"{name}: {value}") for name, value in headers]
    return tuple(Line(text, path, path in wanted, path not in wanted and path in noisy) for path, text in shown)


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
