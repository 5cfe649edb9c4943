"""When each replayed request is sent: in recorded order per session, paced, rate-capped, sessions bounded.

- A session's requests go one after another: the next starts once the previous has been answered (a client cannot
  read an order before its create returned the id), so write-then-read order holds.
- At most `concurrency` sessions are in flight; a new session waits for a slot, in recorded order.
- `speed`: a request never starts before its recorded offset from the first request, divided by `speed` (1 keeps
  the recorded pacing, 10 is ten times faster). `rate`: at most that many requests start per second, overall.
- `ready()` is awaited before every request: the engine's backpressure (comparison backlog, mirrored in flight).
- Once `stop` is set no request starts; those in flight finish.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from proxy.replay.requests import Request

READ_AHEAD = 10_000
"""Requests read from the source and waiting in their sessions' queues, at most."""


class Scheduler:
    def __init__(
        self,
        send: Callable[[Request], Awaitable[None]],
        *,
        concurrency: int,
        rate: float | None = None,
        speed: float | None = None,
        stop: asyncio.Event,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._send = send
        self._concurrency = concurrency
        self._interval = 1.0 / rate if rate else 0.0
        self._speed = speed
        self._stop = stop
        self._ready = ready
        self._next_start = 0.0
        self._origin: tuple[float, float] | None = None
        """(loop time when the first request went, its recorded time), for `speed`."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, requests: AsyncIterator[Request]) -> None:
        """Send every request (until `stop`); returns when the last one has been answered."""
        slots = asyncio.Semaphore(self._concurrency)
        room = asyncio.Semaphore(READ_AHEAD)
        sessions: dict[str, deque[Request]] = {}
        loop = asyncio.get_running_loop()
        try:
            async for request in requests:
                if self._stop.is_set():
                    break
                await room.acquire()
                waiting = sessions.get(request.session)
                if waiting is not None:
                    waiting.append(request)
                    continue
                await slots.acquire()
                if self._stop.is_set():
                    break
                sessions[request.session] = deque((request,))
                task = loop.create_task(self._session(request.session, sessions, slots, room))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _session(
        self, key: str, sessions: dict[str, deque[Request]], slots: asyncio.Semaphore, room: asyncio.Semaphore
    ) -> None:
        queue = sessions[key]
        try:
            while queue and not self._stop.is_set():
                request = queue.popleft()
                room.release()
                await self._pace(request)
                if self._stop.is_set():
                    break
                await self._send(request)
        finally:
            # No await between the empty-queue check above and here: the reader cannot append in between.
            for _ in queue:
                room.release()
            del sessions[key]
            slots.release()

    async def _pace(self, request: Request) -> None:
        loop = asyncio.get_running_loop()
        if self._speed and request.at is not None:
            if self._origin is None:
                self._origin = (loop.time(), request.at)
            start, first = self._origin
            delay = start + max(0.0, request.at - first) / self._speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if self._interval:
            now = loop.time()
            due = max(now, self._next_start)
            self._next_start = due + self._interval
            if due > now:
                await asyncio.sleep(due - now)
        if self._ready is not None:
            await self._ready()
