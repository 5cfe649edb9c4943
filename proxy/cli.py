"""The `shadowdiff` command line: run V1, V2, the proxy or the whole demo stack; seed; promote and roll back.

Every flag also reads a SHADOWDIFF_* environment variable. Failures are one line on stderr and exit code 2
(`proxy.cli_common`, which every command shares).
"""

from __future__ import annotations

import getpass
import importlib
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from proxy.cli_common import choice_option, confirm, fail, new_app, one_line_errors
from proxy.control.admin_client import call_admin
from proxy.errors import ShadowdiffError

app = new_app("shadowdiff: mirror traffic to V1 and V2, diff the responses, promote V2 per service.")

ADMIN_URL = "http://127.0.0.1:8900"
LEGACY_DATABASE_URL = "sqlite:///./legacy.db"
V2_DATABASE_URL = "sqlite+aiosqlite:///./v2.db"
STORE_URL = "sqlite+aiosqlite:///./shadowdiff.db"


LogLevel = Annotated[
    Literal["critical", "error", "warning", "info", "debug"],
    choice_option(envvar="SHADOWDIFF_LOG_LEVEL", help="How much the app logs."),
]


# -- the two apps -----------------------------------------------------------------------------------------------------


def _serve_app(asgi_app: Any, host: str, port: int, log_level: str, name: str) -> None:
    import uvicorn

    from proxy.runtime.server import bind, url_of

    sock = bind(host, port)
    typer.echo(f"{name} on {url_of(sock)}", err=True)
    config = uvicorn.Config(asgi_app, http="httptools", log_level=log_level, access_log=False, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


@app.command()
def legacy(
    host: Annotated[str, typer.Option(envvar="SHADOWDIFF_LEGACY_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SHADOWDIFF_LEGACY_PORT", help="Port to listen on.")] = 8001,
    database_url: Annotated[
        str, typer.Option(envvar="SHADOWDIFF_LEGACY_DATABASE_URL", help="V1's SQLite database.")
    ] = LEGACY_DATABASE_URL,
    log_level: LogLevel = "info",
) -> None:
    """Run V1, the legacy app."""
    with one_line_errors():
        from legacy_app.app import create_app
        from legacy_app.settings import LegacySettings

        settings = LegacySettings(database_url=database_url, log_level=log_level)
        _serve_app(create_app(settings), host, port, log_level, "V1 (legacy)")


@app.command()
def v2(
    host: Annotated[str, typer.Option(envvar="SHADOWDIFF_V2_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SHADOWDIFF_V2_PORT", help="Port to listen on.")] = 8002,
    database_url: Annotated[
        str, typer.Option(envvar="SHADOWDIFF_V2_DATABASE_URL", help="V2's database (SQLite or PostgreSQL).")
    ] = V2_DATABASE_URL,
    redis_url: Annotated[
        str | None, typer.Option(envvar="SHADOWDIFF_V2_REDIS_URL", help="Redis for V2's cache (default: in memory).")
    ] = None,
    log_level: LogLevel = "info",
) -> None:
    """Run V2, the new app."""
    with one_line_errors():
        from pydantic import ValidationError

        from v2_app.app import create_app
        from v2_app.settings import V2Settings

        try:
            settings = V2Settings(database_url=database_url, redis_url=redis_url, log_level=log_level)
        except ValidationError as exc:
            fail("; ".join(f"V2 {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        _serve_app(create_app(settings), host, port, log_level, "V2")


@app.command()
def seed(
    legacy_database_url: Annotated[
        str, typer.Option(envvar="SHADOWDIFF_LEGACY_DATABASE_URL", help="V1's SQLite database.")
    ] = LEGACY_DATABASE_URL,
    v2_database_url: Annotated[str, typer.Option(envvar="SHADOWDIFF_V2_DATABASE_URL", help="V2's database.")] = (
        V2_DATABASE_URL
    ),
) -> None:
    """Load the demo catalogue into both apps' databases (does nothing where products already exist)."""
    from proxy.runtime.stack import seed_both

    with one_line_errors():
        for line in seed_both(legacy_database_url, v2_database_url):
            typer.echo(line)


# -- the proxy --------------------------------------------------------------------------------------------------------


@app.command()
def proxy(
    v1: Annotated[str | None, typer.Option("--v1", envvar="SHADOWDIFF_V1_URL", help="V1's base URL.")] = None,
    v2: Annotated[str | None, typer.Option("--v2", envvar="SHADOWDIFF_V2_URL", help="V2's base URL.")] = None,
    secondary: Annotated[
        str | None,
        typer.Option(envvar="SHADOWDIFF_SECONDARY_URL", help="A second copy of the primary's app, to measure noise."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(envvar="SHADOWDIFF_CONFIG", help="TOML file (see shadowdiff.example.toml).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(envvar="SHADOWDIFF_HOST", help="Proxy interface (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(envvar="SHADOWDIFF_PORT", help="Proxy port (default 8000).")] = None,
    admin_host: Annotated[
        str | None, typer.Option(envvar="SHADOWDIFF_ADMIN_HOST", help="Admin interface (default 127.0.0.1).")
    ] = None,
    admin_port: Annotated[
        int | None, typer.Option(envvar="SHADOWDIFF_ADMIN_PORT", help="Admin port (default 8900).")
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="SHADOWDIFF_ADMIN_TOKEN", help="Bearer token for promote/rollback (required off loopback)."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="SHADOWDIFF_DATABASE_URL", help="The store (default sqlite+aiosqlite:///./shadowdiff.db)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(envvar="SHADOWDIFF_WORKERS", help="Proxy worker processes sharing the port (default 1)."),
    ] = None,
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug"] | None,
        choice_option(envvar="SHADOWDIFF_LOG_LEVEL", help="How much the proxy logs (default info)."),
    ] = None,
    capture: Annotated[
        Path | None,
        typer.Option(
            envvar="SHADOWDIFF_CAPTURE__DIR",
            help="Record client requests (secrets redacted) to gzip'd JSON Lines in this folder, for `replay`.",
        ),
    ] = None,
) -> None:
    """Run the proxy and its admin plane in front of any two HTTP services."""
    with one_line_errors():
        from proxy.config import load_settings
        from proxy.runtime.launch import run

        overrides = {
            "v1_url": v1,
            "v2_url": v2,
            "secondary_url": secondary,
            "host": host,
            "port": port,
            "admin_host": admin_host,
            "admin_port": admin_port,
            "admin_token": admin_token,
            "database_url": database_url,
            "workers": workers,
            "log_level": log_level,
        }
        settings = load_settings(config, overrides)
        if capture is not None:  # one key of the [capture] section: the file's other keys stay
            recording = settings.capture.model_copy(update={"dir": str(capture)})
            settings = settings.model_copy(update={"capture": recording})
        run(settings)


# -- the demo stack ---------------------------------------------------------------------------------------------------


@app.command()
def up(
    secondary: Annotated[
        bool,
        typer.Option(
            "--secondary/--no-secondary",
            envvar="SHADOWDIFF_SECONDARY",
            help="Also run a second V1 (on a copy of its database) to measure noise.",
        ),
    ] = True,
    port: Annotated[int, typer.Option(envvar="SHADOWDIFF_PORT", help="Proxy port.")] = 8000,
    admin_port: Annotated[int, typer.Option(envvar="SHADOWDIFF_ADMIN_PORT", help="Admin port.")] = 8900,
    legacy_port: Annotated[int, typer.Option(envvar="SHADOWDIFF_LEGACY_PORT", help="V1 port.")] = 8001,
    v2_port: Annotated[int, typer.Option(envvar="SHADOWDIFF_V2_PORT", help="V2 port.")] = 8002,
    secondary_port: Annotated[int, typer.Option(envvar="SHADOWDIFF_SECONDARY_PORT", help="Secondary V1 port.")] = 8003,
    legacy_database_url: Annotated[
        str, typer.Option(envvar="SHADOWDIFF_LEGACY_DATABASE_URL", help="V1's SQLite database.")
    ] = LEGACY_DATABASE_URL,
    v2_database_url: Annotated[str, typer.Option(envvar="SHADOWDIFF_V2_DATABASE_URL", help="V2's database.")] = (
        V2_DATABASE_URL
    ),
    database_url: Annotated[str, typer.Option(envvar="SHADOWDIFF_DATABASE_URL", help="The proxy's store.")] = STORE_URL,
    config: Annotated[Path | None, typer.Option(envvar="SHADOWDIFF_CONFIG", help="TOML file for the proxy.")] = None,
    workers: Annotated[int, typer.Option(envvar="SHADOWDIFF_WORKERS", help="Proxy worker processes.")] = 1,
    ready_timeout: Annotated[
        float, typer.Option(envvar="SHADOWDIFF_READY_TIMEOUT", help="Seconds to wait for everything to be healthy.")
    ] = 60.0,
    log_dir: Annotated[
        Path, typer.Option(envvar="SHADOWDIFF_LOG_DIR", help="Where V1, V2 and the secondary write their logs.")
    ] = Path("logs"),
    verbose: Annotated[
        bool, typer.Option("--verbose", envvar="SHADOWDIFF_VERBOSE", help="Show V1's and V2's logs here instead.")
    ] = False,
) -> None:
    """Seed the demo databases, start V1, V2, a secondary V1, the proxy and the admin plane; Ctrl-C stops all."""
    from proxy.runtime.stack import ChildSpec, Stack, banner, cli_argv, cli_name, copy_sqlite, seed_both, sqlite_path

    with one_line_errors():
        for line in seed_both(legacy_database_url, v2_database_url):
            typer.echo(line)
        logs = {} if verbose else {name: log_dir / f"{name}.log" for name in ("v1", "v2", "secondary")}
        local = "http://127.0.0.1"
        v1_url, v2_url, secondary_url = f"{local}:{legacy_port}", f"{local}:{v2_port}", f"{local}:{secondary_port}"
        legacy_args = ("legacy", "--port", str(legacy_port), "--database-url", legacy_database_url)
        children = [
            ChildSpec("v1", cli_argv(*legacy_args), (f"{v1_url}/health",), logs.get("v1")),
            ChildSpec(
                "v2",
                cli_argv("v2", "--port", str(v2_port), "--database-url", v2_database_url),
                (f"{v2_url}/health",),
                logs.get("v2"),
            ),
        ]
        proxy_args = ["proxy", "--v1", v1_url, "--v2", v2_url, "--port", str(port), "--admin-port", str(admin_port)]
        proxy_args += ["--database-url", database_url, "--workers", str(workers)]
        if config is not None:
            proxy_args += ["--config", str(config)]
        if secondary:
            # Its own copy of V1's database, taken now: same rows and ids as the primary, so only generated values
            # (order numbers, timestamps) differ. Sharing V1's file would apply every mirrored write twice.
            source = sqlite_path(legacy_database_url)
            copy = source.with_name(f"{source.stem}-secondary{source.suffix}")
            copy_sqlite(source, copy)
            secondary_args = ("legacy", "--port", str(secondary_port), "--database-url", f"sqlite:///{copy}")
            children.append(
                ChildSpec("secondary", cli_argv(*secondary_args), (f"{secondary_url}/health",), logs.get("secondary"))
            )
            proxy_args += ["--secondary", secondary_url]
        # Ready without traffic through the proxy (it would be mirrored and compared): its admin plane answers, and
        # its port accepts connections, which uvicorn opens only once the app has started.
        proxy_health = (f"{local}:{admin_port}/health", f"tcp://127.0.0.1:{port}")
        children.append(ChildSpec("proxy", cli_argv(*proxy_args), proxy_health))
        ready = banner(
            f"{local}:{port}",
            f"{local}:{admin_port}",
            v1_url,
            v2_url,
            secondary_url=secondary_url if secondary else None,
            logs={name: log for name, log in logs.items() if secondary or name != "secondary"},
            cli=cli_name(),
            status_args="" if admin_port == 8900 else f" --admin-url {local}:{admin_port}",
            report_args="" if database_url == STORE_URL else f" --database-url {database_url}",
        )
        Stack(children).run(ready_timeout=ready_timeout, banner=ready)


# -- promote and roll back --------------------------------------------------------------------------------------------

AdminUrl = Annotated[str, typer.Option(envvar="SHADOWDIFF_ADMIN_URL", help="The admin API.")]
Token = Annotated[
    str | None, typer.Option("--token", envvar="SHADOWDIFF_ADMIN_TOKEN", help="The admin token, if it has one.")
]
Reason = Annotated[str, typer.Option(envvar="SHADOWDIFF_REASON", help="Why: kept in the audit trail.")]
Actor = Annotated[
    str | None, typer.Option(envvar="SHADOWDIFF_ACTOR", help="Who: kept in the audit trail (default user@host).")
]


@app.command()
def promote(
    service: Annotated[str, typer.Argument(help="orders, products, ai, default, or one from your config.")],
    to: Annotated[Literal["v1", "v2"], choice_option(envvar="SHADOWDIFF_PROMOTE_TO", help="The new primary.")] = "v2",
    reason: Reason = "",
    force: Annotated[
        bool, typer.Option("--force", help="Promote without asking, even when the report says NOT READY.")
    ] = False,
    admin_url: AdminUrl = ADMIN_URL,
    token: Token = None,
    actor: Actor = None,
) -> None:
    """Make V2 (or V1) the primary of SERVICE now, on every worker and replica; V1 becomes the shadow.

    When the report says SERVICE is NOT READY, asks first (or refuses without a terminal, unless --force).
    """
    _confirm_readiness(admin_url, service, to, force)
    body = {"to": to, "reason": reason, "actor": actor or _whoami()}
    typer.echo(_describe(_post(admin_url, f"/api/services/{service}/promote", body, token)))


def _confirm_readiness(admin_url: str, service: str, to: str, force: bool) -> None:
    """Ask before making V2 the primary while the readiness gate refuses it (or cannot judge it)."""
    if force:
        return
    try:
        info = call_admin("GET", admin_url, f"/api/v1/services/{service}", timeout=30)
    except ShadowdiffError as exc:
        fail(str(exc))
    if to != "v2" or info.get("shadow") != to:
        return  # back to V1 is a rollback, and promoting the primary changes nothing: neither asks
    readiness = info.get("readiness", {})
    if readiness.get("ready"):
        return
    why = "; ".join(f["message"] for f in readiness.get("failures", ())) or "no verdict"
    confirm(
        f"{service} is NOT READY ({why}). Make {to} its primary anyway?",
        force=force,
        refusal=f"{service} is NOT READY ({why}); not promoted. Pass --force to promote anyway",
    )


@app.command()
def rollback(
    service: Annotated[str, typer.Argument(help="The service to put back on V1.")],
    reason: Reason = "",
    admin_url: AdminUrl = ADMIN_URL,
    token: Token = None,
    actor: Actor = None,
) -> None:
    """Make V1 the primary of SERVICE again, now; running it twice is safe (the second says nothing changed)."""
    body = {"reason": reason, "actor": actor or _whoami()}
    result = _post(admin_url, f"/api/services/{service}/rollback", body, token)
    if not result["changed"]:
        typer.echo(f"{result['service']['name']}: primary is already v1; nothing to roll back")
        return
    typer.echo(_describe(result))


def _whoami() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _post(admin_url: str, path: str, body: dict[str, Any], token: str | None) -> dict[str, Any]:
    try:
        return call_admin("POST", admin_url, path, json={k: v for k, v in body.items() if v}, token=token)
    except ShadowdiffError as exc:
        fail(str(exc))


def _describe(result: dict[str, Any]) -> str:
    service = result["service"]
    if not result["changed"]:
        return f"{service['name']}: primary is already {service['primary']}; nothing changed"
    record = result["promotion"]
    return (
        f"{service['name']}: primary is now {service['primary']} (was {result['previous']}); "
        f"{service['shadow']} is the shadow. Recorded #{record['id']} by {record['actor']} at {record['at']}"
    )


# -- commands other modules add ---------------------------------------------------------------------------------------


def _register_other_commands() -> None:
    """`report`, `check` and `status` live in proxy/review/cli_report.py, `replay` in proxy/replay/command.py."""
    try:
        module = importlib.import_module("proxy.review.cli_report")
    except ModuleNotFoundError as exc:
        if exc.name == "proxy.review.cli_report":
            return
        typer.echo(f"shadowdiff: report commands unavailable: {exc}", err=True)
        return
    except ImportError as exc:
        typer.echo(f"shadowdiff: report commands unavailable: {exc}", err=True)
        return
    module.register(app)
    importlib.import_module("proxy.replay.command").register(app)  # `replay` (proxy/replay/)


_register_other_commands()


def main() -> None:
    app(prog_name="shadowdiff")


if __name__ == "__main__":
    main()
