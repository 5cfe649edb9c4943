"""proxy.dataplane.mirroring: the in-flight cap, resolving flights, draining, and failures that stay data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from diffs.exchange import ErrorKind, Exchange, RecordedRequest, Role, SideResponse
from diffs.resources import IdNaming, Resource
from proxy.dataplane.correlation import IdCorrelator, ServiceIds
from proxy.dataplane.forwarding import Upstream
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.mirroring import Job, Mirror, MirrorCall
from proxy.dataplane.ordering import CausalOrder
from tests.proxy.upstreams import ListSink, Recorder, fixed, sample
from tests.servers import run_server

PRIMARY = SideResponse(Role.PRIMARY, "v1", 200, (), b'{"id": 1}', 1.0)


IDS = ServiceIds.of(IdNaming())


def job(n: int = 0, *, timeout: float = 1.0, method: str = "GET", path: str | None = None) -> Job:
    path = path or f"/api/orders/{n}"
    request = RecordedRequest(method, path, "", (), b"")
    return Job(f"id-{n}", datetime.now(UTC), "orders", request, path, False, timeout, 10_000, IDS)


@pytest.fixture
async def shadow() -> AsyncIterator[tuple[Recorder, Upstream]]:
    recorder = Recorder("v2")
    async with run_server(recorder) as url:
        upstream = Upstream("v2", url)
        await upstream.open()
        try:
            yield recorder, upstream
        finally:
            await upstream.aclose()


def mirror(
    sink: Any = None, *, cap: int = 10, correlator: IdCorrelator | None = None, order: CausalOrder | None = None
) -> tuple[Mirror, ProxyMetrics]:
    metrics = ProxyMetrics(CollectorRegistry())
    built = Mirror(sink=sink or ListSink(), metrics=metrics, correlator=correlator, max_inflight=cap, order=order)
    return built, metrics


def call(upstream: Upstream) -> MirrorCall:
    return MirrorCall(Role.SHADOW, "v2", upstream, [("x-shadow-request", "1")])


async def test_a_flight_becomes_one_exchange_once_the_primary_answers(shadow: tuple[Recorder, Upstream]) -> None:
    recorder, upstream = shadow
    sink = ListSink()
    m, metrics = mirror(sink)
    flight = m.launch(job(), [call(upstream)])
    await recorder.arrived.wait()
    await asyncio.sleep(0.05)
    assert sink.exchanges == []  # the shadow has answered, the primary not yet
    m.primary_answered(flight, PRIMARY)
    [exchange] = await sink.wait(1)
    assert exchange.primary is PRIMARY and exchange.shadow is not None and exchange.shadow.status == 200
    assert m.inflight == 0 and sample(metrics, "shadowdiff_latency_delta_seconds_count", service="orders") == 1


async def test_past_the_cap_the_mirror_is_dropped_and_counted(shadow: tuple[Recorder, Upstream]) -> None:
    recorder, upstream = shadow
    recorder.delay = 0.2
    sink = ListSink()
    m, metrics = mirror(sink, cap=2)
    flights = [m.launch(job(n), [call(upstream)]) for n in range(5)]
    assert m.inflight == 2 and [len(f.sent) for f in flights] == [1, 1, 0, 0, 0]
    for flight in flights:
        m.primary_answered(flight, PRIMARY)
    assert len(sink.exchanges) == 3  # the dropped ones are recorded at once
    assert all(e.shadow is not None and e.shadow.error is ErrorKind.DROPPED for e in sink.exchanges)
    await sink.wait(5)
    assert m.inflight == 0 and m.max_seen == 2
    assert sample(metrics, "shadowdiff_dropped_total", reason="inflight_cap") == 3


async def test_a_flight_the_handler_gave_up_on_is_not_recorded(shadow: tuple[Recorder, Upstream]) -> None:
    _, upstream = shadow
    sink = ListSink()
    m, metrics = mirror(sink)
    m.primary_answered(m.launch(job(), [call(upstream)]), None)
    await m.drain(1.0)
    assert sink.exchanges == [] and sample(metrics, "shadowdiff_dropped_total", reason="primary_cancelled") == 1


async def test_drain_waits_then_cancels_and_releases_the_writes_in_flight(shadow: tuple[Recorder, Upstream]) -> None:
    recorder, upstream = shadow
    recorder.delay = 5.0
    order = CausalOrder(5.0)
    m, _ = mirror(correlator=IdCorrelator(100), order=order)
    flight = m.launch(job(method="POST", path="/api/orders"), [call(upstream)])
    m.expect_creates(flight, {"id": (Resource("/api/orders"), 1)})
    m.primary_answered(flight, PRIMARY)
    assert order.busy("v2", "orders")
    with capture_logs() as logs:
        assert await m.drain(0.1) == 1
    assert m.tasks == 0 and m.inflight == 0
    assert not order.busy("v2", "orders")  # a waiter would otherwise sit out its whole bound
    assert any(entry["event"] == "mirrored requests cancelled at shutdown" for entry in logs)
    recorder.release()


async def test_a_create_whose_side_answered_before_the_primary_is_paired_when_the_primary_answers() -> None:
    created = Recorder("v2", fixed_json(201, {"id": 1001}))
    async with run_server(created) as url:
        upstream = Upstream("v2", url)
        await upstream.open()
        correlator, order = IdCorrelator(100), CausalOrder(5.0)
        m, _ = mirror(correlator=correlator, order=order)
        flight = m.launch(job(method="POST", path="/api/orders"), [call(upstream)])
        await created.arrived.wait()
        for _ in range(100):
            if flight.closed:
                break
            await asyncio.sleep(0.01)
        assert order.busy("v2", "orders")  # answered, but the primary's id is not known yet
        m.expect_creates(flight, {"id": (Resource("/api/orders"), 1)})
        m.primary_answered(flight, PRIMARY)
        await m.drain(1.0)
        await upstream.aclose()
    assert correlator.pairs.lookup("orders", "/api/orders", "v1", "v2", 1) == 1001
    assert not order.busy("v2", "orders")


async def test_a_side_whose_request_head_would_not_be_valid_is_not_sent_and_is_recorded_skipped(
    shadow: tuple[Recorder, Upstream],
) -> None:
    # What the HTTP/1.1 client refuses to write (a CR/LF that would split the request line) never reaches the wire;
    # the write it was is released at once, so later requests to the resource do not wait for it.
    recorder, upstream = shadow
    sink, order = ListSink(), CausalOrder(5.0)
    m, metrics = mirror(sink, order=order)
    flight = m.launch(job(method="PUT", path="/api/orders/1\r\nX-Injected: 1"), [call(upstream)])
    m.primary_answered(flight, PRIMARY)
    [exchange] = await sink.wait(1)
    assert exchange.skip_reason == "unsafe_rewrite" and exchange.shadow is None and exchange.primary is PRIMARY
    assert sample(metrics, "shadowdiff_skipped_total", service="orders", reason="unsafe_rewrite") == 1
    assert recorder.seen == [] and not order.busy("v2", "orders") and m.inflight == 0


async def test_an_unexpected_bug_on_the_mirrored_side_is_recorded_not_raised() -> None:
    class Broken(Upstream):
        async def send(self, *args: Any, **kwargs: Any) -> Any:
            raise ValueError("bug")

    sink = ListSink()
    m, metrics = mirror(sink)
    with capture_logs() as logs:
        m.primary_answered(m.launch(job(), [call(Broken("v2", "http://127.0.0.1:1"))]), PRIMARY)
        [exchange] = await sink.wait(1)
    assert exchange.shadow is not None and exchange.shadow.error is ErrorKind.RESET
    assert sample(metrics, "shadowdiff_shadow_errors_total", service="orders", kind="reset") == 1
    assert any(entry["event"] == "mirrored request failed unexpectedly" for entry in logs)


async def test_a_failing_sink_costs_one_exchange_and_is_counted() -> None:
    class Exploding:
        def submit(self, exchange: Exchange) -> bool:
            raise RuntimeError("sink bug")

    m, metrics = mirror(Exploding())
    with capture_logs():
        m.primary_answered(m.launch(job(), []), PRIMARY)
    assert sample(metrics, "shadowdiff_dropped_total", reason="queue_full") == 1


def fixed_json(status: int, body: object) -> Any:
    return fixed(status, orjson.dumps(body))
