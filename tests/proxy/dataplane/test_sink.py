"""proxy.dataplane.sink: a bounded queue that never blocks the proxy, drained by workers, closed with a deadline."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from diffs.exchange import Exchange
from proxy.dataplane.sink import LoggingSink, QueueSink
from tests.proxy.factories import exchange


async def test_sync_and_async_handlers_receive_every_exchange() -> None:
    got: list[str] = []

    async def handle(item: Exchange) -> None:
        await asyncio.sleep(0)
        got.append(item.id)

    for handler in (handle, lambda item: got.append(item.id)):
        got.clear()
        sink = QueueSink(handler, maxsize=10, workers=2)
        await sink.start()
        assert all(sink.submit(exchange(n)) for n in range(5))
        await sink.aclose(timeout=1.0)
        assert sorted(got) == [f"id-{n}" for n in range(5)]
        assert sink.handled == 5


async def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    reasons: list[str] = []
    sink = QueueSink(lambda item: None, maxsize=2, on_drop=reasons.append)  # not started: nothing consumes
    assert sink.submit(exchange(1)) and sink.submit(exchange(2))
    assert not sink.submit(exchange(3))
    assert sink.dropped == 1 and reasons == ["queue_full"] and sink.pending == 2


async def test_a_byte_budget_bounds_the_bodies_held() -> None:
    reasons: list[str] = []
    sink = QueueSink(lambda item: None, maxsize=100, max_bytes=10, on_drop=reasons.append)
    small = exchange(1)  # bodies: b"{}" on the primary and the shadow: 4 bytes
    assert sink.submit(small) and sink.submit(exchange(2))
    assert not sink.submit(exchange(3))  # 12 > 10
    assert reasons == ["queue_full"] and sink.held_bytes == 8
    await sink.start()
    await sink.aclose(timeout=1.0)
    assert sink.held_bytes == 0


async def test_a_failing_handler_does_not_stop_the_worker() -> None:
    seen: list[str] = []

    def handle(item: Exchange) -> None:
        seen.append(item.id)
        if item.id == "id-0":
            raise ValueError("bad exchange")

    sink = QueueSink(handle, maxsize=10)
    await sink.start()
    with capture_logs() as logs:
        sink.submit(exchange(0))
        sink.submit(exchange(1))
        await sink.aclose(timeout=1.0)
    assert seen == ["id-0", "id-1"] and sink.failed == 1 and sink.handled == 1
    assert any(entry["event"] == "exchange handler failed" for entry in logs)


async def test_aclose_gives_up_after_the_timeout_and_refuses_new_work() -> None:
    release = asyncio.Event()

    async def stuck(item: Exchange) -> None:
        await release.wait()

    sink = QueueSink(stuck, maxsize=10)
    await sink.start()
    sink.submit(exchange(0))
    sink.submit(exchange(1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with capture_logs():
        await sink.aclose(timeout=0.1)
    assert loop.time() - started < 0.5
    assert not sink.submit(exchange(2))


def test_bad_bounds_are_rejected() -> None:
    with pytest.raises(ValueError):
        QueueSink(lambda item: None, maxsize=0)


def test_logging_sink_logs_one_line_per_exchange() -> None:
    with capture_logs() as logs:
        assert LoggingSink().submit(exchange(3))
    [entry] = logs
    assert entry["event"] == "exchange" and entry["id"] == "id-3"
    assert entry["primary_status"] == 200 and entry["shadow_status"] == 200 and entry["service"] == "orders"
