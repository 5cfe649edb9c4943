"""proxy.dataplane.metrics: bounded labels, negative latency deltas, and the series the proxy exposes after traffic."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from proxy.config import ServiceConfig
from proxy.dataplane.metrics import DELTA_BUCKETS, ProxyMetrics, status_class
from tests.proxy.upstreams import Recorder, fixed, proxy_stack, sample, settings_for
from tests.servers import run_server


def test_each_instance_has_its_own_registry() -> None:
    first, second = ProxyMetrics(CollectorRegistry()), ProxyMetrics(CollectorRegistry())
    first.request("orders", "GET", 200)
    assert sample(first, "shadowdiff_requests_total", service="orders", method="GET", status_class="2xx") == 1
    assert sample(second, "shadowdiff_requests_total", service="orders", method="GET", status_class="2xx") == 0


def test_unknown_methods_and_statuses_collapse_into_bounded_labels() -> None:
    metrics = ProxyMetrics(CollectorRegistry())
    for n in range(50):
        metrics.request("orders", f"M{n}", 200)
    metrics.request("orders", "GET", 999)
    assert sample(metrics, "shadowdiff_requests_total", service="orders", method="OTHER", status_class="2xx") == 50
    assert sample(metrics, "shadowdiff_requests_total", service="orders", method="GET", status_class="other") == 1
    assert len(metrics._request_children) == 2
    assert [status_class(s) for s in (101, 204, 302, 404, 503)] == ["1xx", "2xx", "3xx", "4xx", "5xx"]


def test_the_delta_histogram_spans_negative_values() -> None:
    metrics = ProxyMetrics(CollectorRegistry())
    metrics.delta("orders", -0.02)
    metrics.delta("orders", 0.3)
    assert DELTA_BUCKETS[0] < 0 < DELTA_BUCKETS[-1] and list(DELTA_BUCKETS) == sorted(DELTA_BUCKETS)
    assert sample(metrics, "shadowdiff_latency_delta_seconds_bucket", service="orders", le="-0.01") == 1
    assert sample(metrics, "shadowdiff_latency_delta_seconds_bucket", service="orders", le="0.0") == 1
    assert sample(metrics, "shadowdiff_latency_delta_seconds_bucket", service="orders", le="0.5") == 2


def test_inflight_gauge_is_summed_across_worker_processes(tmp_path: Path) -> None:
    # With --workers N, /metrics reads what each worker wrote to PROMETHEUS_MULTIPROC_DIR: a scrape-time function
    # would show 0 there. A fresh interpreter, since prometheus_client picks its mode at import.
    script = textwrap.dedent(
        """
        from prometheus_client import CollectorRegistry, multiprocess
        from proxy.dataplane.metrics import ProxyMetrics
        metrics = ProxyMetrics(CollectorRegistry())
        metrics.shadow_inflight.inc(3)
        metrics.shadow_inflight.dec()
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        print(scrape.get_sample_value("shadowdiff_shadow_inflight"))
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2.0"


def _feed(metrics: ProxyMetrics) -> None:
    latencies = [0.0004, 0.001, 0.0011, 0.02, 0.02, 0.3, 7.0, 45.0]  # on bounds, between them, past the last
    for n, seconds in enumerate(latencies):
        metrics.request("orders", "GET", 200 if n % 3 else 503)
        metrics.upstream("orders", "primary", "v1", seconds)
        metrics.delta("orders", seconds - 0.01)
        metrics.inflight(2)
        metrics.inflight(-1)


def test_deferred_updates_appear_at_flush_exactly_as_immediate_ones() -> None:
    immediate, deferred = ProxyMetrics(CollectorRegistry()), ProxyMetrics(CollectorRegistry(), deferred=True)
    _feed(immediate)
    _feed(deferred)
    assert (
        sample(deferred, "shadowdiff_upstream_latency_seconds_count", service="orders", role="primary", app="v1") == 0
    )
    assert sample(deferred, "shadowdiff_shadow_inflight") == 0
    deferred.flush()
    assert _values(deferred) == _values(immediate)  # every bucket, sum and count
    deferred.flush()  # nothing pending: nothing changes
    assert _values(deferred) == _values(immediate)


def test_the_histogram_internals_that_batched_observations_write() -> None:
    # prometheus_client has no public batch observe, so a flush writes a child's `_buckets` (one value per upper
    # bound, +Inf last, not cumulative) and `_sum`. The lock pins the version; an upgrade that changes them fails here.
    histogram = Histogram("probe_seconds", "probe", buckets=(1.0, 2.0), registry=CollectorRegistry())
    for value in (0.5, 1.0, 1.5, 5.0):
        histogram.observe(value)
    assert [bucket.get() for bucket in histogram._buckets] == [2, 1, 1]
    assert histogram._sum.get() == 8.0

    metrics = ProxyMetrics(CollectorRegistry(), deferred=True)
    metrics.upstream("orders", "primary", "v1", 0.003)
    child = metrics.upstream_latency.labels("orders", "primary", "v1")

    def refuse(value: float) -> None:
        raise AssertionError("observed one by one: the batched path was not taken")

    child.observe = refuse  # type: ignore[method-assign]
    metrics.flush()
    assert sample(metrics, "shadowdiff_upstream_latency_seconds_bucket", service="orders", role="primary",
                  app="v1", le="0.005") == 1  # fmt: skip


def _values(metrics: ProxyMetrics) -> list[str]:
    """The exposition without the `_created` timestamps (when each child was made)."""
    return [line for line in generate_latest(metrics.registry).decode().splitlines() if "_created" not in line]


def test_deferred_updates_reach_the_multiprocess_files(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from prometheus_client import CollectorRegistry, multiprocess
        from proxy.dataplane.metrics import ProxyMetrics
        metrics = ProxyMetrics(CollectorRegistry(), deferred=True)
        for _ in range(3):
            metrics.request("orders", "GET", 200)
            metrics.upstream("orders", "primary", "v1", 0.003)
        metrics.inflight(3)
        metrics.inflight(-1)

        async def run_for_a_moment():
            flusher = asyncio.get_running_loop().create_task(metrics.flush_every(0.05))
            await asyncio.sleep(0.2)
            metrics.request("orders", "GET", 200)  # after the last periodic flush: the final one applies it
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

        asyncio.run(run_for_a_moment())
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
        labels = {"service": "orders", "method": "GET", "status_class": "2xx"}
        print(scrape.get_sample_value("shadowdiff_requests_total", labels))
        latency = {"service": "orders", "role": "primary", "app": "v1", "le": "0.005"}
        print(scrape.get_sample_value("shadowdiff_upstream_latency_seconds_bucket", latency))
        print(scrape.get_sample_value("shadowdiff_shadow_inflight"))
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4.0", "3.0", "2.0"]


async def test_metrics_after_traffic_have_the_right_labels_and_no_paths() -> None:
    services = {
        "orders": ServiceConfig(prefixes=("/api/orders",)),
        "default": ServiceConfig(prefixes=("/",), sample_rate=0.0),
    }
    async with run_server(Recorder("v1")) as u1, run_server(Recorder("v2", fixed(503, b"busy"))) as u2:
        async with proxy_stack(settings_for(u1, u2, services=services)) as stack, httpx.AsyncClient() as client:
            for n in range(5):
                await client.get(f"{stack.url}/api/orders/{n}")
            await client.post(f"{stack.url}/other/page")
            await stack.sink.wait(6)
    m = stack.metrics
    assert sample(m, "shadowdiff_requests_total", service="orders", method="GET", status_class="2xx") == 5
    assert sample(m, "shadowdiff_requests_total", service="default", method="POST", status_class="2xx") == 1
    assert sample(m, "shadowdiff_upstream_latency_seconds_count", service="orders", role="primary", app="v1") == 5
    assert sample(m, "shadowdiff_upstream_latency_seconds_count", service="orders", role="shadow", app="v2") == 5
    assert sample(m, "shadowdiff_latency_delta_seconds_count", service="orders") == 5
    assert sample(m, "shadowdiff_skipped_total", service="default", reason="sampled_out") == 1
    assert sample(m, "shadowdiff_shadow_inflight") == 0
    exposed = generate_latest(m.registry).decode()
    assert "/api/orders" not in exposed and "/other" not in exposed
