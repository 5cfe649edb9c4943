"""The server: proxy and admin in one process; promotion at run time without restart; `--workers 2` in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from diffs.storage import Store
from proxy.config import ConfigError, Settings, load_settings
from proxy.runtime.server import ListenError, ShadowdiffServer, StartupFailed, bind, listener, serve_together
from tests.servers import free_port, run_server, run_shadowdiff

SHADOWDIFF = str(Path(sys.executable).with_name("shadowdiff"))
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def stand_in(name: str) -> Starlette:
    """An upstream that says which one it is."""

    async def answer(request: Request) -> JSONResponse:
        return JSONResponse({"app": name, "path": request.url.path})

    return Starlette(routes=[Route("/{path:path}", answer, methods=METHODS)])


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[str, str]]:
    async with run_server(stand_in("v1")) as v1, run_server(stand_in("v2")) as v2:
        yield v1, v2


def make_settings(
    tmp_path: Path, upstreams: tuple[str, str], environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    values = {
        "v1_url": upstreams[0],
        "v2_url": upstreams[1],
        "port": 0,
        "admin_port": 0,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}",
        "drain_seconds": 1,
        **overrides,
    }
    return load_settings(overrides=values, environ=environ or {})


def serving(settings: Settings, environ: dict[str, str] | None = None) -> Any:
    return run_shadowdiff(settings, environ)


async def which(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    app: str = response.json()["app"]
    return app


# -- one process ----------------------------------------------------------------------------------------------------


async def test_one_process_serves_proxy_and_admin_and_promotes_without_restart(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    async with serving(make_settings(tmp_path, upstreams)) as server, httpx.AsyncClient(timeout=5) as client:
        proxy, admin = server.proxy_url, server.admin_url
        assert proxy != admin
        assert (await client.get(f"{admin}/health")).json()["status"] == "ok"
        report = await client.get(f"{admin}/")  # the web report rides on the admin listener
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert await which(client, f"{proxy}/api/orders/7") == "v1"

        promoted = await client.post(f"{admin}/api/services/orders/promote", json={"to": "v2", "reason": "clean"})
        assert promoted.status_code == 200
        assert await which(client, f"{proxy}/api/orders/7") == "v2"
        assert await which(client, f"{proxy}/api/products/1") == "v1"  # only orders moved

        assert (await client.post(f"{admin}/api/services/orders/rollback")).status_code == 200
        assert await which(client, f"{proxy}/api/orders/7") == "v1"

        metrics = (await client.get(f"{admin}/metrics")).text
        assert 'shadowdiff_requests_total{method="GET",service="orders",status_class="2xx"} 3.0' in metrics


@pytest.mark.parametrize(("trust", "expected"), [(True, "203.0.113.7, 127.0.0.1"), (False, "127.0.0.1")])
async def test_the_peer_is_appended_to_x_forwarded_for_once(tmp_path: Path, trust: bool, expected: str) -> None:
    seen: list[str] = []

    async def echo(request: Request) -> JSONResponse:
        seen.append(request.headers["x-forwarded-for"])
        return JSONResponse({})

    upstream = Starlette(routes=[Route("/{path:path}", echo)])
    async with run_server(upstream) as v1, run_server(upstream) as v2:
        settings = make_settings(tmp_path, (v1, v2), trust_forwarded=trust)
        async with serving(settings) as server, httpx.AsyncClient(timeout=5) as client:
            await client.get(f"{server.proxy_url}/api/products/1", headers={"x-forwarded-for": "203.0.113.7"})
            for _ in range(100):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.02)
    # primary and shadow alike; at the edge (the default) the client's own entries are not believed
    assert seen == [expected] * 2


async def test_the_server_stores_exchanges_with_the_configured_redaction(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    settings = make_settings(tmp_path, upstreams, redact_fields=["ssn"])
    async with serving(settings) as server, httpx.AsyncClient(timeout=5) as client:
        response = await client.post(f"{server.proxy_url}/api/orders", json={"ssn": "123-45-6789", "n": 1})
        request_id = response.headers["x-request-id"]
    store = await Store.open(settings.database_url)
    try:
        stored = await store.get_exchange(request_id)
    finally:
        await store.close()
    assert stored is not None and stored.request_body is not None
    assert b"123-45-6789" not in stored.request_body and b"[REDACTED]" in stored.request_body


async def test_a_guide_flag_at_start_up_sets_the_primary_and_is_audited(
    tmp_path: Path, upstreams: tuple[str, str]
) -> None:
    environ = {"USE_V2_ORDER_SERVICE": "true"}
    async with (
        serving(make_settings(tmp_path, upstreams, environ), environ) as server,
        httpx.AsyncClient(timeout=5) as client,
    ):
        assert await which(client, f"{server.proxy_url}/api/orders/1") == "v2"
        assert await which(client, f"{server.proxy_url}/api/ai/generate") == "v1"
        [row] = (await client.get(f"{server.admin_url}/api/promotions")).json()["promotions"]
        assert (row["service"], row["to"], row["actor"]) == ("orders", "v2", "env")


async def test_a_taken_port_is_one_clear_error(tmp_path: Path, upstreams: tuple[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        admin_port = free_port()
        server = ShadowdiffServer(make_settings(tmp_path, upstreams, admin_port=port, port=admin_port), environ={})
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            await server.serve()
    with socket.socket() as probe:  # the proxy socket it had bound first was released
        probe.bind(("127.0.0.1", admin_port))


def test_an_exposed_admin_plane_without_a_token_does_not_start(tmp_path: Path, upstreams: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match="'admin_token' is not set"):
        ShadowdiffServer(make_settings(tmp_path, upstreams, admin_host="0.0.0.0"), environ={})


async def test_after_exit_both_ports_are_closed(tmp_path: Path, upstreams: tuple[str, str]) -> None:
    async with serving(make_settings(tmp_path, upstreams)) as server:
        urls = (server.proxy_url, server.admin_url)
    async with httpx.AsyncClient(timeout=2) as client:
        for url in urls:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{url}/health")


# -- the uvicorn internals the server relies on (pinned by the lock; these fail first if an upgrade changes them) --


async def test_a_listener_leaves_the_process_signal_handlers_alone(tmp_path: Path) -> None:
    # uvicorn's `serve` installs its own SIGINT/SIGTERM handlers through `capture_signals`; the Listener overrides
    # that method so that one handler (the server's or the supervisor's) stops every listener of the process.
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = listener(stand_in("v1"), make_settings(tmp_path, ("http://127.0.0.1:1", "http://127.0.0.1:2")))
    sock = bind("127.0.0.1", 0)
    task = asyncio.get_running_loop().create_task(serve_together([(server, sock)]))
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        assert {sig: signal.getsignal(sig) for sig in before} == before
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_a_failed_lifespan_start_up_is_one_clear_error(tmp_path: Path) -> None:
    # uvicorn raises SystemExit when an app's lifespan start-up fails; serve_together makes it a StartupFailed.
    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    server = listener(Starlette(lifespan=broken), make_settings(tmp_path, ("http://127.0.0.1:1", "http://127.0.0.1:2")))
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(StartupFailed, match="failed to start"):
            await serve_together([(server, sock)])
    finally:
        sock.close()


# -- --workers 2, as a user runs it -----------------------------------------------------------------------------------


def children_of(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll `check` until true; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


@contextlib.asynccontextmanager
async def shadowdiff_workers(
    tmp_path: Path, upstreams: tuple[str, str], metrics_dir: Path
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str, str]]:
    port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOWDIFF_", "USE_V2_"))}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    argv = [SHADOWDIFF, "proxy", "--v1", upstreams[0], "--v2", upstreams[1], "--workers", "2"]
    argv += ["--port", str(port), "--admin-port", str(admin_port), "--log-level", "warning"]
    argv += ["--database-url", f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}"]
    log = (tmp_path / "proxy.log").open("wb")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proxy, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    try:
        async with httpx.AsyncClient(timeout=2) as client:

            async def ready() -> bool:
                assert process.poll() is None, (tmp_path / "proxy.log").read_text()
                try:
                    health = await client.get(f"{admin}/health")
                    through = await client.get(f"{proxy}/api/orders/1")
                except httpx.TransportError:
                    return False
                return health.status_code == 200 and through.status_code == 200

            await eventually(ready, 30, "shadowdiff --workers 2 ready")
        yield process, proxy, admin
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its process group
        process.wait(timeout=10)
        log.close()


async def fresh_requests(proxy: str, path: str, count: int) -> list[str]:
    """`count` concurrent requests on their own connections, so the kernel spreads them across workers."""

    async def one() -> str:
        async with httpx.AsyncClient(timeout=5) as client:
            return await which(client, f"{proxy}{path}")

    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.mark.slow
async def test_two_workers_all_switch_within_seconds_of_a_promotion(tmp_path: Path, upstreams: tuple[str, str]) -> None:
    metrics_dir = tmp_path / "metrics"
    async with shadowdiff_workers(tmp_path, upstreams, metrics_dir) as (process, proxy, admin):
        workers = {pid for pid in children_of(process.pid) if "resource_tracker" not in _cmdline(pid)}
        assert len(workers) == 2

        sent = 1  # the readiness probe's successful request

        async def both_workers_served() -> bool:
            nonlocal sent
            answers = await fresh_requests(proxy, "/api/orders/1", 10)
            sent += len(answers)
            assert set(answers) == {"v1"}
            return all((metrics_dir / f"counter_{pid}.db").exists() for pid in workers)

        await eventually(both_workers_served, 10, "both workers answered a request")

        async with httpx.AsyncClient(timeout=5) as client:
            promoted = await client.post(f"{admin}/api/services/orders/promote", json={"to": "v2", "reason": "test"})
            assert promoted.status_code == 200

        async def all_v2(count: int) -> bool:
            nonlocal sent
            answers = await fresh_requests(proxy, "/api/orders/1", count)
            sent += len(answers)
            return set(answers) == {"v2"}

        # Batches go on until 4.5 s after the promotion; the last one with a v1 answer must have been sent within 3 s
        # of it, and every batch sent after that is all v2. One all-v2 batch alone proves nothing: a worker can accept
        # a whole batch of new connections while the other has not re-read the state yet (it does every second).
        promoted_at = time.monotonic()
        last_v1 = None
        while (sent_after := time.monotonic() - promoted_at) < 4.5:
            if not await all_v2(10):
                last_v1 = sent_after
        assert last_v1 is None or last_v1 < 3, f"a worker still answered from v1 {last_v1:.1f} s after the promotion"

        async def all_counted() -> bool:
            async with httpx.AsyncClient(timeout=5) as client:
                metrics = (await client.get(f"{admin}/metrics")).text
            counted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith('shadowdiff_requests_total{method="GET",service="orders"')
            )
            return counted == sent

        # Both workers' counts, added up by the admin plane; each worker applies its own every 0.5 s.
        await eventually(all_counted, 5, f"the admin plane counts all {sent} requests")

        async def all_compared() -> bool:
            async with httpx.AsyncClient(timeout=5) as client:
                metrics = (await client.get(f"{admin}/metrics")).text
            compared = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("shadowdiff_comparisons_total{") and 'service="orders"' in line
            )
            return compared == sent and "shadowdiff_comparison_backlog{" in metrics

        # Each worker's analysis process compared every exchange; its worker counted them in the shared files.
        await eventually(all_compared, 10, f"the admin plane counts all {sent} comparisons")

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        await asyncio.sleep(0.2)
        assert not [pid for pid in workers if alive(pid)]


@pytest.mark.slow
async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path, upstreams: tuple[str, str]) -> None:
    async with shadowdiff_workers(tmp_path, upstreams, tmp_path / "metrics") as (process, _proxy, _admin):
        workers = children_of(process.pid)
        assert workers
        process.kill()  # SIGKILL: no chance to stop them itself
        process.wait(timeout=5)

        async def gone() -> bool:
            return not [pid for pid in workers if alive(pid)]

        await eventually(gone, 5, "orphaned workers exit")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_event_loop_says_so_when_uvloop_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from proxy.runtime.server import event_loop

    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="shadowdiff.server"), event_loop() as runner:
        assert type(runner.get_loop()).__module__.startswith("asyncio")
    assert "uvloop is not available" in caplog.text


def test_event_loop_is_uvloop_when_installed() -> None:
    from proxy.runtime.server import event_loop

    with event_loop() as runner:
        assert type(runner.get_loop()).__module__.startswith("uvloop")
