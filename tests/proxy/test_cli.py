"""The `shadowdiff` CLI: help everywhere, promote/rollback against a real admin API, one-line errors, real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner, Result

from diffs.storage import Store
from proxy.cli import app
from proxy.config import load_settings
from proxy.control.admin import create_admin_app
from proxy.control.promotion import PrimaryState
from proxy.review.web import admin_routes
from tests.proxy.report_seed import report_app
from tests.servers import free_port, run_server

SHADOWDIFF = str(Path(sys.executable).with_name("shadowdiff"))
TOKEN = "cli-test-token"
COMMANDS = ["legacy", "v2", "seed", "proxy", "up", "promote", "rollback"]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, prog_name="shadowdiff")


def clean_env() -> dict[str, str]:
    """This process's environment without settings that would leak into a child."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SHADOWDIFF_", "USE_V2_", "PROMETHEUS_"))}


def one_line(result: Result) -> str:
    """The error a command printed: exactly one line on stderr, and nothing that looks like a traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# -- help --------------------------------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_names_its_environment_variables(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: shadowdiff {command}" in result.stdout
    assert "SHADOWDIFF_" in result.stdout


def test_every_option_of_every_command_reads_a_shadowdiff_variable() -> None:
    import typer.main

    group = typer.main.get_command(app)
    checked = 0
    for name in COMMANDS:
        for param in group.commands[name].params:  # type: ignore[attr-defined]
            if param.param_type_name == "option" and param.name not in ("help", "force"):  # --force: never by accident
                assert isinstance(param.envvar, str) and param.envvar.startswith("SHADOWDIFF_"), (name, param.name)
                checked += 1
    assert checked >= 30


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert result.exit_code == 0 and "Usage: shadowdiff" in result.stdout


def registered() -> dict[str, Any]:
    import typer.main

    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["", *sorted(registered())])
def test_help_keeps_every_word_at_80_columns(command: str) -> None:
    """Issue 13: rich markup swallowed `[readiness]` and every `[default: ...]`, showed {service} and `<bool>`.

    Every registered command is rendered, so commands added later are held to the same rules.
    """
    result = invoke(*([command] if command else []), "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    flat = " ".join(out.split())
    usage = out.splitlines()[0]
    assert usage.startswith(f"Usage: shadowdiff {command}".rstrip()) and "{" not in usage
    assert not re.search(r"<\w[\w ]*>", out), "typer's <type> labels"
    assert re.search(r"--help\s+Show this message and exit\.", out)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "..." not in out.replace("[ARGS]...", "")
    for line in out.splitlines():
        text = line.strip()
        if line.startswith("  ") and not line.startswith("   "):  # a term, its gap, then its help
            parts = re.split(r" {2,}", text, maxsplit=1)
            text = parts[1] if len(parts) > 1 else ""
        assert not re.search(r"\S {2,}(?!\[)\S", text), f"stray spaces in {line!r}"
    group = registered()
    if not command:
        for name, sub in group.items():
            assert " ".join(sub.get_short_help_str(limit=10_000).split()) in flat, name
        return
    sub = group[command]
    for text in [sub.help or "", *(getattr(p, "help", None) or "" for p in sub.params)]:
        for bracketed in re.findall(r"\[[^\]]+\]", text):
            assert " ".join(bracketed.split()) in flat, bracketed
    for param in sub.params:
        if param.param_type_name == "argument":
            assert str(param.name).upper() in usage
        elif param.show_default and param.default is not None and not isinstance(param.default, bool):
            assert f"default: {param.default}" in flat, param.name
        descriptor = getattr(param, "type_descriptor", None)
        if getattr(descriptor, "is_choice", False):
            assert descriptor.case_sensitive is False, f"--{param.name} must ignore case"


def test_check_help_names_its_config_section_and_defaults() -> None:
    flat = " ".join(invoke("check", "--help", env={"COLUMNS": "80"}).stdout.split())
    assert "come from the config file's [readiness] section" in flat
    assert "Fewest compared exchanges [default: 100]." in flat
    assert "Most shadow errors, as 0.01 or 1% [default: 0.01]." in flat


# -- promote and rollback against a real admin API ---------------------------------------------------------------------


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[str]:
    """A real admin plane over HTTP (token required; API, /api/v1 and report), on its own SQLite store."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}")
    settings = load_settings(overrides={"admin_token": TOKEN}, environ={})
    state = PrimaryState(settings.services, store)
    await state.start()
    try:
        routes = admin_routes(settings, store, state)
        app = create_admin_app(settings, state=state, registry=CollectorRegistry(), extra_routes=routes)
        async with run_server(app) as url:
            yield url
    finally:
        await state.aclose()
        await store.close()


async def ainvoke(*args: str, env: dict[str, str] | None = None) -> Result:
    # The admin server runs on this event loop; the CLI's blocking HTTP call must not.
    return await asyncio.to_thread(invoke, *args, env=env)


async def test_promote_then_rollback_print_the_new_state(admin: str) -> None:
    promoted = await ainvoke(
        "promote",
        "orders",
        "--to",
        "V2",
        "--reason",
        "clean for a week",
        "--force",
        "--admin-url",
        admin,
        "--token",
        TOKEN,
    )
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.startswith("orders: primary is now v2 (was v1); v1 is the shadow. Recorded #1 by ")

    again = await ainvoke("promote", "orders", "--admin-url", admin, "--token", TOKEN)  # --to defaults to v2
    assert again.exit_code == 0 and "orders: primary is already v2; nothing changed" in again.stdout

    rolled = await ainvoke(
        "rollback", "orders", "--reason", "500s", "--actor", "grace", "--admin-url", admin, "--token", TOKEN
    )
    assert rolled.exit_code == 0, rolled.output
    assert "orders: primary is now v1 (was v2); v2 is the shadow. Recorded #2 by grace" in rolled.stdout
    retried = await ainvoke("rollback", "orders", "--admin-url", admin, "--token", TOKEN)
    assert retried.exit_code == 0 and retried.stdout == "orders: primary is already v1; nothing to roll back\n"

    async with httpx.AsyncClient() as client:
        history = (await client.get(f"{admin}/api/promotions")).json()["promotions"]
    assert [(h["to"], h["reason"], h["actor"]) for h in history][0] == ("v1", "500s", "grace")
    assert history[1]["reason"] == "clean for a week" and "@" in history[1]["actor"]  # user@host by default


@pytest.mark.parametrize(("answer", "code", "primary"), [("n\n", 1, "v1"), ("y\n", 0, "v2"), ("", 1, "v1")])
async def test_promoting_a_not_ready_service_asks_first(
    admin: str, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, primary: str
) -> None:
    monkeypatch.setattr("proxy.cli_common.interactive", lambda: True)
    args = ["promote", "orders", "--admin-url", admin, "--token", TOKEN]
    result = await asyncio.to_thread(CliRunner().invoke, app, args, input=answer)
    assert result.exit_code == code, result.output
    assert "orders is NOT READY (only 0 samples, need 100). Make v2 its primary anyway? [y/N]" in result.output
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{admin}/api/services/orders")).json()["primary"] == primary


async def test_promoting_a_ready_service_or_back_to_v1_does_not_ask(tmp_path: Path) -> None:
    async with report_app(f"sqlite+aiosqlite:///{tmp_path / 'seeded.db'}") as ctx, run_server(ctx.app) as url:
        ready = await ainvoke("promote", "products", "--admin-url", url)  # READY in the seeded report
        assert ready.exit_code == 0 and ready.stdout.startswith("products: primary is now v2"), ready.output
        back = await ainvoke("promote", "products", "--to", "v1", "--admin-url", url)
        assert back.exit_code == 0 and back.stdout.startswith("products: primary is now v1"), back.output
        refused = await ainvoke("promote", "orders", "--admin-url", url)  # NOT READY, and nobody to ask
        assert refused.exit_code == 2 and ctx.state.primary("orders") == "v1"
        assert one_line(refused) == (
            "shadowdiff: orders is NOT READY (diff rate 7.14% > 1.00%; shadow error rate 1.43% > 1.00%); "
            "not promoted. Pass --force to promote anyway"
        )


async def test_admin_url_and_token_come_from_the_environment(admin: str) -> None:
    env = {"SHADOWDIFF_ADMIN_URL": admin, "SHADOWDIFF_ADMIN_TOKEN": TOKEN}
    result = await ainvoke("promote", "ai", "--force", env=env)
    assert result.exit_code == 0, result.output
    assert "ai: primary is now v2" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("promote", "orders", "--force"),
            "the admin API refused the token: pass --token or set SHADOWDIFF_ADMIN_TOKEN",
        ),
        (("promote", "orders", "--force", "--token", "wrong"), "the admin API refused the token"),
        (("promote", "search", "--token", TOKEN), "unknown service 'search'; known services: orders, products"),
        (("promote", "orders", "--to", "v3", "--token", TOKEN), "Invalid value for '--to'"),
        (("promote", "orders", "--token", TOKEN), "orders is NOT READY (only 0 samples, need 100)"),
    ],
)
async def test_refusals_are_one_line_and_exit_2(admin: str, args: tuple[str, ...], message: str) -> None:
    result = await ainvoke(*args, "--admin-url", admin)
    assert result.exit_code == 2
    assert message in one_line(result)
    assert message in one_line(result)


@pytest.mark.parametrize("command", ["promote", "rollback"])
def test_a_down_admin_api_is_one_clear_line(command: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke(command, "orders", "--admin-url", url)
    assert result.exit_code == 2
    assert one_line(result) == f"shadowdiff: cannot reach the admin API at {url}: is `shadowdiff proxy` running?"


# -- start-up errors are one line --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--v1", "localhost:8001"), "Config 'v1_url' has value 'localhost:8001'. Not an http:// or https:// URL."),
        (("--workers", "0"), "Config 'workers' has value 0. Input should be greater than or equal to 1."),
        (("--admin-host", "0.0.0.0"), "Config 'admin_host' has value '0.0.0.0', which is not loopback"),
        (("--config", "/nonexistent/shadowdiff.toml"), "Config file '/nonexistent/shadowdiff.toml' does not exist."),
        (("--database-url", "mysql://db/x"), "Config 'database_url' has value 'mysql://db/x'. Only sqlite and"),
    ],
)
def test_proxy_configuration_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    base = ("proxy", "--port", str(free_port()), "--admin-port", str(free_port()))
    if "--database-url" not in args:
        base += ("--database-url", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    result = invoke(*base, *args, env={"SHADOWDIFF_ADMIN_TOKEN": ""})
    assert result.exit_code == 2
    assert message in one_line(result)


def test_a_bad_environment_value_is_one_line(tmp_path: Path) -> None:
    result = invoke(
        "proxy", env={"SHADOWDIFF_V2_URL": "ftp://v2", "SHADOWDIFF_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    assert result.exit_code == 2
    assert "Config 'v2_url' has value 'ftp://v2'" in one_line(result)


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with taken_port() as port:
        result = invoke("legacy", "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'legacy.db'}")
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in one_line(result)


@pytest.mark.parametrize(
    ("command", "url", "message"),
    [
        ("legacy", "postgresql://db/legacy", "is not a SQLite URL"),
        ("v2", "mysql://db/v2", "V2 database_url: Value error, database_url has value 'mysql://db/v2'"),
    ],
)
def test_an_apps_bad_database_url_is_one_line(command: str, url: str, message: str) -> None:
    result = invoke(command, "--port", str(free_port()), "--database-url", url)
    assert result.exit_code == 2
    assert message in one_line(result)


def test_a_bad_log_level_is_a_usage_error() -> None:
    result = invoke("legacy", "--log-level", "loud")
    assert result.exit_code == 2
    assert "Invalid value for '--log-level'" in result.output and "'loud' is" in result.output


# -- seed --------------------------------------------------------------------------------------------------------------


def test_seed_loads_both_databases_once(tmp_path: Path) -> None:
    legacy_url, v2_url = f"sqlite:///{tmp_path / 'legacy.db'}", f"sqlite+aiosqlite:///{tmp_path / 'v2.db'}"
    first = invoke("seed", "--legacy-database-url", legacy_url, "--v2-database-url", v2_url)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        f"V1: loaded 60 products and 5 customers into {legacy_url}",
        f"V2: loaded 60 products and 5 customers into {v2_url}",
    ]
    again = invoke("seed", env={"SHADOWDIFF_LEGACY_DATABASE_URL": legacy_url, "SHADOWDIFF_V2_DATABASE_URL": v2_url})
    assert again.exit_code == 0, again.output
    assert "V1: " in again.stdout and "already has products; nothing loaded" in again.stdout
    assert again.stdout.count("nothing loaded") == 2


def test_seed_into_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    result = invoke("seed", "--legacy-database-url", "sqlite:////nonexistent/dir/legacy.db")
    assert result.exit_code == 2
    assert "cannot seed V1 at sqlite:////nonexistent/dir/legacy.db" in one_line(result)


# -- real processes ----------------------------------------------------------------------------------------------------


def stand_in(name: str) -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def answer(request: Request) -> JSONResponse:
        return JSONResponse({"app": name})

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, found through /proc (children may sit in sessions of their own)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout} s:\n{log.read_text()}")


@contextlib.contextmanager
def started(argv: list[str], log: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=clean_env(), stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=10)


async def test_shadowdiff_proxy_and_promote_as_real_processes(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    async with run_server(stand_in("v1")) as v1, run_server(stand_in("v2")) as v2:
        argv = [SHADOWDIFF, "proxy", "--v1", v1, "--v2", v2, "--port", str(port), "--admin-port", str(admin_port)]
        argv += ["--database-url", f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}", "--log-level", "info"]
        with started(argv, tmp_path / "proxy.log", tmp_path) as process:
            await wait_for(f"{admin}/health", process, tmp_path / "proxy.log")
            async with httpx.AsyncClient(timeout=5) as client:
                assert (await client.get(f"http://127.0.0.1:{port}/api/products/3")).json() == {"app": "v1"}

                promote = [SHADOWDIFF, "promote", "products", "--to", "v2", "--force", "--admin-url", admin]
                done = await asyncio.to_thread(
                    subprocess.run, promote, capture_output=True, text=True, timeout=30, env=clean_env()
                )
                assert done.returncode == 0, done.stderr
                assert done.stdout.startswith("products: primary is now v2 (was v1)")
                assert (await client.get(f"http://127.0.0.1:{port}/api/products/3")).json() == {"app": "v2"}

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        # Issue 13: two listeners in one process printed uvicorn's start-up and shutdown lines twice.
        output = (tmp_path / "proxy.log").read_text()
        for line in ("Started server process", "Shutting down", "Finished server process"):
            assert output.count(line) == 1, output


def test_promote_with_no_admin_running_as_a_real_process() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [SHADOWDIFF, "rollback", "orders", "--admin-url", url],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert done.returncode == 2
    assert done.stderr == f"shadowdiff: cannot reach the admin API at {url}: is `shadowdiff proxy` running?\n"
    assert done.stdout == ""


@pytest.mark.slow
async def test_up_starts_everything_says_ready_and_stops_everything(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("port", "admin-port", "legacy-port", "v2-port", "secondary-port")}
    argv = [SHADOWDIFF, "up", *(f"--{name}={port}" for name, port in ports.items())]
    log = tmp_path / "up.log"
    with started(argv, log, tmp_path) as process:
        deadline = time.monotonic() + 60
        while "\nready (Ctrl-C stops everything)" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        text = log.read_text()
        assert "V1: loaded 60 products" in text and "V2: loaded 60 products" in text
        assert f"proxy      http://127.0.0.1:{ports['port']}" in text
        assert f"curl http://127.0.0.1:{ports['port']}/api/products/1" in text
        assert "V2         " in text and "new app, logs to logs/v2.log" in text
        assert (tmp_path / "legacy-secondary.db").exists()  # the secondary runs on its own copy

        async with httpx.AsyncClient(timeout=5) as client:
            # Ready was judged without a request through the proxy: nothing mirrored, no `default` service yet.
            await asyncio.sleep(1.0)  # the store writes within 20 ms of a comparison
            admin = f"http://127.0.0.1:{ports['admin-port']}"
            assert (await client.get(f"{admin}/api/v1/exchanges")).json()["items"] == []
            product = (await client.get(f"http://127.0.0.1:{ports['port']}/api/products/1")).json()
            assert product["sku"] == "SKU-0001"
            for name in ("legacy-port", "v2-port", "secondary-port", "admin-port"):
                assert (await client.get(f"http://127.0.0.1:{ports[name]}/health")).status_code == 200

        # Issue 13: V2's request logs filled the terminal and the banner scrolled away; now they go to files.
        assert all((tmp_path / "logs" / f"{name}.log").exists() for name in ("v1", "v2", "secondary"))
        assert "/api/products/1" in (tmp_path / "logs" / "v2.log").read_text()
        assert not [line for line in log.read_text().splitlines() if line.startswith(("v1 ", "v2 ", "secondary "))]
        children = descendants(process.pid)
        assert len(children) >= 4  # V1, V2, secondary, proxy
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        await asyncio.sleep(0.2)
        assert not [pid for pid in children if alive(pid)], "orphans left behind"


# -- compose.yaml runs these very commands -----------------------------------------------------------------------------


def test_every_command_in_compose_yaml_parses_with_this_cli() -> None:
    import re
    import shlex

    import typer.main
    import yaml

    compose = yaml.safe_load((Path(__file__).parents[2] / "compose.yaml").read_text(encoding="utf-8"))
    group = typer.main.get_command(app)
    commands = {name: spec["command"] for name, spec in compose["services"].items() if "command" in spec}
    assert {"seed", "legacy", "v2", "proxy"} <= set(commands)
    for name, command in commands.items():
        argv = shlex.split(re.sub(r"\$\{[^}]*\}", "a-token", command))
        sub = group.commands[argv[0]]  # type: ignore[attr-defined]
        with sub.make_context(f"shadowdiff {argv[0]}", argv[1:]) as context:  # raises on an unknown flag or value
            assert context.params, name
    assert "--admin-token a-token" in " ".join(shlex.split(re.sub(r"\$\{[^}]*\}", "a-token", commands["proxy"])))
