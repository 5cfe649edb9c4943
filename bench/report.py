"""An outcome as tables: on the console (rich), in bench/RESULTS.md (Markdown) and as JSON."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.analysis import MIB, NOISY_PCT, added_p50, contention, ratio, targets
from bench.runner import SUSTAIN_FACTOR, SUSTAINED, Outcome
from bench.upstream import BIG_BODY, STREAM_CHUNKS, STREAM_PART

BODY_BYTES = {"700 KiB body": len(BIG_BODY), "streamed, 8 × 1 KiB": STREAM_CHUNKS * len(STREAM_PART)}

BEGIN = "<!-- bench:begin (written by `python -m bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def main_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the throughput/latency table."""
    header = ["scenario", "conc.", "req/s", "p50 ms", "p99 ms", "errors", "× direct", "× nginx"]
    header += ["CPU µs/req", "box CPU µs/req", "primary CPU", "mirrored", "analysed", "other CPU", "round"]
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
                _fmt(row.box_cpu_us_per_request, ",.0f"),
                _fmt(row.upstream_cpu_pct, ".0f", "%"),
                _fmt(row.mirrored, ".0%"),
                _fmt(row.analysed, ".0%"),
                _fmt(row.other_cpu_pct, ".0f", "%"),
                str(row.round + 1),
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


def bodies_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """Large and streamed responses: each system against nginx mirror on the same kind of response."""
    header = ["scenario", "response", "conc.", "req/s", "MiB/s", "p50 ms", "p99 ms", "errors", "× nginx"]
    header += ["CPU µs/req", "mirrored", "analysed", "other CPU", "round"]
    rows = []
    for row in outcome.bodies:
        nginx = next((r for r in outcome.bodies if r.key == "nginx-mirror" and r.workload == row.workload), None)
        versus = row.result.rps / nginx.result.rps if nginx is not None and nginx.result.rps else None
        size = BODY_BYTES.get(row.workload)
        rows.append(
            [
                row.label,
                row.workload,
                str(row.concurrency),
                f"{row.result.rps:,.0f}",
                _fmt(row.result.rps * size / MIB if size else None, ",.0f"),
                f"{row.result.p50_ms:.2f}",
                f"{row.result.p99_ms:.2f}",
                str(row.result.errors),
                _fmt(versus, ".2f", "×"),
                _fmt(row.cpu_us_per_request, ",.0f"),
                _fmt(row.mirrored, ".0%"),
                _fmt(row.analysed, ".0%"),
                _fmt(row.other_cpu_pct, ".0f", "%"),
                str(row.round + 1),
            ]
        )
    return header, rows


def stall_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """Primary latency and proxy memory with a sick shadow."""
    header = ["shadow", "load", "req/s", "p50 ms", "p99 ms", "p99 vs healthy", "errors", "RSS before", "RSS after"]
    header += ["RSS peak"]
    header += ["other CPU", "round"]
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
                f"{s.rss_peak / MIB:.1f} MiB" if s.rss_peak else "—",
                _fmt(s.other_cpu_pct, ".0f", "%"),
                str(s.round + 1),
            ]
        )
    return header, rows


def targets_table(outcome: Outcome) -> tuple[list[str], list[list[str]]]:
    """Each goal, what was measured, and whether it was met."""
    mark = {True: "met", False: "MISSED", None: "not measured"}
    rows = [
        [t.name, t.goal, t.measured, mark[t.met] + (" (noisy run)" if t.noisy and t.met is not None else "")]
        for t in targets(outcome)
    ]
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

    console = Console(width=max(Console().width, 190))  # wide tables beat wrapped cells, also in logs and CI
    for title, (header, rows) in sections(outcome):
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, justify="left" if name in ("scenario", "shadow", "target", "goal") else "right")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)
    for section in outcome.sections.values():
        console.print(f"\nsection python -m {section['module']} (exit {section['returncode']}):", markup=False)
        console.print(section["output"] or "(no output)", markup=False, highlight=False)
    for name, reason in outcome.skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {reason}")
    warning = contention_note(outcome)
    if warning:
        console.print(f"[yellow]{warning}[/]")


def sections(outcome: Outcome) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """The tables, titled, in the order they are shown."""
    return [
        ("Throughput and latency (closed loop)", main_table(outcome)),
        ("Added latency at concurrency 1", latency_table(outcome)),
        ("Large and streamed responses", bodies_table(outcome)),
        ("Shadow stall: shadowdiff, mirroring on, 1 worker", stall_table(outcome)),
        ("Targets", targets_table(outcome)),
    ]


def contention_note(outcome: Outcome) -> str | None:
    """A warning when other work on the machine took a noticeable share of the CPU while we measured."""
    shares = contention(outcome)
    if shares is None or shares[1] < NOISY_PCT:
        return None
    return (
        f"Processes outside the benchmark used up to {shares[1]:.0f}% of the machine's CPU during some measurements "
        f"(median {shares[0]:.0f}%): rows whose 'other CPU' is above {NOISY_PCT:.0f}% are noisy, and so are the "
        "verdicts built on them; re-run on a quiet machine."
    )


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
                "box_cpu_us_per_request": r.box_cpu_us_per_request,
                "primary_upstream_cpu_pct": r.upstream_cpu_pct,
                "mirrored": r.mirrored,
                "analysed": r.analysed,
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
                "rss_peak": s.rss_peak,
                "other_cpu_pct": s.other_cpu_pct,
            }
            for s in outcome.stall
        ],
        "bodies": [
            {
                "key": r.key,
                "label": r.label,
                "workload": r.workload,
                **r.result.as_dict(),
                "cpu_us_per_request": r.cpu_us_per_request,
                "mirrored": r.mirrored,
                "analysed": r.analysed,
                "other_cpu_pct": r.other_cpu_pct,
            }
            for r in outcome.bodies
        ],
        "other_cpu_pct_median_max": contention(outcome),
        "targets": [
            {"name": t.name, "goal": t.goal, "measured": t.measured, "met": t.met, "noisy": t.noisy}
            for t in targets(outcome)
        ],
        "skipped": outcome.skipped,
        "sections": outcome.sections,
        "every_run": [asdict(r) for r in outcome.all_rows + outcome.all_bodies]
        + [asdict(s) for s in outcome.all_stall],
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
        "- everything shares the cores: wrk (2 threads), both stand-in upstreams, the system under test",
        f"- {meta.get('seconds', '?')} s per measurement after a warm-up; "
        + (
            f"{meta['rounds']} rounds, each row the best of its runs (most req/s; paced stall rows: lowest p99)"
            if meta.get("rounds", 1) > 1
            else "one round"
        ),
    ]
    shares = contention(outcome)
    if shares is not None:
        parts.append(
            f"- CPU used by processes outside the benchmark while measuring: median {shares[0]:.0f}%, "
            f"max {shares[1]:.0f}% of the machine"
        )
    note = contention_note(outcome)
    if note:
        parts += ["", f"> **Warning:** {note}"]
    for title, (header, rows) in sections(outcome):
        if rows:
            parts += ["", f"## {title}", "", markdown_table(header, rows)]
            if title in LEGENDS:
                parts += ["", LEGENDS[title]]
    if outcome.skipped:
        parts += ["", "## Skipped", ""] + [f"- {name}: {reason}" for name, reason in outcome.skipped.items()]
    for section in outcome.sections.values():
        parts += ["", f"## Section: `python -m {section['module']}` (exit {section['returncode']})", "", "```"]
        parts += [section["output"] or "(no output)", "```"]
    return "\n".join(parts)


LEGENDS = {
    "Throughput and latency (closed loop)": (
        "× direct / × nginx: req/s over that system's req/s at the same concurrency, in this run. "
        "CPU µs/req: CPU time of the system under test (all its processes) per request; box CPU µs/req: of "
        "everything the benchmark runs (system, both upstreams, wrk), which bounds req/s on a quiet 2-core machine. "
        "primary CPU: how busy the primary stand-in was (near 100% would make it the bottleneck). "
        "mirrored: requests the shadow received over requests the primary received. "
        "analysed: shadowdiff's share of the requests answered that were not dropped from analysis (compared and "
        "stored; the rest counted in shadowdiff_dropped_total), read from its /metrics. "
        "other CPU: share of all cores used by processes outside the benchmark (should be ~0%)."
    ),
    "Large and streamed responses": (
        "700 KiB body: a Content-Length body under max_response_body, read whole, relayed, mirrored and compared. "
        "streamed: a chunked body whose parts arrive one event-loop turn apart, relayed part by part as it "
        "arrives while a copy is kept for comparison. × nginx: req/s over nginx mirror's on the same response."
    ),
    "Shadow stall: shadowdiff, mirroring on, 1 worker": (
        "The paced rows are open loop at a fixed rate, latency counted from when each request was due: their p99 "
        "is the one the target is about. The closed-loop rows (c=16, c=64) saturate the proxy, where p99 is "
        "mostly queueing. RSS is the proxy's, before and after each run, and the highest sampled during it. "
        f"'{SUSTAINED}' repeats c=64 for {SUSTAIN_FACTOR}× as long once the ramp has brought the proxy to its "
        "working size: its growth is what the stall itself keeps adding (the 'flat' target)."
    ),
}


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
