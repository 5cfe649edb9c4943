"""/ready fails while store writes fail past `unready_after_seconds`; /live does not; marks reach the comparer."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from diffs.storage import Store
from proxy.analysis.analyzer import Analyzer
from proxy.analysis.metrics import AnalysisMetrics
from proxy.config import load_settings
from proxy.control.admin import create_admin_app
from proxy.control.promotion import PrimaryState
from proxy.dataplane.metrics import ProxyMetrics
from tests.factories import exchange, order_body, primary, shadow


async def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.02)


async def test_ready_turns_503_while_every_write_fails_and_back_when_they_succeed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    settings = load_settings(overrides={"unready_after_seconds": 0.3}, environ={})
    store = await Store.open(f"sqlite:///{path}", busy_timeout=0.02)
    registry = CollectorRegistry()
    metrics = AnalysisMetrics(ProxyMetrics(registry))  # the worker's, fed by its analysis process's reports
    analyzer = Analyzer(settings, store)
    analyzer.writer.rollup_every = 0.02
    analyzer.writer.max_backoff = 0.05
    state = PrimaryState(settings.services, store)
    await state.start()
    await analyzer.start()
    app = create_admin_app(settings, state=state, registry=registry)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8900")

    async def ready() -> httpx.Response:
        metrics.set_store_failing(analyzer.progress()["failing_since"])  # what the channel does on each report
        return await client.get("/ready")

    locker = sqlite3.connect(path, isolation_level=None)
    try:
        assert (await ready()).json()["status"] == "ready"
        locker.execute("BEGIN EXCLUSIVE")  # every write now fails, as on a full disk or a dead database
        analyzer.exchange(exchange())
        await _until(lambda: analyzer.writer.failing_since is not None)
        assert (await ready()).status_code == 200  # failing, but not yet for 0.3 s
        await asyncio.sleep(0.4)
        unready = await ready()
        assert unready.status_code == 503 and "store writes have failed for" in unready.json()["reasons"][0]
        assert (await client.get("/live")).status_code == 200  # a database outage never restarts the process
        locker.execute("COMMIT")
        await _until(lambda: analyzer.writer.failing_since is None)
        assert (await ready()).status_code == 200
        assert analyzer.writer.written_rows == 1 and analyzer.writer.dropped_rows == 0
    finally:
        locker.close()
        await client.aclose()
        await analyzer.aclose(2)
        await state.aclose()
        await store.close()


async def test_a_noise_mark_made_elsewhere_reaches_the_comparer_without_its_slow_refresh(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    admin_store, worker_store = await Store.open(url), await Store.open(url)
    analyzer = Analyzer(load_settings(environ={}), worker_store)
    await analyzer.start()
    try:
        assert analyzer.marks_refresh_seconds == 12  # it follows the feed; the loop (12 x 1 s) only catches misses
        await admin_store.add_noise_mark("GET /api/orders/{id}", "root.total", "rounding")
        different = exchange(primary=primary(order_body(total="27.00")), shadow=shadow(order_body(total="28.00")))
        await _until(lambda: analyzer.comparer.compare(different).outcome.value == "match")
        assert analyzer.comparer.compare(different).outcome.value == "match"
    finally:
        await analyzer.aclose(2)
        await admin_store.close()
        await worker_store.close()


def test_ready_reads_every_process_s_failing_writes_in_multiprocess_mode(tmp_path: Path) -> None:
    # With --workers N the admin plane runs in the supervisor: it hears of a worker's failing writes only through
    # the metric files. Two writing processes, one failing for 100 s: /ready judges the oldest failure.
    child = textwrap.dedent(
        """
        import sys, time
        from prometheus_client import CollectorRegistry
        from proxy.analysis.metrics import AnalysisMetrics
        from proxy.dataplane.metrics import ProxyMetrics
        metrics = AnalysisMetrics(ProxyMetrics(CollectorRegistry()))
        failing = float(sys.argv[1])
        metrics.set_store_failing(time.time() - failing if failing else None)
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for failing in ("0", "100"):
        done = subprocess.run([sys.executable, "-c", child, failing], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
    scrape = textwrap.dedent(
        """
        import asyncio, httpx, json
        from prometheus_client import CollectorRegistry, multiprocess
        from proxy.config import load_settings
        from proxy.control.admin import create_admin_app
        from proxy.control.promotion import PrimaryState

        class Fresh:
            staleness = 0.0
            services = {}

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        app = create_admin_app(load_settings(environ={}), state=Fresh(), registry=registry)

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8900") as client:
                response = await client.get("/ready")
                print(json.dumps([response.status_code, response.json()]))

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", scrape], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout)
    assert status == 503 and 99 <= body["store_failing_seconds"] < 200
