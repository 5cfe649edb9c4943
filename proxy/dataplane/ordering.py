"""Causal order for mirrored requests: a mirrored request waits until the earlier mirrored writes to the same
resource have been answered by that side, so the shadow sees the events in the primary's order.

Keys are (service, collection, id): a write to `/posts/5` holds (`/posts`, "5") and the collection (`/posts`, None);
a read of `/posts/5` waits for (`/posts`, "5"), a read of the list `/posts` for (`/posts`, None): every write to any
post. A create also holds the new item's key once the primary has answered with its id, so the client's next
`GET /posts/{new id}` waits for the shadow's create (and its id pair).

The bound: a request waits at most `wait_seconds` in all; past it, it is sent anyway and counted as a timeout
(`shadowdiff_causal_waits_total{outcome="timeout"}`), so a comparison may then show a race. Only the mirrored side
waits, never the client. Order holds within one worker process: with `--workers N` or replicas, a write and a read
that land on different workers are not ordered (a client's keep-alive connection stays on one worker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from diffs.resources import Target

Key = tuple[str, str, str | None]
"""(service, collection template, item id or None for the whole collection)."""


class Write:
    """One mirrored write in flight to one side; set when that side has answered it (or failed)."""

    __slots__ = ("event", "keys")

    def __init__(self, keys: set[Key]) -> None:
        self.event = asyncio.Event()
        self.keys = keys


def write_keys(service: str, target: Target) -> set[Key]:
    """What a write to this path changes: its item (if any), that item's collection, the collection it names."""
    keys: set[Key] = {(service, target.collection.collection, None)}
    if target.item is not None:
        keys.add((service, target.item.resource.collection, target.item.value))
        keys.add((service, target.item.resource.collection, None))
    return keys


def read_keys(service: str, target: Target, segments: int) -> set[Key]:
    """What a request to this path depends on: its item when it ends at one, else its collection (and its item)."""
    item = target.item
    if item is not None and item.index == segments - 1:
        return {(service, item.resource.collection, item.value)}
    keys: set[Key] = {(service, target.collection.collection, None)}
    if item is not None:
        keys.add((service, item.resource.collection, item.value))
    return keys


class CausalOrder:
    """Writes in flight per side (upstream name) and key; bounded by the mirrored requests in flight."""

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self._writes: dict[str, dict[Key, list[Write]]] = {}
        self._services: dict[tuple[str, str], int] = {}

    def busy(self, side: str, service: str) -> bool:
        """Whether any write of this service is in flight to this side (a cheap check before parsing a path)."""
        return self._services.get((side, service), 0) > 0

    def earlier(self, side: str, keys: Iterable[Key]) -> list[asyncio.Event]:
        """The writes in flight now that these keys depend on: taken when a request is launched, so it waits only
        for writes that came before it."""
        table = self._writes.get(side)
        if not table:
            return []
        events = {id(w): w.event for key in keys for w in table.get(key, ()) if not w.event.is_set()}
        return list(events.values())

    def begin(self, side: str, service: str, keys: set[Key]) -> Write:
        write = Write(set())
        self._services[(side, service)] = self._services.get((side, service), 0) + 1
        self.extend(side, write, keys)
        return write

    def extend(self, side: str, write: Write, keys: Iterable[Key]) -> None:
        """More keys for a write in flight (a create's new item, once the primary answered with its id)."""
        if write.event.is_set():
            return
        table = self._writes.setdefault(side, {})
        for key in keys:
            if key not in write.keys:
                write.keys.add(key)
                table.setdefault(key, []).append(write)

    def done(self, side: str, service: str, write: Write) -> None:
        """The side answered (or failed): release whoever waits for this write."""
        if write.event.is_set():
            return
        write.event.set()
        table = self._writes.get(side, {})
        for key in write.keys:
            waiting = table.get(key)
            if waiting is not None:
                waiting[:] = [w for w in waiting if w is not write]
                if not waiting:
                    del table[key]
        count = self._services.get((side, service), 0) - 1
        if count > 0:
            self._services[(side, service)] = count
        else:
            self._services.pop((side, service), None)

    async def wait(self, events: list[asyncio.Event]) -> bool:
        """Wait for these writes, `wait_seconds` in all; False when the bound ran out first."""
        deadline = time.monotonic() + self.wait_seconds
        for event in events:
            if event.is_set():
                continue
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    await event.wait()
            except TimeoutError:
                return False
        return True
