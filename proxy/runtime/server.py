"""The composition root: settings → store → primary state → metrics → sink → the proxy and admin apps, served.

`workers == 1`: one process, one event loop, two uvicorn servers (proxy and admin), signals handled once.
`workers > 1`: `proxy.runtime.supervisor.Supervisor` binds the proxy port once and spawns that many workers onto it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, Literal, Protocol

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from diffs.exchange import Exchange
from diffs.id_pairs import IdPair
from diffs.storage import Store
from diffs.storage.pruning import Pruner
from diffs.tasks import cancel_and_wait
from proxy.analysis.channel import AnalysisChannel
from proxy.config import Settings, check_admin_exposure
from proxy.control.admin import create_admin_app
from proxy.control.promotion import PrimaryState
from proxy.dataplane.app import create_proxy_app
from proxy.dataplane.capture import Capture
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.correlation_store import CorrelationStore
from proxy.dataplane.http1.server import ServerLimits, protocol_class
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.shared_ids import SharedIds
from proxy.errors import ShadowdiffError

log = logging.getLogger("shadowdiff.server")
METRICS_FLUSH_SECONDS = 0.5
"""With --workers N, how often each worker applies its metric updates (scrapes lag by at most this much)."""


class ListenError(ShadowdiffError):
    """A listener could not be bound (port taken, address not local, permission)."""


class StartupFailed(ShadowdiffError):
    """An app's lifespan start-up failed; uvicorn logged why."""


class ManagedSink(Protocol):
    """A sink the server starts before serving and drains after, and tells the id pairs it learns."""

    def submit(self, exchange: Exchange) -> bool: ...

    def learned(self, pairs: Sequence[IdPair]) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self, timeout: float) -> None: ...


def build_sink(settings: Settings, metrics: ProxyMetrics) -> ManagedSink:
    """Where exchanges go: this worker's analysis process, which compares and stores them (never this loop)."""
    return AnalysisChannel(settings, metrics)


class OncePerProcess(logging.Filter):
    """Uvicorn's process-wide lines, said once: two listeners (proxy and admin) in one process said each twice."""

    LINES = frozenset({"Started server process [%d]", "Finished server process [%d]", "Shutting down"})

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in self.LINES:
            return True
        if record.msg in self._seen:
            return False
        self._seen.add(str(record.msg))
        return True


def _say_process_lines_once() -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's Config re-applies its logging config: check again
    if not any(isinstance(f, OncePerProcess) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(OncePerProcess())


def bind(host: str, port: int) -> socket.socket:
    """A bound, inheritable TCP socket (uvicorn listens on it; workers inherit it); ListenError when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: stdlib asyncio sets TCP_NODELAY only on accepted sockets whose protocol says TCP (with 0,
    # every response waited for the client's delayed ACK: 44 ms at p50 against 1.2 ms on uvloop).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Listener(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner, so one handler stops every listener of the process.

    uvicorn has no public switch for this: `capture_signals` is the method its `serve` wraps itself in, and it raises
    SystemExit when a lifespan start-up fails (`serve_together` turns that into StartupFailed). Both are internals:
    the lock pins uvicorn, and tests/proxy/runtime/test_server.py checks both, so an upgrade that changes them fails
    there first.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_options(settings: Settings, *, proxy: bool) -> dict[str, Any]:
    """uvicorn.Config options for a listener; the proxy's speaks HTTP/1.1 through `http1.server.ProxyProtocol`."""
    options: dict[str, Any] = {
        "http": "httptools",
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": max(1, round(settings.drain_seconds)),
        "server_header": False,
        "date_header": False,
        # uvicorn would otherwise replace the client address with the last X-Forwarded-For entry of a loopback
        # peer, and the proxy, which appends the peer to that header, would then send the entry twice.
        "proxy_headers": False,
    }
    if proxy:
        limits = ServerLimits(
            header_timeout=settings.header_timeout_seconds,
            max_header_line=settings.max_header_line,
            max_header_size=settings.max_header_size,
            max_header_count=settings.max_header_count,
        )
        options["http"] = protocol_class(limits)
        options["ws"] = "none"  # an Upgrade is answered as plain HTTP, never switched (see http1.server)
        options["timeout_keep_alive"] = settings.client_keepalive_seconds
    return options


def listener(
    app: ASGIApp, settings: Settings, *, lifespan: Literal["on", "off"] = "on", proxy: bool = False
) -> Listener:
    config = uvicorn.Config(app, lifespan=lifespan, **server_options(settings, proxy=proxy))
    _say_process_lines_once()
    return Listener(config)


async def serve_together(pairs: Sequence[tuple[Listener, socket.socket]]) -> None:
    """Serve every (listener, socket) until any stops; then stop the others. Start-up failures raise StartupFailed."""
    servers = [server for server, _ in pairs]

    async def one(server: Listener, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits the process when a lifespan start-up fails
            raise StartupFailed(f"the app on {url_of(sock)} failed to start (see the log above)") from None
        finally:
            for other in servers:
                other.should_exit = True

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(one(server, sock)) for server, sock in pairs]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def handle_signals(stop: Callable[[bool], None]) -> Callable[[], None]:
    """SIGINT/SIGTERM call `stop(force)`: graceful first, forced on a second SIGINT. Returns the uninstaller."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        stop(len(received) > 1 and sig == signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    def uninstall() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return uninstall


async def open_state(
    settings: Settings, stack: AsyncExitStack, *, environ: Mapping[str, str] | None, prune: bool = False
) -> tuple[Store, PrimaryState]:
    """Open the store and a refreshing PrimaryState; with `environ`, first record config decisions (see reconcile).

    `prune`: also run the retention pruner here (one process per deployment: the server, or the supervisor).
    """
    try:
        store = await Store.from_settings(settings)
    except ShadowdiffError:
        # aiosqlite answers a failed connect from its own thread a moment later; let it land before the loop closes,
        # or it prints a "loop is closed" traceback after our one-line error.
        await asyncio.sleep(0.1)
        raise
    stack.push_async_callback(store.close)
    if prune:
        pruner = Pruner(store, store.retention.prune_interval)
        pruner.start()
        stack.push_async_callback(pruner.aclose)
    state = PrimaryState(settings.services, store, refresh_seconds=settings.state_refresh_seconds)
    if environ is not None:
        await state.reconcile(environ)
    await state.start()
    stack.push_async_callback(state.aclose)
    return store, state


async def build_proxy(
    settings: Settings, stack: AsyncExitStack, store: Store, state: PrimaryState, registry: CollectorRegistry
) -> ASGIApp:
    """The data-plane app with its metrics and a started sink (drained when `stack` closes)."""
    metrics = ProxyMetrics(registry, deferred=settings.workers > 1)
    if metrics.deferred:
        flusher = asyncio.get_running_loop().create_task(metrics.flush_every(METRICS_FLUSH_SECONDS))

        async def stop_flushing() -> None:
            await cancel_and_wait(flusher)

        stack.push_async_callback(stop_flushing)  # first in, so it runs last: after the sink has drained
    correlator = IdCorrelator(settings.correlation_capacity)
    correlations = CorrelationStore(store, correlator, registry=registry)
    shared = None
    if settings.workers > 1 or store.dialect == "postgresql":
        # A create may be answered by one worker (or replica) and the read that follows by another: pending creates,
        # pairs and settled creates are pushed to every process through the store's feed.
        shared = SharedIds(store, correlations, wait_seconds=settings.causal_wait_seconds, registry=registry)
        await shared.start()
    await correlations.load(settings.services)
    stack.push_async_callback(correlations.aclose)
    sink = build_sink(settings, metrics)
    await sink.start()
    stack.push_async_callback(sink.aclose, settings.drain_seconds)
    save = correlations.save

    def learned(pairs: list[IdPair]) -> None:
        save(pairs)  # persisted, for a restart and for the other workers
        sink.learned(pairs)  # and to the analysis process, ahead of the exchanges that show them

    correlator.on_pairs = learned
    capture = None
    if settings.capture.dir:
        capture = Capture(settings.capture, redact_fields=settings.redact_fields, metrics=metrics)
        capture.start()
        stack.push_async_callback(capture.aclose)  # after the proxy has stopped serving: every request is in
    return create_proxy_app(
        settings,
        primaries=state,
        sink=sink,
        metrics=metrics,
        correlator=correlator,
        capture=capture,
        tune_gc=True,
        shared=shared,
    )


def build_admin(settings: Settings, store: Store, state: PrimaryState, registry: CollectorRegistry) -> ASGIApp:
    """The admin plane: the web report and /api/v1 (review.web) on top of the control API (control.admin)."""
    from proxy.review.web import admin_routes  # jinja2 and the report stack: only where an admin plane runs

    return create_admin_app(settings, state=state, registry=registry, extra_routes=admin_routes(settings, store, state))


class ShadowdiffServer:
    """One process: the proxy and the admin plane on their own listeners, in one event loop."""

    def __init__(self, settings: Settings, *, environ: Mapping[str, str] | None = None) -> None:
        check_admin_exposure(settings)
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self.state: PrimaryState | None = None
        self.proxy_url = ""
        self.admin_url = ""
        self._servers: list[Listener] = []
        self._exit = False

    @property
    def started(self) -> bool:
        return bool(self._servers) and all(server.started for server in self._servers)

    def request_exit(self, force: bool = False) -> None:
        self._exit = True
        for server in self._servers:
            server.should_exit = True
            server.force_exit = server.force_exit or force

    async def serve(self) -> None:
        """Run until `request_exit()`; binds first, so a taken port fails before anything else starts."""
        settings = self.settings
        proxy_sock = bind(settings.host, settings.port)
        try:
            admin_sock = bind(settings.admin_host, settings.admin_port)
        except ListenError:
            proxy_sock.close()
            raise
        self.proxy_url, self.admin_url = url_of(proxy_sock), url_of(admin_sock)
        try:
            async with AsyncExitStack() as stack:
                store, self.state = await open_state(settings, stack, environ=self.environ, prune=True)
                registry = CollectorRegistry()
                proxy_app = await build_proxy(settings, stack, store, self.state, registry)
                admin_app = build_admin(settings, store, self.state, registry)
                proxy = listener(proxy_app, settings, proxy=True)
                admin = listener(admin_app, settings, lifespan="off")
                self._servers = [proxy, admin]
                if self._exit:
                    return
                ready = asyncio.get_running_loop().create_task(self._announce())
                try:
                    await serve_together([(proxy, proxy_sock), (admin, admin_sock)])
                finally:
                    ready.cancel()
        finally:
            proxy_sock.close()
            admin_sock.close()

    async def _announce(self) -> None:
        while not self.started:
            await asyncio.sleep(0.02)
        log.info("proxy on %s, admin on %s", self.proxy_url, self.admin_url)


@contextlib.contextmanager
def event_loop() -> Iterator[asyncio.Runner]:
    """An asyncio.Runner on uvloop when it is installed (it is, with uvicorn[standard]); a warning when it is not."""
    factory: Any = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError as exc:
        # Not silent: production is measured and tested on uvloop; stdlib asyncio works but is slower.
        log.warning("uvloop is not available (%s); serving on the stdlib asyncio event loop", exc)
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner
