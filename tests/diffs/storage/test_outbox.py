"""The outbox: kept and retried while the store is unavailable, bounded, every loss counted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from diffs.storage import StoreUnavailable
from diffs.storage.outbox import Outbox
from proxy.errors import StoreError


class Target:
    def __init__(self, failures: int = 0, refuse: object = None) -> None:
        self.failures = failures
        self.refuse = refuse
        self.written: list[int] = []

    async def write(self, items: Sequence[int]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("database unavailable: connection refused")
        if self.refuse in items:
            raise StoreError("value too long")
        self.written += items


async def test_items_survive_an_outage_and_are_written_in_order() -> None:
    target = Target(failures=4)
    counted: list[tuple[str, int]] = []
    box: Outbox[int] = Outbox(target.write, name="t", max_backoff=0.01, on_count=lambda o, n: counted.append((o, n)))
    box.put(range(5))
    box.put(range(5, 8))
    await asyncio.wait_for(box.flush(), 5)
    assert target.written == list(range(8)) and box.pending == 0
    assert box.counts["written"] == 8 and box.counts["retried"] >= 4 and not box.failing
    assert not any(o.startswith("dropped") for o, _ in counted)
    await box.aclose()


async def test_bounded_refused_and_shutdown_losses_are_counted() -> None:
    target = Target(refuse=3)
    box: Outbox[int] = Outbox(target.write, name="t", max_items=4, max_batch=2)
    box.put(range(6))  # 0 and 1 go: only four wait at most
    await box.flush()
    assert box.counts["dropped_full"] == 2 and box.counts["dropped_rejected"] == 2  # the batch holding 3
    assert target.written == [4, 5]
    down = Target(failures=10**9)
    stuck: Outbox[int] = Outbox(down.write, name="t", max_backoff=0.01)
    stuck.put(range(3))
    await asyncio.sleep(0.05)
    await stuck.aclose(timeout=0.05)
    assert stuck.counts["dropped_shutdown"] == 3
    await box.aclose()
