"""Turn an outcome into tables (console and Markdown), ratios measured in the same run, target checks and JSON."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import wrk_path
from bench.nginx import nginx_version
from bench.runner import REPO, Outcome, Row

BEGIN = "<!-- bench:begin (written by `python -m bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """One goal from the issue and what this run measured against it."""

    name: str
    goal: str
    measured: str
    met: bool | None
    """None when the run did not measure it."""


def machine(command: str, tool: str) -> dict[str, Any]:
    """Where and when this ran."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        mem = 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    wrk = subprocess.run([wrk_path() or "true", "-v"], capture_output=True, text=True) if wrk_path() else None
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx_version() or "not installed",
        "wrk": (wrk.stdout or wrk.stderr).split("[")[0].strip() if wrk else "not installed",
        "load_tool": tool,
        "commit": commit.stdout.strip() or "unknown",
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _find(rows: list[Row], key: str, concurrency: int) -> Row | None:
    return next((r for r in rows if r.key == key and r.concurrency == concurrency), None)


def ratio(rows: list[Row], row: Row, against: str) -> float | None:
    """`row`'s throughput over `against`'s at the same concurrency, both from this run."""
    other = _find(rows, against, row.concurrency)
    return row.result.rps / other.result.rps if other and other.result.rps else None


def added_p50(rows: list[Row], key: str) -> float | None:
    """p50 at concurrency 1 through `key` minus p50 going direct, in ms."""
    row, direct = _find(rows, key, 1), _find(rows, "direct", 1)
    return row.result.p50_ms - direct.result.p50_ms if row and direct else None


def targets(outcome: Outcome) -> list[Target]:
    """The issue's four goals, checked against this run."""
    found: list[Target] = []
    for c in (16, 64):
        row = _find(outcome.rows, "shadowdiff-2w", c)
        r = ratio(outcome.rows, row, "nginx-mirror") if row else None
        measured = f"{r:.2f}×" if r is not None else "not measured"
        found.append(Target(f"throughput c={c}", "mirroring on, 2 workers ≥ 0.4× nginx mirror", measured, _ge(r, 0.4)))
    added = added_p50(outcome.rows, "shadowdiff-1w")
    measured = f"{added:+.3f} ms" if added is not None else "not measured"
    met = None if added is None else added < 1
    found.append(Target("added p50 c=1", "mirroring on < 1 ms over direct", measured, met))
    healthy = {s.load: s for s in outcome.stall if s.shadow == "healthy"}
    for stall in (s for s in outcome.stall if s.shadow != "healthy" and s.paced):
        base = healthy.get(stall.load)
        r = stall.result.p99_ms / base.result.p99_ms if base and base.result.p99_ms else None
        measured = f"{r:.2f}× ({stall.result.p99_ms:.2f} vs {base.result.p99_ms:.2f} ms)" if r and base else "—"
        goal = "primary p99 within 10% of healthy"
        found.append(Target(f"shadow {stall.shadow}, {stall.load}", goal, measured, _le(r, 1.10)))
    for shadow in dict.fromkeys(s.shadow for s in outcome.stall if s.shadow != "healthy"):
        runs = [s for s in outcome.stall if s.shadow == shadow]
        first, last = runs[0].rss_before, runs[-1].rss_after
        growth = (last - first) / first if first else 0.0
        measured = f"{first / MIB:.0f} → {last / MIB:.0f} MiB ({growth:+.0%}) over {len(runs)} runs"
        found.append(Target(f"proxy RSS, shadow {shadow}", "flat (< 10% growth)", measured, growth < 0.10))
    return found


def _ge(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _le(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def main_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the throughput/latency table."""
    header = ["scenario", "conc.", "req/s", "p50 ms", "p99 ms", "errors", "× direct", "× nginx"]
    header += ["CPU µs/req", "primary CPU", "mirrored", "other CPU"]
    rows = []
    for row in outcome.rows:
        rows.append(
            [
                row.label,
                str(row.concurrency),
                f"{row.result.rps:,.0f}",
                f"{row.result.p50_ms:.2f}",
                f"{row.result.p99_ms:.2f}",
                str(row.result.errors),
                _fmt(ratio(outcome.rows, row, "direct"), ".2f", "×"),
                _fmt(ratio(outcome.rows, row, "nginx-mirror"), ".2f", "×"),
                _fmt(row.cpu_us_per_request, ",.0f"),
                _fmt(row.upstream_cpu_pct, ".0f", "%"),
                _fmt(row.mirrored, ".0%"),
                _fmt(row.other_cpu_pct, ".0f", "%"),
            ]
        )
    return header, rows


def latency_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """p50 at concurrency 1 and what each hop adds over going direct."""
    header = ["scenario", "p50 ms (c=1)", "p99 ms (c=1)", "added p50 vs direct"]
    rows = []
    for row in (r for r in outcome.rows if r.concurrency == 1):
        added = added_p50(outcome.rows, row.key) if row.key != "direct" else None
        rows.append([row.label, f"{row.result.p50_ms:.3f}", f"{row.result.p99_ms:.3f}", _fmt(added, "+.3f", " ms")])
    return header, rows


def stall_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """Primary latency and proxy memory with a sick shadow."""
    header = ["shadow", "load", "req/s", "p50 ms", "p99 ms", "p99 vs healthy", "errors", "RSS before", "RSS after"]
    healthy = {s.load: s.result.p99_ms for s in outcome.stall if s.shadow == "healthy"}
    rows = []
    for s in outcome.stall:
        base = healthy.get(s.load)
        rows.append(
            [
                s.shadow,
                s.load,
                f"{s.result.rps:,.0f}",
                f"{s.result.p50_ms:.2f}",
                f"{s.result.p99_ms:.2f}",
                _fmt(s.result.p99_ms / base if base else None, ".2f", "×"),
                str(s.result.errors),
                f"{s.rss_before / MIB:.1f} MiB",
                f"{s.rss_after / MIB:.1f} MiB",
            ]
        )
    return header, rows


def targets_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """Each goal, what was measured, and whether it was met."""
    mark = {True: "met", False: "MISSED", None: "not measured"}
    rows = [[t.name, t.goal, t.measured, mark[t.met]] for t in targets(outcome)]
    return ["target", "goal", "measured", "verdict"], rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""
    numeric = [all(_numeric(r[i]) for r in rows) and bool(rows) for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    stripped = cell.replace(",", "").replace("×", "").replace("%", "").replace(" ms", "").replace(" MiB", "")
    try:
        float(stripped)
    except ValueError:
        return cell == "—"
    return True


def print_console(outcome: Outcome) -> None:
    """The tables on the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 160))  # wide tables beat wrapped cells, also in logs and CI
    for title, (header, rows) in sections(outcome):
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, justify="left" if name in ("scenario", "shadow", "target", "goal") else "right")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)
    for name, reason in outcome.skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {reason}")


def sections(outcome: Outcome) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """The tables, titled, in the order they are shown."""
    return [
        ("Throughput and latency (closed loop)", main_table(outcome)),
        ("Added latency at concurrency 1", latency_table(outcome)),
        ("Shadow stall: shadowdiff, mirroring on, 1 worker", stall_table(outcome)),
        ("Targets", targets_table(outcome)),
    ]


def as_json(outcome: Outcome, meta: dict[str, Any]) -> dict[str, Any]:
    """Everything, machine-readable."""
    return {
        "meta": meta,
        "rows": [
            {
                "key": r.key,
                "label": r.label,
                **r.result.as_dict(),
                "cpu_us_per_request": r.cpu_us_per_request,
                "primary_upstream_cpu_pct": r.upstream_cpu_pct,
                "mirrored": r.mirrored,
                "other_cpu_pct": r.other_cpu_pct,
                "x_direct": ratio(outcome.rows, r, "direct"),
                "x_nginx": ratio(outcome.rows, r, "nginx-mirror"),
            }
            for r in outcome.rows
        ],
        "stall": [
            {
                "shadow": s.shadow,
                "load": s.load,
                **s.result.as_dict(),
                "rss_before": s.rss_before,
                "rss_after": s.rss_after,
            }
            for s in outcome.stall
        ],
        "targets": [{"name": t.name, "goal": t.goal, "measured": t.measured, "met": t.met} for t in targets(outcome)],
        "skipped": outcome.skipped,
        "sections": outcome.sections,
    }


def markdown(outcome: Outcome, meta: dict[str, Any]) -> str:
    """The measured part of RESULTS.md."""
    parts = [
        "## Run",
        "",
        f"- date: {meta['date']}; commit `{meta['commit']}`",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['cpu']}, {meta['memory_mib']:,} MiB RAM, Linux {meta['kernel']}, Python {meta['python']}",
        f"- {meta['nginx']}; wrk: {meta['wrk']}; load generator used: **{meta['load_tool']}**",
        f"- load average when the run started: {' '.join(meta['loadavg_at_start'])}",
    ]
    for title, (header, rows) in sections(outcome):
        if rows:
            parts += ["", f"## {title}", "", markdown_table(header, rows)]
    if outcome.skipped:
        parts += ["", "## Skipped", ""] + [f"- {name}: {reason}" for name, reason in outcome.skipped.items()]
    for section in outcome.sections.values():
        parts += ["", f"## Section: `python -m {section['module']}` (exit {section['returncode']})", "", "```"]
        parts += [section["output"] or "(no output)", "```"]
    return "\n".join(parts)


def write_results(path: Path, outcome: Outcome, meta: dict[str, Any]) -> None:
    """Replace the measured block of `path`, keeping the hand-written text around it."""
    block = f"{BEGIN}\n{markdown(outcome, meta)}\n{END}"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
