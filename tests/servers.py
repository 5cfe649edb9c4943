"""Real uvicorn servers on 127.0.0.1 ephemeral ports, for tests that cross the network."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the test runner owns signals
        yield


@contextlib.asynccontextmanager
async def run_server(app: Any, *, port: int | None = None, **config: Any) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 until the block exits; yields its base URL (`http://127.0.0.1:PORT`)."""
    port = port or free_port()
    config.setdefault("log_level", "warning")
    config.setdefault("lifespan", "on")
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
                raise RuntimeError("server exited before it started")
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("server did not start within 5 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, timeout=5)


@contextlib.asynccontextmanager
async def run_shadowdiff(settings: Any, environ: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """A whole `ShadowdiffServer` (proxy and admin listeners) in this event loop until the block exits."""
    from proxy.runtime.server import ShadowdiffServer

    server = ShadowdiffServer(settings, environ=environ or {})
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        for _ in range(3000):  # the analysis process starts first: a new interpreter, ~1 s on a busy machine
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("shadowdiff did not start within 30 s")
        yield server
    finally:
        server.request_exit()
        await asyncio.wait_for(task, timeout=15)
