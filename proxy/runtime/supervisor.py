"""`--workers N`: bind the proxy port once, spawn N worker processes that serve on it, serve the admin plane here.

As uvicorn's `Multiprocess` does, the supervisor binds the socket and hands it to spawned workers (uvloop,
httptools). Each worker opens the store and keeps its own `PrimaryState` refreshing from it, so a promotion made
through this admin plane reaches every worker within a refresh. Metrics use prometheus_client's multiprocess mode:
workers write to PROMETHEUS_MULTIPROC_DIR (a temporary directory unless set) and /metrics here adds them up. A worker
that dies is replaced; workers that keep dying at start-up stop everything. A worker whose supervisor vanished exits.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from multiprocessing.context import SpawnProcess
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from diffs.tasks import cancel_and_wait
from proxy.config import Settings, check_admin_exposure, configure_logging
from proxy.errors import ShadowdiffError
from proxy.runtime.server import (
    Listener,
    ListenError,
    StartupFailed,
    bind,
    build_admin,
    build_proxy,
    event_loop,
    handle_signals,
    listener,
    open_state,
    serve_together,
    url_of,
)

log = logging.getLogger("shadowdiff.supervisor")

multiprocessing.allow_connection_pickling()
_spawn = multiprocessing.get_context("spawn")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FAST_EXIT_SECONDS = 5.0
"""A worker that exits sooner than this after its start counts as failing at start-up."""
MAX_FAST_EXITS = 3
STOP_GRACE_SECONDS = 5.0
"""How long workers get beyond `drain_seconds` to finish before they are killed."""


class Supervisor:
    """N proxy workers on one shared socket, plus the admin plane, in one process tree."""

    def __init__(self, settings: Settings, *, environ: Mapping[str, str] | None = None) -> None:
        check_admin_exposure(settings)
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self._workers: dict[int, tuple[SpawnProcess, float]] = {}
        self._admin: Listener | None = None
        self._stopping = False
        self._fast_exits = 0
        self._failure: ShadowdiffError | None = None

    def run(self) -> None:
        """Block until SIGINT/SIGTERM; ShadowdiffError when a listener cannot be bound or workers cannot start."""
        metrics_dir, owned = _metrics_dir()
        try:
            proxy_sock = bind(self.settings.host, self.settings.port)
            try:
                admin_sock = bind(self.settings.admin_host, self.settings.admin_port)
            except ListenError:
                proxy_sock.close()
                raise
            try:
                with event_loop() as runner:
                    runner.run(self._main(proxy_sock, admin_sock, metrics_dir))
            finally:
                proxy_sock.close()
                admin_sock.close()
        finally:
            if owned:
                shutil.rmtree(metrics_dir, ignore_errors=True)

    def stop(self, force: bool = False) -> None:
        self._stopping = True
        if self._admin is not None:
            self._admin.should_exit = True
            self._admin.force_exit = self._admin.force_exit or force
        for process, _ in self._workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGKILL if force else signal.SIGTERM)

    async def _main(self, proxy_sock: socket.socket, admin_sock: socket.socket, metrics_dir: Path) -> None:
        async with AsyncExitStack() as stack:
            # Config decisions are recorded once, here, before any worker reads the state.
            store, state = await open_state(self.settings, stack, environ=self.environ, prune=True)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
            admin_app = build_admin(self.settings, store, state, registry)
            self._admin = listener(admin_app, self.settings, lifespan="off")
            stack.callback(handle_signals(self.stop))
            stack.push_async_callback(self._stop_workers, metrics_dir)
            for slot in range(self.settings.workers):
                self._start_worker(slot, proxy_sock)
            log.info(
                "proxy on %s (%d workers), admin on %s",
                url_of(proxy_sock),
                self.settings.workers,
                url_of(admin_sock),
            )
            monitor = asyncio.get_running_loop().create_task(self._monitor(proxy_sock, metrics_dir))
            try:
                await serve_together([(self._admin, admin_sock)])
            finally:
                monitor.cancel()
                await asyncio.gather(monitor, return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    def _start_worker(self, slot: int, sock: socket.socket) -> None:
        process = _spawn.Process(
            target=worker_main,
            args=(self.settings, sock, os.getpid()),
            name=f"shadowdiff-worker-{slot}",
            daemon=True,
        )
        process.start()
        self._workers[slot] = (process, time.monotonic())

    async def _monitor(self, sock: socket.socket, metrics_dir: Path) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            for slot, (process, started_at) in list(self._workers.items()):
                if self._stopping or process.is_alive():
                    continue
                _mark_dead(process, metrics_dir)
                fast = time.monotonic() - started_at < FAST_EXIT_SECONDS
                self._fast_exits = self._fast_exits + 1 if fast else 0
                if self._fast_exits >= MAX_FAST_EXITS:
                    self._failure = StartupFailed(
                        f"proxy workers keep exiting at start-up (last exit code {process.exitcode}); "
                        "see their log above"
                    )
                    self.stop()
                    return
                log.warning("worker %s (pid %s) exited with %s; starting another", slot, process.pid, process.exitcode)
                self._start_worker(slot, sock)

    async def _stop_workers(self, metrics_dir: Path) -> None:
        self.stop()
        deadline = time.monotonic() + self.settings.drain_seconds + STOP_GRACE_SECONDS
        processes = [process for process, _ in self._workers.values()]
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for process in processes:
            if process.is_alive():
                log.warning("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
        for process in processes:
            while process.is_alive():
                await asyncio.sleep(0.02)
            _mark_dead(process, metrics_dir)


def _mark_dead(process: SpawnProcess, metrics_dir: Path) -> None:
    if process.pid is not None:
        multiprocess.mark_process_dead(process.pid, str(metrics_dir))  # type: ignore[no-untyped-call]


def _metrics_dir() -> tuple[Path, bool]:
    """PROMETHEUS_MULTIPROC_DIR if set (emptied of a previous run's files), else a temporary one we remove."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return path, False
    path = Path(tempfile.mkdtemp(prefix="shadowdiff-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)  # spawned workers inherit it before importing prometheus_client
    return path, True


def worker_main(settings: Settings, sock: socket.socket, parent_pid: int) -> None:
    """A worker process: serve the proxy on `sock` until SIGTERM, or until the supervisor is gone."""
    # Ctrl-C reaches the whole process group; the supervisor decides, and tells workers with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings)
    try:
        with event_loop() as runner:
            runner.run(_serve_worker(settings, sock, parent_pid))
    except ShadowdiffError as exc:
        log.error("worker %d cannot serve: %s", os.getpid(), exc)
        raise SystemExit(1) from None


async def _serve_worker(settings: Settings, sock: socket.socket, parent_pid: int) -> None:
    async with AsyncExitStack() as stack:
        store, state = await open_state(settings, stack, environ=None)
        app = await build_proxy(settings, stack, store, state, CollectorRegistry())
        server = listener(app, settings, proxy=True)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, _stop, server)
        stack.callback(loop.remove_signal_handler, signal.SIGTERM)
        watchdog = loop.create_task(_exit_when_orphaned(server, parent_pid))
        try:
            await serve_together([(server, sock)])
        finally:
            await cancel_and_wait(watchdog)


def _stop(server: Listener) -> None:
    server.should_exit = True


async def _exit_when_orphaned(server: Listener, parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        await asyncio.sleep(1.0)
    log.warning("supervisor %d is gone; worker %d stops", parent_pid, os.getpid())
    server.should_exit = True
