"""proxy.analysis.channel with real analysis processes: compared and stored elsewhere, bounded, restarted, drained,
and a heavy comparison never delays a client."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from diffs.exchange import Exchange, Outcome, SentRequest
from diffs.id_pairs import IdPair
from diffs.report import Window
from diffs.storage import Store, queries
from proxy.analysis import wire
from proxy.analysis.channel import AnalysisChannel
from proxy.config import Settings, load_settings
from proxy.dataplane.metrics import ProxyMetrics
from tests.factories import exchange, order_body, primary, request, shadow
from tests.servers import run_server, run_shadowdiff

SLOW_RULES = {"ai": {"rules": {"text_similarity": [{"path": "root.text", "threshold": 0.5}]}}}
"""A real rule that makes a comparison CPU-heavy: word-level difflib over long texts with few distinct words."""


def slow_texts(words: int = 9000) -> tuple[str, str]:
    """Two texts whose similarity costs seconds of CPU to compute (quadratic in `words`: ~2 s here for 9,000)."""
    rng = random.Random(9)
    tokens = [f"w{i % 10}" for i in range(words)]
    return " ".join(tokens), " ".join(rng.sample(tokens, len(tokens)))


def heavy_exchange() -> Exchange:
    first, second = slow_texts()
    return exchange(
        service="ai",
        request=request("POST", "/api/ai/generate", json={"prompt": "x"}),
        primary=primary({"text": first}),
        shadow=shadow({"text": second}),
    )


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values = {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", "services": SLOW_RULES, **overrides}
    return load_settings(overrides=values, environ={})


def counted(metrics: ProxyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def metrics() -> ProxyMetrics:
    return ProxyMetrics(CollectorRegistry())


async def stored(settings: Settings, *ids: str) -> list[Any]:
    store = await Store.open(settings.database_url)
    try:
        return [await store.get_exchange(i) for i in ids]
    finally:
        await store.close()


async def outcomes(settings: Settings) -> dict[str, int]:
    """Every exchange counted in the store's rollups, by outcome."""
    store = await Store.open(settings.database_url)
    try:
        found = await queries.totals(store, Window())
    finally:
        await store.close()
    total: dict[str, int] = {}
    for t in found.values():
        for outcome, n in t.outcomes.items():
            total[outcome] = total.get(outcome, 0) + n
    return total


async def test_exchanges_are_compared_and_stored_by_another_process(tmp_path: Path, metrics: ProxyMetrics) -> None:
    config = settings(tmp_path)
    channel = AnalysisChannel(config, metrics)
    await channel.start()
    try:
        same = exchange(path="/api/orders/7")
        different = exchange(primary=primary(order_body(total="27.00")), shadow=shadow(order_body(total="28.00")))
        assert channel.submit(same) and channel.submit(different)
        await eventually(lambda: channel.pending == 0, 10, "both settled")
        assert channel.pid is not None and channel.pid != os.getpid()
        labels = {"service": "orders", "endpoint": "GET /api/orders/{id}"}
        assert counted(metrics, "shadowdiff_comparisons_total", outcome="match", **labels) == 1
        assert counted(metrics, "shadowdiff_comparisons_total", outcome="diff", **labels) == 1
        assert counted(metrics, "shadowdiff_field_diffs_total", noise="false", **labels) == 1
    finally:
        await channel.aclose(5)
    first, second = await stored(config, same.id, different.id)
    assert first.summary.outcome is Outcome.MATCH and [d.path for d in second.diffs] == ["root.total"]


async def test_the_analysis_process_runs_at_the_configured_niceness_below_its_worker(
    tmp_path: Path, metrics: ProxyMetrics
) -> None:
    channel = AnalysisChannel(settings(tmp_path, analysis_niceness=7), metrics)
    await channel.start()
    try:
        assert channel.pid is not None
        expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
        assert os.getpriority(os.PRIO_PROCESS, channel.pid) == expected
    finally:
        await channel.aclose(5)


async def test_the_analysis_process_applies_pairs_by_resource_aligns_lists_and_keeps_what_each_side_was_sent(
    tmp_path: Path, metrics: ProxyMetrics
) -> None:
    """Across the process boundary: id pairs the data plane learned (typed, per resource), the shadow's rewritten
    request, and diffs that say where they sit on each side, as the in-process pipeline had them."""
    config = settings(tmp_path)
    channel = AnalysisChannel(config, metrics)
    await channel.start()
    sent = SentRequest("/api/orders/1007", (("host", "127.0.0.1:8002"), ("x-shadow-request", "1")))
    items = [{"id": 1, "stock": 5}, {"id": 2, "stock": 3}]
    item = exchange(
        path="/api/orders/7",
        primary=primary({"id": 7, "items": items}),
        shadow=replace(shadow({"id": 1007, "items": [{"id": 2, "stock": 4}, {"id": 1, "stock": 5}]}), sent=sent),
    )
    try:
        channel.learned([IdPair("orders", "/api/orders", "v1", 7, "v2", 1007)])  # ahead of the exchange, as on_pairs
        assert channel.submit(item)
        await eventually(lambda: channel.pending == 0, 10, "settled")
    finally:
        await channel.aclose(5)
    (row,) = await stored(config, item.id)
    assert row.shadow.sent == sent
    found = {(d.path, d.kind.value): (d.noise, d.primary_at, d.shadow_at) for d in row.diffs}
    assert found[("root.id", "changed")][0] is True  # order 7 is order 1007 there: paired, not a finding
    assert found[("root.items", "reordered")][0] is False
    assert found[("root.items[*].stock", "changed")] == (False, "root.items[1].stock", "root.items[0].stock")
    assert row.summary.outcome is Outcome.DIFF


async def test_a_drop_past_the_records_bound_is_counted_without_encoding_a_record(
    tmp_path: Path, metrics: ProxyMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = AnalysisChannel(settings(tmp_path, queue_size=1), metrics)  # not started: it holds what it takes
    channel.max_records = 1
    encoded: list[str] = []
    real = wire.dropped_parts

    def dropped_parts(item: Exchange, reason: str) -> list[bytes]:
        encoded.append(item.id)
        return real(item, reason)

    monkeypatch.setattr(wire, "dropped_parts", dropped_parts)
    items = [exchange() for _ in range(3)]
    assert [channel.submit(item) for item in items] == [True, False, False]
    assert encoded == [items[1].id]  # the third drop's record did not fit: never built
    assert channel.unrecorded == 1 and counted(metrics, "shadowdiff_dropped_total", reason="unrecorded") == 1


def test_the_body_bound_is_queue_bytes_and_never_below_four_of_the_largest_responses(
    tmp_path: Path, metrics: ProxyMetrics
) -> None:
    big = b"x" * (5 * 1024 * 1024)
    default = AnalysisChannel(settings(tmp_path), metrics)  # not started: nothing settles, the channel holds it all
    # A burst of large exchanges fits the default (7 × 700 KiB pairs overflowed the old 8 MiB and were dropped).
    assert [default.submit(exchange(primary=primary(body=big), shadow=shadow(body=big))) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    floor = settings(tmp_path, queue_bytes=0, max_response_body=3 * 1024 * 1024)
    assert AnalysisChannel(floor, ProxyMetrics(CollectorRegistry())).max_bytes == 12 * 1024 * 1024


async def test_a_full_channel_drops_counts_and_still_leaves_a_dropped_row(
    tmp_path: Path, metrics: ProxyMetrics
) -> None:
    config = settings(tmp_path, queue_size=2, queue_bytes=8 * 1024 * 1024)
    channel = AnalysisChannel(config, metrics)  # not started yet: nothing is settled, the channel holds it all
    items = [exchange() for _ in range(3)]
    assert [channel.submit(item) for item in items] == [True, True, False]
    assert channel.dropped == 1
    big = b"x" * (5 * 1024 * 1024)
    assert not channel.submit(exchange(primary=primary(body=big), shadow=shadow(body=big)))  # past 8 MiB of bodies
    channel.max_records = 2
    assert not channel.submit(exchange())  # a third drop record does not fit: counted, with no row
    assert counted(metrics, "shadowdiff_dropped_total", reason="unrecorded") == 1
    await channel.start()
    await channel.aclose(5)
    rows = await stored(config, *(item.id for item in items))
    assert [row.summary.outcome for row in rows] == [Outcome.MATCH, Outcome.MATCH, Outcome.DROPPED]
    assert rows[2].summary.skip_reason == "queue_full"


async def test_a_killed_analysis_process_is_replaced_and_what_it_held_is_counted_as_lost(
    tmp_path: Path, metrics: ProxyMetrics
) -> None:
    config = settings(tmp_path)
    channel = AnalysisChannel(config, metrics)
    await channel.start()
    try:
        first_pid = channel.pid
        assert first_pid is not None
        held = [heavy_exchange(), exchange(), exchange()]  # the first keeps it busy for seconds
        assert all(channel.submit(item) for item in held)
        await asyncio.sleep(0.3)
        assert channel.pending == 3
        os.kill(first_pid, signal.SIGKILL)
        await eventually(lambda: channel.pid != first_pid and channel.waiting == 0, 30, "replaced, lost rows written")
        assert channel.lost == 3 and channel.restarts == 1
        assert counted(metrics, "shadowdiff_dropped_total", reason="analysis_lost") == 3
        assert counted(metrics, "shadowdiff_analysis_restarts_total") == 1
        after = exchange()
        assert channel.submit(after)
        await eventually(lambda: channel.pending == 0, 10, "the new process compares")
    finally:
        await channel.aclose(5)
    rows = await stored(config, *(item.id for item in held), after.id)
    assert [(r.summary.outcome, r.summary.skip_reason) for r in rows[:3]] == [(Outcome.DROPPED, "analysis_lost")] * 3
    assert rows[3].summary.outcome is Outcome.MATCH


async def test_shutdown_drains_what_was_handed_on(tmp_path: Path, metrics: ProxyMetrics) -> None:
    config = settings(tmp_path)
    channel = AnalysisChannel(config, metrics)
    await channel.start()
    items = [exchange() for _ in range(200)]
    assert all(channel.submit(item) for item in items)
    await channel.aclose(10)  # at once: the process compares and stores all of it before it exits
    assert channel.pending == 0
    assert counted(metrics, "shadowdiff_dropped_total", reason="shutdown") == 0
    assert await outcomes(config) == {"match": 200}  # every one counted (and a few kept as examples)


# -- through a real server ---------------------------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _analysis_pid() -> int | None:
    for pid in _children(os.getpid()):
        try:
            if b"proxy.analysis.process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _upstream(name: str, text: str) -> Starlette:
    async def generate(request: Request) -> JSONResponse:
        return JSONResponse({"text": text})

    async def other(request: Request) -> JSONResponse:
        return JSONResponse({"app": name})

    return Starlette(routes=[Route("/api/ai/generate", generate, methods=["POST"]), Route("/{p:path}", other)])


@pytest.fixture
async def slow_pair() -> AsyncIterator[tuple[str, str]]:
    first, second = slow_texts()
    async with run_server(_upstream("v1", first)) as v1, run_server(_upstream("v2", second)) as v2:
        yield v1, v2


async def test_a_heavy_comparison_does_not_delay_clients(tmp_path: Path, slow_pair: tuple[str, str]) -> None:
    # Small requests at a fixed rate, latency counted from when each was due, with an exchange whose comparison costs
    # seconds of CPU sent among them. Were the comparison on the serving loop (this test's loop too), the requests due
    # meanwhile would wait for all of it; in its own process they are answered as usual, and that process spends it.
    v1, v2 = slow_pair
    config = settings(tmp_path, v1_url=v1, v2_url=v2, port=0, admin_port=0, drain_seconds=1)
    async with run_shadowdiff(config) as server, httpx.AsyncClient(timeout=30) as client:
        analysis = _analysis_pid()
        cpu_before = _cpu_seconds(analysis) if analysis is not None else 0.0

        async def heavy() -> str:
            await asyncio.sleep(0.3)
            response = await client.post(f"{server.proxy_url}/api/ai/generate", json={"prompt": "x"})
            assert response.status_code == 200
            return response.headers["x-request-id"]

        sending = asyncio.get_running_loop().create_task(heavy())
        latencies = []
        start = time.monotonic()
        for n in range(150):  # 50 a second for 3 s
            due = start + n * 0.02
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            assert (await client.get(f"{server.proxy_url}/api/products/1")).status_code == 200
            latencies.append(time.monotonic() - due)
        request_id = await sending
        exchange_url = f"{server.admin_url}/api/v1/exchanges/{request_id}"
        deadline = time.monotonic() + 60
        while (found := await client.get(exchange_url)).status_code != 200:
            assert time.monotonic() < deadline, "the heavy exchange was never stored"
            await asyncio.sleep(0.1)
        assert found.json()["outcome"] == "diff"
        assert max(latencies) < 1.0, sorted(latencies)[-5:]
        assert analysis is not None and analysis != os.getpid()
        assert _cpu_seconds(analysis) - cpu_before > 1.0  # the comparison's CPU went there
