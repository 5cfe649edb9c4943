"""`shadowdiff report`, `check` and `status`: the diff report in a terminal or a file, a CI readiness gate, live state.

`report` and `check` read the store directly (no proxy needs to run); `status` asks a running admin plane.
`check` exits 0 when ready, 1 when not (listing the failing criteria), 2 when it cannot tell (no store, bad input).
Tables fit an 80-column terminal: long cells wrap whole, never end in an ellipsis.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from diffs.readiness import Criteria
from diffs.report import Report, ServiceSummary, Verdict, Window, window_of
from diffs.report_formats import fmt_pct, fmt_ratio, render_json, render_markdown, window_text
from diffs.storage import Store, queries
from diffs.storage.urls import async_url, is_memory, is_sqlite
from diffs.trend import Trend, TrendBucket
from proxy.cli_common import (
    ERROR,
    NO,
    choice_option,
    console,
    fail,
    number_column,
    one_line_errors,
    parse_rate,
    table,
    text_column,
)
from proxy.config import Settings, load_settings
from proxy.control.admin_client import call_admin
from proxy.control.promotion import PrimaryState
from proxy.errors import ShadowdiffError

DEFAULT_ADMIN_URL = "http://127.0.0.1:8900"
NOT_READY, CANNOT_TELL = NO, ERROR
DEFAULTS = Criteria()
TERMINAL_TREND = 6
"""Buckets of the trend sparkline in a terminal (the web page draws all of them)."""
MAX_FINDINGS = 10
"""Finding fields listed per service under its endpoints; the JSON report has them all."""

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        envvar="SHADOWDIFF_DATABASE_URL", metavar="URL", help="The store (default sqlite+aiosqlite:///./shadowdiff.db)."
    ),
]
Config = Annotated[
    Path | None,
    typer.Option(envvar="SHADOWDIFF_CONFIG", metavar="FILE", help="TOML file: services, noise thresholds."),
]
Service = Annotated[str | None, typer.Option(metavar="SERVICE", help="Only this service.")]
Since = Annotated[
    str | None,
    typer.Option(
        metavar="WHEN", help="Window start: 15m, 1h, 7d, an ISO time, or all (default: each service's last promotion)."
    ),
]
Rate = Annotated[float | None, typer.Option(parser=parse_rate, metavar="RATE")]
Run = Annotated[
    str | None,
    typer.Option(
        metavar="RUN", help="Which traffic: a replay run's id (shadowdiff replay prints it), or live (default: all)."
    ),
]

# The readiness criteria as flags (`check`, `replay --check`); unset ones come from the config's [readiness].
MinSamples = Annotated[
    int | None,
    typer.Option(min=0, metavar="N", help=f"Fewest compared exchanges [default: {DEFAULTS.min_samples}]."),
]
MaxDiffRate = Annotated[
    float | None,
    typer.Option(
        parser=parse_rate,
        metavar="RATE",
        help=f"Most exchanges with a finding (noise excluded), as 0.01 or 1% [default: {DEFAULTS.max_diff_rate:g}].",
    ),
]
MaxErrorRate = Annotated[
    float | None,
    typer.Option(
        parser=parse_rate,
        metavar="RATE",
        help=f"Most shadow errors, as 0.01 or 1% [default: {DEFAULTS.max_error_rate:g}].",
    ),
]
MaxP99Ratio = Annotated[
    float | None,
    typer.Option(min=0, metavar="RATIO", help=f"Most shadow p99 / primary p99 [default: {DEFAULTS.max_p99_ratio:g}]."),
]


def _criteria(base: Criteria, given: dict[str, float | None]) -> Criteria:
    """`base` with the criteria given as flags, validated as the config's [readiness] section is."""
    try:
        return Criteria.model_validate({**base.model_dump(), **{k: v for k, v in given.items() if v is not None}})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        hint = f"--{name.replace('_', '-')}"
        raise typer.BadParameter(f"{error['msg'].lower()}, not {given[name]}", param_hint=hint) from None


# ---------------------------------------------------------------- reading the store


def _settings(config: Path | None, database_url: str | None) -> Settings:
    return load_settings(config, overrides={"database_url": database_url})


def _require_store(database_url: str) -> None:
    """A missing SQLite file is a clear message, not a new empty store (Store.open would create one)."""
    url = async_url(database_url)
    if is_sqlite(url) and not is_memory(url) and url.database and not Path(url.database).exists():
        raise ShadowdiffError(f"no shadowdiff store at {url.database}: run `shadowdiff proxy` first")


async def _load(settings: Settings, window: Window, service: str | None, criteria: Criteria) -> Report:
    store = await Store.open(settings.database_url)
    try:
        state = PrimaryState(settings.services, store)
        await state.refresh()  # the promoted primaries, as the proxy sees them
        return await queries.load_report(
            store,
            window=window,
            criteria=criteria,
            noise=settings.noise,
            primaries=state.snapshot(),
            service=service,
            services=list(settings.services),
        )
    finally:
        await store.close()


def load(
    config: Path | None,
    database_url: str | None,
    since: str | None,
    service: str | None,
    criteria: Criteria,
    run: str | None = None,
) -> Report:
    """The report, with a spinner on stderr while the store is read."""
    settings = _settings(config, database_url)
    if service is not None and service not in settings.services:
        raise ShadowdiffError(f"unknown service {service!r}; known services: {', '.join(settings.services)}")
    _require_store(settings.database_url)
    window = window_of(since, datetime.now(UTC), run=run or None)
    with Console(stderr=True).status("Reading the shadowdiff store…"):
        return asyncio.run(_load(settings, window, service, criteria))


# ---------------------------------------------------------------- tables that fit 80 columns


@dataclass(frozen=True, slots=True)
class ServiceRow:
    """One service as the terminal shows it, from the report model (`report`) or the API's JSON (`status`)."""

    service: str
    primary: str
    samples: int
    diff: float | None
    noise: float | None
    errors: float | None
    p99_v1: float | None
    p99_v2: float | None
    trend: Trend
    traffic: bool
    ready: bool
    failures: tuple[str, ...]

    @classmethod
    def of(cls, s: ServiceSummary) -> ServiceRow:
        c = s.counts
        return cls(
            s.service,
            s.primary,
            c.samples,
            c.diff_rate,
            c.noise_rate,
            c.error_rate,
            s.latency.v1.p99,
            s.latency.v2.p99,
            s.trend,
            bool(c.total),
            s.readiness.ready,
            tuple(f.message for f in s.readiness.failures),
        )

    @classmethod
    def from_json(cls, s: dict[str, Any]) -> ServiceRow:
        counts, rates, latency, readiness = s["counts"], s["counts"]["rates"], s["latency"], s["readiness"]
        buckets = tuple(
            TrendBucket(datetime.fromisoformat(b["start"]), b["samples"], b["findings"])
            for b in s.get("trend", {}).get("buckets", ())
        )
        return cls(
            s["service"],
            s["primary"],
            counts["samples"],
            rates["diff"],
            rates.get("noise"),
            rates["shadow_error"],
            latency["v1"]["p99_ms"],
            latency["v2"]["p99_ms"],
            Trend(buckets),
            bool(counts["total"]),
            readiness["ready"],
            tuple(f["message"] for f in readiness["failures"]),
        )

    @property
    def verdict(self) -> str:
        if not self.traffic:
            return "[dim]no traffic[/dim]"
        return "[green]READY[/green]" if self.ready else "[red]NOT READY[/red]"


def services_table(rows: list[ServiceRow], title: str) -> Table:
    """Primary, rates, p99 of V1 and V2, the diff-rate trend and the verdict: 73 columns with the demo's services."""
    t = table(title)
    text_column(t, "service")
    text_column(t, "primary")
    for name in ("samples", "diff", "noise", "errors", "p99 V1/V2"):
        number_column(t, name)
    text_column(t, "trend")
    text_column(t, "verdict")
    for r in rows:
        t.add_row(
            r.service,
            r.primary,
            str(r.samples),
            fmt_pct(r.diff),
            fmt_pct(r.noise),
            fmt_pct(r.errors),
            f"{_ms(r.p99_v1)}/{_ms(r.p99_v2)}",
            _trend(r.trend),
            r.verdict,
        )
    return t


def failure_lines(rows: list[ServiceRow]) -> list[str]:
    """What keeps each service with traffic from being ready, one line per criterion."""
    return [f"[red]✗[/red] {r.service}: {message}" for r in rows if r.traffic for message in r.failures]


def endpoints_table(s: ServiceSummary) -> Table:
    """One service's endpoints, most severe first; an endpoint too long for its column wraps, whole."""
    t = table(f"{s.service}: endpoints, most severe first")
    text_column(t, "endpoint", ratio=1)
    for name in ("samples", "diff", "noise", "errors", "p99 V1/V2", "findings"):
        number_column(t, name)
    for e in s.endpoints:
        c = e.counts
        t.add_row(
            e.endpoint,
            str(c.samples),
            fmt_pct(c.diff_rate),
            fmt_pct(c.noise_rate),
            fmt_pct(c.error_rate),
            f"{_ms(e.latency.v1.p99)}/{_ms(e.latency.v2.p99)}",
            str(e.finding_fields),
        )
    return t


def finding_lines(s: ServiceSummary) -> list[str]:
    """The finding fields of a service, most frequent first, one line each (lines wrap; nothing is cut)."""
    found = sorted(
        ((e.endpoint, f) for e in s.endpoints for f in e.fields if f.verdict == Verdict.FINDING),
        key=lambda pair: (-pair[1].raw, pair[0], pair[1].path),
    )
    lines = [
        f"  [red]finding[/red] {endpoint}  [bold]{f.path}[/bold]  {', '.join(f.kinds)} ×{f.raw}"
        for endpoint, f in found[:MAX_FINDINGS]
    ]
    if len(found) > MAX_FINDINGS:
        lines.append(f"  … and {len(found) - MAX_FINDINGS} more finding fields (--format json lists them all)")
    return lines


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _trend(trend: Trend) -> str:
    return f"{trend.merged(TERMINAL_TREND).spark()} {trend.arrow}".strip() or "–"


def print_report(result: Report, out: Console) -> None:
    rows = [ServiceRow.of(s) for s in result.services]
    out.print(services_table(rows, f"shadowdiff: {window_text(result)} (latency in ms)"))
    for line in failure_lines(rows):
        out.print(line)
    for s in result.services:
        if s.endpoints:
            out.print()
            out.print(endpoints_table(s))
            for line in finding_lines(s):
                out.print(line)


# ---------------------------------------------------------------- commands

Format = Literal["table", "json", "markdown", "html"]


def report(
    service: Service = None,
    since: Since = None,
    format: Annotated[Format, choice_option("--format", "-f", help="table, json, markdown or html.")] = "table",
    out: Annotated[Path | None, typer.Option(metavar="FILE", help="Write to this file instead of stdout.")] = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
    run: Run = None,
) -> None:
    """The diff report per service and endpoint: rates, latency percentiles, findings and readiness."""
    with one_line_errors():
        result = load(config, database_url, since, service, _settings(config, database_url).readiness, run)
        if format == "table":
            if out is None:
                print_report(result, console())
            else:
                with out.open("w", encoding="utf-8") as file:
                    print_report(result, console(file=file))
        else:
            text = _render(result, format)
            if out is None:
                typer.echo(text, nl=False)
            else:
                out.write_text(text, encoding="utf-8")
        if out is not None:
            typer.echo(f"wrote {format} report to {out}", err=True)


def _render(result: Report, format: str) -> str:
    if format == "json":
        return render_json(result)
    if format == "markdown":
        return render_markdown(result)
    from proxy.review.web import render_report_html  # Jinja only when asked for

    return render_report_html(result)


def check(
    service: Service = None,
    since: Since = None,
    min_samples: MinSamples = None,
    max_diff_rate: MaxDiffRate = None,
    max_error_rate: MaxErrorRate = None,
    max_p99_ratio: MaxP99Ratio = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
    run: Run = None,
) -> None:
    """CI gate: exit 0 when V2 (the shadow) is ready to promote, 1 listing the failing criteria, 2 on errors.

    Criteria not given as flags come from the config file's [readiness] section (what the web overview uses).
    """
    code = gate(
        config,
        database_url,
        service=service,
        since=since,
        run=run,
        min_samples=min_samples,
        max_diff_rate=max_diff_rate,
        max_error_rate=max_error_rate,
        max_p99_ratio=max_p99_ratio,
    )
    if code:
        raise typer.Exit(code)


def gate(
    config: Path | None,
    database_url: str | None,
    *,
    service: str | None = None,
    since: str | None = None,
    run: str | None = None,
    min_samples: int | None = None,
    max_diff_rate: float | None = None,
    max_error_rate: float | None = None,
    max_p99_ratio: float | None = None,
) -> int:
    """`check`'s verdict printed, and its exit code (0 ready, 1 not ready, 2 cannot tell); `replay --check` too."""
    with one_line_errors(CANNOT_TELL):
        given = {
            "min_samples": min_samples,
            "max_diff_rate": max_diff_rate,
            "max_error_rate": max_error_rate,
            "max_p99_ratio": max_p99_ratio,
        }
        criteria = _criteria(_settings(config, database_url).readiness, given)
        result = load(config, database_url, since, service, criteria, run)
    judged = [s for s in result.services if s.service == service] if service else list(result.active)
    if not judged:
        which = "" if run is None else f" in run {run}"
        typer.echo("not ready: no exchanges recorded" + which + (f" since {since}" if since else ""))
        return NOT_READY
    failing = [s for s in judged if not s.readiness.ready]
    if failing:
        for s in failing:
            typer.echo(f"not ready: {s.service}: " + "; ".join(f.message for f in s.readiness.failures))
        return NOT_READY
    typer.echo(
        "ready: "
        + "; ".join(
            f"{s.service} ({s.counts.samples} samples, diff {fmt_pct(s.counts.diff_rate)}, "
            f"errors {fmt_pct(s.counts.error_rate)}, p99 {fmt_ratio(s.latency.ratio('p99'))})"
            for s in judged
        )
    )
    return 0


def status(
    admin_url: Annotated[
        str, typer.Option(envvar="SHADOWDIFF_ADMIN_URL", metavar="URL", help="The admin plane.")
    ] = DEFAULT_ADMIN_URL,
    since: Since = None,
    format: Annotated[Literal["table", "json"], choice_option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """Each service's primary, traffic and readiness, from a running admin plane."""
    with Console(stderr=True).status(f"Asking {admin_url}…"):
        data = _get(admin_url, "/api/v1/services", {"since": since} if since else {})
    if format == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    rows = [ServiceRow.from_json(s) for s in data.get("services", [])]
    out = console()
    out.print(services_table(rows, f"shadowdiff at {admin_url} (latency in ms)"))
    for line in failure_lines(rows):
        out.print(line)


def _get(admin_url: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    try:
        return call_admin("GET", admin_url, path, params=params, timeout=30)
    except ShadowdiffError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add `report`, `check` and `status` to the `shadowdiff` command line."""
    app.command()(report)
    app.command()(check)
    app.command()(status)
