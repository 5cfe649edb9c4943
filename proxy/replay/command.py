"""`shadowdiff replay SOURCE --v1 URL --v2 URL [--check]`: recorded requests through the data plane, into the store.

Exit codes: 0 done (and, with --check, ready); 1 --check found V2 not ready; 2 unusable input (bad entries, an
unknown format, nothing to replay) or an error; 130 stopped by Ctrl-C (what was replayed is stored and valid).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from proxy.cli_common import INTERRUPTED, fail
from proxy.errors import ShadowdiffError
from proxy.review.cli_report import MaxDiffRate, MaxErrorRate, MaxP99Ratio, MinSamples, gate

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def new_run_id(now: datetime | None = None) -> str:
    """`replay-20261130T101500Z-3f9a`: sortable by time, unique enough to tell two replays of a minute apart."""
    return f"replay-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The data plane's warnings to stderr, not its info lines: the replay's own output is the progress."""
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        yield
    finally:
        structlog.reset_defaults()


def replay(
    source: Annotated[
        str, typer.Argument(help="A capture file or folder, a HAR 1.2 file, a GoReplay file, or 'store'.")
    ],
    v1: Annotated[
        str | None, typer.Option("--v1", envvar="SHADOWDIFF_V1_URL", metavar="URL", help="V1's base URL.")
    ] = None,
    v2: Annotated[
        str | None, typer.Option("--v2", envvar="SHADOWDIFF_V2_URL", metavar="URL", help="V2's base URL.")
    ] = None,
    secondary: Annotated[
        str | None,
        typer.Option(
            envvar="SHADOWDIFF_SECONDARY_URL", metavar="URL", help="A second copy of the primary's app (noise)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(envvar="SHADOWDIFF_CONFIG", metavar="FILE", help="TOML file (see shadowdiff.example.toml)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="SHADOWDIFF_DATABASE_URL",
            metavar="URL",
            help="The store (default sqlite+aiosqlite:///./shadowdiff.db).",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, metavar="N", help="Sessions in flight at once.")] = 8,
    rate: Annotated[
        float | None, typer.Option(min=0.001, metavar="N", help="At most this many requests per second.")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(min=0.001, metavar="X", help="Keep the recorded pacing, this many times faster (1: as recorded)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="With 'store': exchanges since 15m, 1h, 7d or an ISO time (default: all)."),
    ] = None,
    filter: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="SERVICE|ENDPOINT",
            help="Only this service, or endpoint ('GET /api/orders/{id}'); repeatable.",
        ),
    ] = None,
    set_header: Annotated[
        list[str] | None,
        typer.Option(
            "--set-header",
            metavar="'NAME: VALUE'",
            help="'Name: value' on every request, replacing the recorded one; repeatable.",
        ),
    ] = None,
    session_header: Annotated[
        str | None,
        typer.Option(metavar="HEADER", help="Requests with the same value of this header are one session (in order)."),
    ] = None,
    session_cookie: Annotated[str | None, typer.Option(metavar="COOKIE", help="Or of this cookie.")] = None,
    run_id: Annotated[
        str | None, typer.Option(metavar="ID", help="Label of this replay in the store (default: replay-TIME-HEX).")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Then exit like `shadowdiff check` on this replay.")] = False,
    min_samples: MinSamples = None,
    max_diff_rate: MaxDiffRate = None,
    max_error_rate: MaxErrorRate = None,
    max_p99_ratio: MaxP99Ratio = None,
    progress_every: Annotated[
        float,
        typer.Option(min=0.01, metavar="SECONDS", help="Seconds between progress lines when stderr is not a terminal."),
    ] = 5.0,
) -> None:
    """Replay recorded requests to V1 and V2 through the proxy's own data plane; the exchanges land in the store.

    Requests of one session go in recorded order, each after the previous one was answered. Exit codes: 0 done
    (with --check: ready), 1 not ready, 2 unusable input or an error, 130 interrupted.
    """
    from diffs.report import LIVE, parse_since
    from proxy.config import load_settings
    from proxy.replay.engine import Options, Tally
    from proxy.replay.requests import parse_set_header

    if rate is not None and speed is not None:
        fail("--rate and --speed do not go together: --rate caps requests per second, --speed keeps pacing")
    label = run_id or new_run_id()
    if not _RUN_ID.fullmatch(label) or label == LIVE:
        fail(f"--run-id {label!r}: up to 64 letters, digits and . _ : - (and not {LIVE!r})")
    try:
        headers = tuple(parse_set_header(h) for h in set_header or ())
        window_start = parse_since(since, datetime.now(UTC)) if since else None
        overrides = {"v1_url": v1, "v2_url": v2, "secondary_url": secondary, "database_url": database_url}
        settings = load_settings(config, overrides)
    except (ShadowdiffError, ValueError) as exc:
        fail(str(exc))
    options = Options(
        run_id=label,
        concurrency=concurrency,
        rate=rate,
        speed=speed,
        since=window_start,
        filters=tuple(filter or ()),
        set_headers=headers,
        session_header=session_header,
        session_cookie=session_cookie,
    )
    tally = Tally()
    try:
        with _quiet_logs():
            _run(settings, source, options, tally, progress_every)
    except ShadowdiffError as exc:
        fail(str(exc))
    from proxy.replay.progress import summary

    for line in summary(tally, label):
        typer.echo(line)
    if tally.interrupted:
        raise typer.Exit(INTERRUPTED)
    if not tally.total:
        fail(f"{source}: nothing to replay")
    code = 0
    if check:
        code = gate(
            config,
            settings.database_url,
            run=label,
            min_samples=min_samples,
            max_diff_rate=max_diff_rate,
            max_error_rate=max_error_rate,
            max_p99_ratio=max_p99_ratio,
        )
    if tally.bad:
        fail(f"{tally.bad} entries of {source} could not be replayed (see above); the others were")
    if code:
        raise typer.Exit(code)


def _run(settings: Any, source: str, options: Any, tally: Any, every: float) -> None:
    from rich.console import Console

    from proxy.replay.engine import replay as run_replay
    from proxy.replay.progress import PlainView, RichView

    console = Console(stderr=True)
    view = RichView(console) if console.is_terminal else PlainView(sys.stderr, every)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.current_task()
        presses: list[int] = []

        def on_signal() -> None:
            presses.append(1)
            if len(presses) == 1:
                print("stopping: finishing the requests in flight (Ctrl-C again to cut them)", file=sys.stderr)
                stop.set()
            elif task is not None:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await run_replay(settings, source, options, view, stop, tally)
        except asyncio.CancelledError:
            tally.interrupted = True
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def register(app: typer.Typer) -> None:
    """Add `replay` to the `shadowdiff` command line."""
    app.command()(replay)
