"""Render a report as JSON-ready data, Markdown (for a PR comment) or plain text, and bodies as marked lines (pure)."""

from __future__ import annotations

import json
from typing import Any

from diffs.counts import Counts
from diffs.percentiles import Latency, Percentiles
from diffs.readiness import Criteria, Readiness
from diffs.report import LIVE, DirectionSummary, EndpointSummary, FieldSummary, Report, ServiceSummary, Verdict
from diffs.trend import Trend

SCHEMA_VERSION = 1


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def counts_dict(c: Counts) -> dict[str, Any]:
    return {
        "total": c.total,
        "mirrored": c.mirrored,
        "samples": c.samples,
        "match": c.match,
        "diff": c.diff,
        "shadow_error": c.shadow_error,
        "skipped": c.skipped,
        "dropped": c.dropped,
        "findings": c.findings,
        "noisy_match": c.noisy_match,
        "noise_only": c.noise_only,
        "rates": {
            "match": _rate(c.match_rate),
            "diff": _rate(c.diff_rate),
            "raw_diff": _rate(c.raw_diff_rate),
            "noise": _rate(c.noise_rate),
            "shadow_error": _rate(c.error_rate),
        },
        "shares": {name: _rate(value) for name, value in c.shares.items()},
    }


def percentiles_dict(p: Percentiles) -> dict[str, Any]:
    return {"count": p.count, "p50_ms": p.p50, "p90_ms": p.p90, "p99_ms": p.p99}


def latency_dict(latency: Latency) -> dict[str, Any]:
    return {
        "primary": percentiles_dict(latency.primary),
        "shadow": percentiles_dict(latency.shadow),
        "ratio": {q: latency.ratio(q) for q in ("p50", "p90", "p99")},
        "v1": percentiles_dict(latency.v1),
        "v2": percentiles_dict(latency.v2),
        "v2_speedup": latency.v2_speedup,
        "v2_speedup_p99": latency.v2_speedup_p99,
    }


def readiness_dict(r: Readiness) -> dict[str, Any]:
    return {
        "ready": r.ready,
        "failures": [
            {"criterion": f.criterion, "actual": f.actual, "limit": f.limit, "message": f.message} for f in r.failures
        ],
    }


def criteria_dict(c: Criteria) -> dict[str, Any]:
    return {
        "min_samples": c.min_samples,
        "max_diff_rate": c.max_diff_rate,
        "max_error_rate": c.max_error_rate,
        "max_p99_ratio": c.max_p99_ratio,
    }


def field_dict(f: FieldSummary) -> dict[str, Any]:
    return {
        "endpoint": f.endpoint,
        "path": f.path,
        "kinds": list(f.kinds),
        "raw": f.raw,
        "noise": f.noise,
        "raw_rate": _rate(f.raw_rate),
        "noise_rate": _rate(f.noise_rate),
        "verdict": f.verdict,
        "by_kind": [{"kind": kind, "raw": raw, "noise": noise} for kind, raw, noise in f.by_kind],
    }


def endpoint_dict(e: EndpointSummary, *, fields: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": e.service,
        "endpoint": e.endpoint,
        "overflow": e.overflow,
        "counts": counts_dict(e.counts),
        "latency": latency_dict(e.latency),
        "finding_fields": e.finding_fields,
        "statuses": [{"primary": _status(pair.split(" ")[0]), "shadow": _status(pair.split(" ")[-1]), "count": n}
                     for pair, n in e.statuses],
    }  # fmt: skip
    if fields:
        data["fields"] = [field_dict(f) for f in e.fields]
    return data


def _status(text: str) -> int | None:
    return None if text == "-" else int(text)


def direction_dict(d: DirectionSummary) -> dict[str, Any]:
    return {
        "primary": d.primary,
        "shadow": d.shadow,
        "counts": counts_dict(d.counts),
        "latency": latency_dict(d.latency),
        "readiness": readiness_dict(d.readiness),
    }


def service_dict(s: ServiceSummary, *, endpoints: bool = True, fields: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": s.service,
        "primary": s.primary,
        "shadow": s.shadow,
        "since": s.since.isoformat() if s.since else None,
        "last_promotion": s.last_promotion.isoformat() if s.last_promotion else None,
        "counts": counts_dict(s.counts),
        "latency": latency_dict(s.latency),
        "v2_speedup": s.v2_speedup,
        "v2_speedup_p99": s.v2_speedup_p99,
        "readiness": readiness_dict(s.readiness),
        "trend": trend_dict(s.trend),
        "directions": [direction_dict(d) for d in s.directions],
    }
    if endpoints:
        data["endpoints"] = [endpoint_dict(e, fields=fields) for e in s.endpoints]
    return data


def trend_dict(t: Trend) -> dict[str, Any]:
    return {
        "direction": t.direction,
        "buckets": [{"start": b.start.isoformat(), "samples": b.samples, "findings": b.findings} for b in t.buckets],
    }


def report_dict(report: Report, *, endpoints: bool = True, fields: bool = True) -> dict[str, Any]:
    """The report as plain data: what `--format json` prints and `/api/v1/summary` returns."""
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": report.generated_at.isoformat(),
        "window": {
            "since": report.window.since.isoformat() if report.window.since else None,
            "until": report.window.until.isoformat() if report.window.until else None,
            "run": report.window.run,
            "since_promotion": report.window.since_promotion,
        },
        "criteria": criteria_dict(report.criteria),
        "latency_sample_one_in": report.latency_stride,
        "ready": report.ready,
        "services": [service_dict(s, endpoints=endpoints, fields=fields) for s in report.services],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


# ---------------------------------------------------------------- text helpers shared with the CLI and templates


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def fmt_speedup(value: float | None) -> str:
    if value is None:
        return "–"
    return f"V2 {abs(value) * 100:.0f}% {'faster' if value >= 0 else 'slower'}"


def fmt_speedups(latency: Latency) -> str:
    """ "V2 25% faster at p50, 3% slower at p99": the median never stated without the tail."""
    p50, p99 = latency.v2_speedup, latency.v2_speedup_p99
    if p50 is None and p99 is None:
        return "–"

    def part(value: float | None, at: str) -> str:
        if value is None:
            return f"– at {at}"
        return f"{abs(value) * 100:.0f}% {'faster' if value >= 0 else 'slower'} at {at}"

    return f"V2 {part(p50, 'p50')}, {part(p99, 'p99')}"


def fmt_since(s: ServiceSummary) -> str:
    """Where a service's numbers start, said plainly."""
    if s.since is None:
        return "all recorded traffic"
    when = s.since.strftime("%Y-%m-%d %H:%M UTC")
    return f"since the last promotion ({when})" if s.since == s.last_promotion else f"since {when}"


def verdict_word(r: Readiness) -> str:
    return "READY" if r.ready else "NOT READY"


def window_text(report: Report) -> str:
    since = report.window.since.strftime("%Y-%m-%d %H:%M UTC") if report.window.since else "the beginning"
    if report.window.since_promotion:
        since += " (or each service's last promotion)"
    until = report.window.until.strftime("%Y-%m-%d %H:%M UTC") if report.window.until else "now"
    run = report.window.run
    which = "" if run is None else " · live traffic" if run == LIVE else f" · replay {run}"
    return f"{since} → {until}{which}"


# ---------------------------------------------------------------- markdown


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_verdict(s: ServiceSummary) -> str:
    if not s.counts.total:
        return "no traffic"
    return f"{'✅' if s.readiness.ready else '❌'} {verdict_word(s.readiness)}"


def render_markdown(report: Report, *, max_fields: int = 10) -> str:
    """A PR-comment sized summary: one table of services, then failing criteria and top findings per service."""
    lines = [
        "## shadowdiff report",
        "",
        f"Window: {window_text(report)} · generated {report.generated_at.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "| service | primary | mirrored | samples | match | noise only | diff (findings) | shadow errors "
        "| p50 primary / shadow | p99 primary / shadow | p99 ratio | V2 vs V1 | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in report.services:
        c, lat = s.counts, s.latency
        lines.append(
            f"| {_md(s.service)} | {s.primary} | {c.mirrored} | {c.samples} | {fmt_pct(c.rate(c.clean_match))} "
            f"| {fmt_pct(c.noise_rate)} | {fmt_pct(c.diff_rate)} | {fmt_pct(c.error_rate)} "
            f"| {fmt_ms(lat.primary.p50)} / {fmt_ms(lat.shadow.p50)} "
            f"| {fmt_ms(lat.primary.p99)} / {fmt_ms(lat.shadow.p99)} | {fmt_ratio(lat.ratio('p99'))} "
            f"| {fmt_speedups(lat)} | {_md_verdict(s)} |"
        )
    for s in report.active:
        findings = [f for e in s.endpoints for f in e.fields if f.verdict == Verdict.FINDING]
        if s.readiness.ready and not findings:
            continue
        lines += ["", f"### {_md(s.service)}"]
        for failure in s.readiness.failures:
            lines.append(f"- ❌ {failure.message}")
        if findings:
            lines += ["", "| endpoint | field | kinds | raw | noise |", "|---|---|---|---:|---:|"]
            for f in sorted(findings, key=lambda f: -f.raw)[:max_fields]:
                lines.append(f"| `{_md(f.endpoint)}` | `{_md(f.path)}` | {', '.join(f.kinds)} | {f.raw} | {f.noise} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- plain text


def render_text(report: Report) -> str:
    """A plain-text report for pipes and logs (the terminal gets rich tables instead)."""
    lines = [f"shadowdiff report: {window_text(report)}"]
    for s in report.services:
        c, lat = s.counts, s.latency
        if not c.total:
            lines += ["", f"{s.service}: primary {s.primary} · no traffic"]
            continue
        lines += [
            "",
            f"{s.service}: primary {s.primary} · {verdict_word(s.readiness)}",
            f"  {s.shadow} shadowing {s.primary}, {fmt_since(s)}",
            f"  mirrored {c.mirrored}, samples {c.samples}: match {fmt_pct(c.rate(c.clean_match))}, "
            f"noise only {fmt_pct(c.noise_rate)}, diff {fmt_pct(c.diff_rate)} (raw {fmt_pct(c.raw_diff_rate)}), "
            f"shadow errors {fmt_pct(c.error_rate)}",
            f"  latency primary p50/p90/p99 {fmt_ms(lat.primary.p50)} / {fmt_ms(lat.primary.p90)} / "
            f"{fmt_ms(lat.primary.p99)}; shadow {fmt_ms(lat.shadow.p50)} / {fmt_ms(lat.shadow.p90)} / "
            f"{fmt_ms(lat.shadow.p99)}; p99 ratio {fmt_ratio(lat.ratio('p99'))}; {fmt_speedups(lat)}",
        ]
        for d in s.directions:
            if d.direction == s.direction:
                continue
            lines.append(
                f"  while {d.primary} was primary: {d.counts.samples} samples, diff {fmt_pct(d.counts.diff_rate)}, "
                f"p99 ratio {fmt_ratio(d.latency.ratio('p99'))} · {verdict_word(d.readiness)}"
            )
        lines += [f"  ✗ {f.message}" for f in s.readiness.failures]
        for e in s.endpoints:
            lines.append(
                f"  {e.endpoint}: {e.counts.samples} samples, diff {fmt_pct(e.counts.diff_rate)}, "
                f"{e.finding_fields} finding field(s)"
            )
    return "\n".join(lines) + "\n"
