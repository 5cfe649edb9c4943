"""`shadowdiff report`, `check` and `status`: the diff report in a terminal or a file, a CI readiness gate, live state.

`report` and `check` read the store directly (no proxy needs to run); `status` asks a running admin plane.
`check` exits 0 when ready, 1 when not (listing the failing criteria), 2 when it cannot tell (no store, bad input).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from diffs.readiness import Criteria
from diffs.report import Report, ServiceSummary, Verdict, Window, parse_since
from diffs.report_formats import fmt_ms, fmt_pct, fmt_ratio, fmt_speedup, render_json, render_markdown, window_text
from diffs.storage import Store, queries
from diffs.storage.urls import async_url, is_memory, is_sqlite
from proxy.config import Settings, load_settings
from proxy.control.admin_client import call_admin
from proxy.control.promotion import PrimaryState
from proxy.errors import ShadowdiffError

FORMATS = ("table", "json", "markdown", "html")
DEFAULT_ADMIN_URL = "http://127.0.0.1:8900"
NOT_READY, CANNOT_TELL = 1, 2
DEFAULTS = Criteria()
WIDE = 150

DatabaseUrl = Annotated[
    str | None,
    typer.Option(envvar="SHADOWDIFF_DATABASE_URL", help="The store (default sqlite+aiosqlite:///./shadowdiff.db)."),
]
Config = Annotated[Path | None, typer.Option(envvar="SHADOWDIFF_CONFIG", help="TOML file: services, noise thresholds.")]
Service = Annotated[str | None, typer.Option(help="Only this service.")]
Since = Annotated[str | None, typer.Option(help="Window start: 15m, 1h, 7d or an ISO time (default: everything).")]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"shadowdiff: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _one_line_errors(code: int = 1) -> Iterator[None]:
    """Our errors and bad values are one line on stderr, never a traceback."""
    try:
        yield
    except ShadowdiffError as exc:
        _fail(str(exc), code)
    except ValueError as exc:
        _fail(str(exc), code)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _rate(value: str | None) -> float | None:
    """A rate as a fraction (0.01) or a percentage ("1%")."""
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a rate: use 0.01 or 1%") from None
    if number < 0:
        raise typer.BadParameter(f"{value!r} is negative")
    return number


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
    config: Path | None, database_url: str | None, since: str | None, service: str | None, criteria: Criteria
) -> Report:
    """The report, with a spinner on stderr while the store is read."""
    settings = _settings(config, database_url)
    if service is not None and service not in settings.services:
        raise ShadowdiffError(f"unknown service {service!r}; known services: {', '.join(settings.services)}")
    _require_store(settings.database_url)
    window = Window(since=parse_since(since, datetime.now(UTC)) if since else None)
    with Console(stderr=True).status("Reading the shadowdiff store…"):
        return asyncio.run(_load(settings, window, service, criteria))


# ---------------------------------------------------------------- rich tables


def _verdict(s: ServiceSummary) -> str:
    if not s.counts.total:
        return "[dim]no traffic[/dim]"
    return "[green]READY[/green]" if s.readiness.ready else "[red]NOT READY[/red]"


def services_table(report: Report) -> Table:
    table = Table(title=f"shadowdiff: {window_text(report)}", title_justify="left")
    for name in ("service", "primary", "mirrored", "samples", "match", "diff", "shadow err"):
        table.add_column(name, justify="left" if name in ("service", "primary") else "right")
    for name in ("p50 P/S ms", "p99 P/S ms", "p99 ratio", "V2 vs V1", "verdict"):
        table.add_column(name, justify="left" if name == "verdict" else "right")
    for s in report.services:
        c, lat = s.counts, s.latency
        table.add_row(
            s.service,
            s.primary,
            str(c.mirrored),
            str(c.samples),
            fmt_pct(c.match_rate),
            fmt_pct(c.diff_rate),
            fmt_pct(c.error_rate),
            f"{_num(lat.primary.p50)} / {_num(lat.shadow.p50)}",
            f"{_num(lat.primary.p99)} / {_num(lat.shadow.p99)}",
            fmt_ratio(lat.ratio("p99")),
            fmt_speedup(s.v2_speedup),
            _verdict(s),
        )
    return table


def failure_lines(report: Report) -> list[str]:
    """What keeps each service with traffic from being ready, one line per criterion."""
    return [f"[red]✗[/red] {s.service}: {f.message}" for s in report.active for f in s.readiness.failures]


def endpoints_table(report: Report) -> Table:
    table = Table(title="endpoints", title_justify="left")
    for name in ("service", "endpoint", "samples", "match", "diff", "shadow err", "p99 P/S ms", "findings"):
        table.add_column(name, justify="left" if name in ("service", "endpoint", "findings") else "right")
    for s in report.services:
        for e in s.endpoints:
            findings = [f.path for f in e.fields if f.verdict == Verdict.FINDING]
            table.add_row(
                s.service,
                e.endpoint,
                str(e.counts.samples),
                fmt_pct(e.counts.match_rate),
                fmt_pct(e.counts.diff_rate),
                fmt_pct(e.counts.error_rate),
                f"{_num(e.latency.primary.p99)} / {_num(e.latency.shadow.p99)}",
                ", ".join(findings[:5]) + (f" (+{len(findings) - 5})" if len(findings) > 5 else ""),
            )
    return table


def _num(value: float | None) -> str:
    return fmt_ms(value).removesuffix(" ms")


# ---------------------------------------------------------------- commands


def report(
    service: Service = None,
    since: Since = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json | markdown | html.")] = "table",
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
) -> None:
    """The diff report per service and endpoint: rates, latency percentiles, findings and readiness."""
    if format not in FORMATS:
        raise typer.BadParameter(f"{format!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    with _one_line_errors():
        readiness = _settings(config, database_url).readiness
        result = load(config, database_url, since, service, Criteria(**readiness.model_dump()))
        if format == "table":
            console = Console(file=out.open("w", encoding="utf-8"), width=WIDE) if out else _console()
            with contextlib.closing(console.file) if out else contextlib.nullcontext():
                console.print(services_table(result))
                for line in failure_lines(result):
                    console.print(line)
                if any(s.endpoints for s in result.services):
                    console.print(endpoints_table(result))
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
    min_samples: Annotated[
        int | None, typer.Option(min=0, help=f"Fewest compared exchanges [default: {DEFAULTS.min_samples}].")
    ] = None,
    max_diff_rate: Annotated[
        str | None,
        typer.Option(
            help=f"Most exchanges with a finding (noise excluded): 0.01 or 1% [default: {DEFAULTS.max_diff_rate}]."
        ),
    ] = None,
    max_error_rate: Annotated[
        str | None, typer.Option(help=f"Most shadow errors: 0.01 or 1% [default: {DEFAULTS.max_error_rate}].")
    ] = None,
    max_p99_ratio: Annotated[
        float | None,
        typer.Option(min=0, help=f"Most shadow p99 / primary p99 [default: {DEFAULTS.max_p99_ratio}]."),
    ] = None,
    database_url: DatabaseUrl = None,
    config: Config = None,
) -> None:
    """CI gate: exit 0 when V2 (the shadow) is ready to promote, 1 listing the failing criteria, 2 on errors.

    Criteria not given as flags come from the config file's [readiness] section (what the web overview uses).
    """
    with _one_line_errors(CANNOT_TELL):
        base = _settings(config, database_url).readiness
        criteria = Criteria(
            min_samples=base.min_samples if min_samples is None else min_samples,
            max_diff_rate=base.max_diff_rate if max_diff_rate is None else _rate(max_diff_rate) or 0.0,
            max_error_rate=base.max_error_rate if max_error_rate is None else _rate(max_error_rate) or 0.0,
            max_p99_ratio=base.max_p99_ratio if max_p99_ratio is None else max_p99_ratio,
        )
        result = load(config, database_url, since, service, criteria)
    judged = [s for s in result.services if s.service == service] if service else list(result.active)
    if not judged:
        typer.echo("not ready: no exchanges recorded" + (f" since {since}" if since else ""))
        raise typer.Exit(NOT_READY)
    failing = [s for s in judged if not s.readiness.ready]
    if failing:
        for s in failing:
            typer.echo(f"not ready: {s.service}: " + "; ".join(f.message for f in s.readiness.failures))
        raise typer.Exit(NOT_READY)
    typer.echo(
        "ready: "
        + "; ".join(
            f"{s.service} ({s.counts.samples} samples, diff {fmt_pct(s.counts.diff_rate)}, "
            f"errors {fmt_pct(s.counts.error_rate)}, p99 {fmt_ratio(s.latency.ratio('p99'))})"
            for s in judged
        )
    )


def status(
    admin_url: Annotated[str, typer.Option(envvar="SHADOWDIFF_ADMIN_URL", help="The admin plane.")] = DEFAULT_ADMIN_URL,
    since: Since = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | json.")] = "table",
) -> None:
    """Each service's primary, traffic and readiness, from a running admin plane."""
    if format not in ("table", "json"):
        raise typer.BadParameter(f"{format!r} is not table or json", param_hint="--format")
    with Console(stderr=True).status(f"Asking {admin_url}…"):
        data = _get(admin_url, "/api/v1/services", {"since": since} if since else {})
    if format == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"shadowdiff at {admin_url}", title_justify="left")
    for name in ("service", "primary", "shadow", "mirrored", "samples", "diff", "shadow err", "p99 ratio", "readiness"):
        table.add_column(name, justify="right" if name in ("mirrored", "samples", "diff", "shadow err") else "left")
    failures = []
    for s in data.get("services", []):
        counts, readiness = s["counts"], s["readiness"]
        if not counts["total"]:
            verdict = "[dim]no traffic[/dim]"
        elif readiness["ready"]:
            verdict = "[green]READY[/green]"
        else:
            verdict = "[red]NOT READY[/red]"
            failures += [f"[red]✗[/red] {s['service']}: {f['message']}" for f in readiness["failures"]]
        table.add_row(
            s["service"],
            s["primary"],
            s["shadow"],
            str(counts["mirrored"]),
            str(counts["samples"]),
            fmt_pct(counts["rates"]["diff"]),
            fmt_pct(counts["rates"]["shadow_error"]),
            fmt_ratio(s["latency"]["ratio"]["p99"]),
            verdict,
        )
    console = _console()
    console.print(table)
    for line in failures:
        console.print(line)


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, WIDE)  # piped or redirected: don't squeeze to 80 columns
    return console


def _get(admin_url: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    try:
        return call_admin("GET", admin_url, path, params=params, timeout=30)
    except ShadowdiffError as exc:
        _fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add `report`, `check` and `status` to the `shadowdiff` command line."""
    app.command()(report)
    app.command()(check)
    app.command()(status)
