"""The replay engine: the live data plane built in-process, fed ASGI requests from a source, its exchanges labelled.

Nothing here forwards, mirrors, correlates or compares: `Proxy` does, as it does for live traffic (header hygiene,
X-Request-ID, mirroring, id correlation, causal order), and the live analysis process (`AnalysisChannel`) compares
and stores, so every change to the data plane applies to replays too. The only differences are deliberate:

- each exchange carries the run id (`Exchange.run`), so reports can show one replay or live traffic alone;
- every request is mirrored whatever the services' `sample_rate` (a recording is already the sample), but
  `mirror = false` and `methods` still hold (they protect upstreams);
- id pairs are learned in memory only: they belong to this replay's V1 and V2, not to the live upstreams, so they
  are neither loaded from nor saved to the store;
- the replay waits instead of dropping when the comparison backlog or mirrored requests in flight run high.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry

from diffs.exchange import Exchange
from diffs.storage import Store
from proxy.analysis.channel import AnalysisChannel
from proxy.config import Settings
from proxy.control.promotion import PrimaryState
from proxy.dataplane.app import Proxy
from proxy.dataplane.correlation import IdCorrelator
from proxy.dataplane.http1.server import ServerLimits
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.routing import RouteTable
from proxy.dataplane.sink import ExchangeSink
from proxy.replay.requests import Bad, Preparer, Request
from proxy.replay.schedule import Scheduler
from proxy.replay.sources import Source, SourceError, open_source

log = structlog.get_logger("shadowdiff.replay")

BACKLOG_LIMIT = 1_000
"""Exchanges waiting to be compared or stored before the replay pauses (the queues drop past a few thousand)."""
PRESSURE_CHECK_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class Options:
    run_id: str
    concurrency: int = 8
    rate: float | None = None
    speed: float | None = None
    since: datetime | None = None
    filters: tuple[str, ...] = ()
    set_headers: tuple[tuple[str, str], ...] = ()
    session_header: str | None = None
    session_cookie: str | None = None


@dataclass
class Tally:
    """What the replay has done so far; `outcomes` and `primary_errors` are read from the data plane's metrics."""

    total: int = 0
    """Replayable requests in the source."""
    sent: int = 0
    answered: int = 0
    bad: int = 0
    failed: int = 0
    """Requests the data plane raised on (a bug: logged)."""
    primary_errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    interrupted: bool = False

    @property
    def errors(self) -> int:
        return self.outcomes["shadow_error"] + self.primary_errors + self.failed

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class View(Protocol):
    """How a replay shows itself: bad entries and notes as lines, progress while it runs."""

    def bad(self, item: Bad) -> None: ...

    def start(self, tally: Tally, title: str) -> None: ...

    def update(self, tally: Tally) -> None: ...

    def stop(self, tally: Tally) -> None: ...


class _Labelled:
    """The sink the proxy hands exchanges to, adding this replay's run id."""

    def __init__(self, sink: ExchangeSink, run: str) -> None:
        self._sink = sink
        self._run = run

    def submit(self, exchange: Exchange) -> bool:
        return self._sink.submit(dataclasses.replace(exchange, run=self._run))


class _Meter:
    """Reads the data plane's Prometheus metrics: outcomes, primary errors, and whether to pause."""

    def __init__(self, registry: CollectorRegistry, max_inflight: int) -> None:
        self.registry = registry
        self.max_inflight = max_inflight
        self._checked = 0.0
        self._busy = False

    def read(self, tally: Tally) -> None:
        outcomes: Counter[str] = Counter()
        primary_errors = 0
        for metric in self.registry.collect():
            if metric.name == "shadowdiff_comparisons":
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        outcomes[sample.labels["outcome"]] += int(sample.value)
            elif metric.name == "shadowdiff_primary_errors":
                primary_errors += sum(int(s.value) for s in metric.samples if s.name.endswith("_total"))
        tally.outcomes = outcomes
        tally.primary_errors = primary_errors

    def busy(self) -> bool:
        get = self.registry.get_sample_value
        backlog = (get("shadowdiff_comparison_backlog", {"stage": "queue"}) or 0.0) + (
            get("shadowdiff_comparison_backlog", {"stage": "store"}) or 0.0
        )
        inflight = get("shadowdiff_shadow_inflight") or 0.0
        return backlog > BACKLOG_LIMIT or inflight > self.max_inflight * 3 // 4

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if now - self._checked >= PRESSURE_CHECK_SECONDS:
                self._checked = now
                self._busy = self.busy()
            if not self._busy:
                return
            await asyncio.sleep(PRESSURE_CHECK_SECONDS)


async def count(source: Source, preparer: Preparer, view: View, tally: Tally) -> None:
    """The first pass: count what can be replayed, show every bad entry (their position and why) once."""
    async for item in _prepared(source, preparer):
        if isinstance(item, Bad):
            tally.bad += 1
            view.bad(Bad(f"{source.name}: {item.where}", item.reason))
        else:
            tally.total += 1
    tally.notes = Counter(source.notes)
    if preparer.filtered_out:
        tally.notes["requests left out by --filter"] = preparer.filtered_out


async def _prepared(source: Source, preparer: Preparer) -> AsyncIterator[Request | Bad]:
    preparer.filtered_out = 0
    async for item in source.items():
        if isinstance(item, Bad):
            yield item
            continue
        prepared = preparer.prepare(item)
        if prepared is not None:
            yield prepared


async def _requests(source: Source, preparer: Preparer) -> AsyncIterator[Request]:
    async for item in _prepared(source, preparer):
        if isinstance(item, Request):
            yield item


def replay_settings(settings: Settings) -> Settings:
    """The live settings with every service sampled in full (see the module docstring)."""
    services = {name: s.model_copy(update={"sample_rate": 1.0}) for name, s in settings.services.items()}
    return settings.model_copy(update={"services": services})


async def replay(
    settings: Settings, spec: str, options: Options, view: View, stop: asyncio.Event, tally: Tally
) -> Tally:
    """Replay `spec` into the store of `settings`; `tally` is filled as it goes (and after a stop, as far as it got).

    SourceError: the source cannot be read at all.
    """
    settings = replay_settings(settings)
    async with AsyncExitStack() as stack:
        store = await Store.from_settings(settings)
        stack.push_async_callback(store.close)
        source = open_source(spec, store=store, since=options.since)
        preparer = Preparer(
            RouteTable(settings.services),
            set_headers=options.set_headers,
            session_header=options.session_header or settings.capture.session_header,
            session_cookie=options.session_cookie or settings.capture.session_cookie,
            filters=options.filters,
            services=settings.services,
            limits=ServerLimits(
                max_header_line=settings.max_header_line,
                max_header_size=settings.max_header_size,
                max_header_count=settings.max_header_count,
            ),
        )
        await count(source, preparer, view, tally)
        if stop.is_set() or not tally.total:
            tally.interrupted = stop.is_set()
            return tally
        proxy, meter = await _data_plane(settings, store, options.run_id, stack)
        await proxy.open()
        stack.push_async_callback(proxy.aclose)  # drains mirrored requests first: runs before the sink's close

        async def send(request: Request) -> None:
            tally.sent += 1
            await _send(proxy, request, tally)

        view.start(tally, f"{source.name} ({source.kind})")
        watcher = asyncio.get_running_loop().create_task(_watch(meter, view, tally))
        try:
            scheduler = Scheduler(
                send,
                concurrency=options.concurrency,
                rate=options.rate,
                speed=options.speed,
                stop=stop,
                ready=meter.ready,
            )
            await scheduler.run(_requests(source, preparer))
        finally:
            watcher.cancel()
            tally.interrupted = stop.is_set()
            await stack.aclose()  # every mirrored request answered, every exchange compared and stored
            meter.read(tally)
            view.stop(tally)
    return tally


async def _data_plane(settings: Settings, store: Store, run_id: str, stack: AsyncExitStack) -> tuple[Proxy, _Meter]:
    """What `proxy.runtime.server.build_proxy` builds for live traffic, with in-memory id pairs (see above)."""
    state = PrimaryState(settings.services, store, refresh_seconds=settings.state_refresh_seconds)
    await state.refresh()  # the promoted primaries, as the live proxy and the reports see them
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    correlator = IdCorrelator(settings.correlation_capacity)
    sink = AnalysisChannel(settings, metrics)  # the live proxy's analysis process: compares and stores off this loop
    await sink.start()
    correlator.on_pairs = sink.learned  # kept in memory here, but the analysis needs them to discount paired ids
    # Generous: a replay waits for its comparisons rather than leaving before they are stored.
    stack.push_async_callback(sink.aclose, max(settings.drain_seconds, 60.0))
    proxy = Proxy(settings, primaries=state, sink=_Labelled(sink, run_id), metrics=metrics, correlator=correlator)
    return proxy, _Meter(registry, settings.max_inflight_shadow)


async def _send(proxy: Proxy, request: Request, tally: Tally) -> None:
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            tally.answered += 1

    try:
        await proxy(request.scope(), receive, send)
    except Exception:
        tally.failed += 1
        log.exception("the data plane failed on a replayed request", where=request.where)


async def _watch(meter: _Meter, view: View, tally: Tally, every: float = 0.25) -> None:
    while True:
        meter.read(tally)
        view.update(tally)
        await asyncio.sleep(every)


__all__ = ["Options", "SourceError", "Tally", "View", "replay"]
