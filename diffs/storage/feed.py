"""The state feed: events (a kind and a JSON payload) that every process hears of moments after their commit.

A change that other processes must follow (a promotion, a noise mark, an id pair) is written with `publish`, inside
its own transaction, as a row of the `events` table; on PostgreSQL the same transaction sends `NOTIFY`, delivered on
commit. Publishers take ids and commit one at a time, so events become visible in id order. Each process runs one
`Feed`: on PostgreSQL it LISTENs on a connection of its own and reads the new rows when notified; on SQLite (one
host) and behind PgBouncer in transaction mode (where LISTEN cannot work) it polls the newest id, a one-row index
lookup. Either way it also reads every `safety_interval` seconds, so a notification lost with a dropped connection
delays an event, never loses it: events are read from the table, by id, in order.

Subscribers get each event once per process, in id order; a subscriber that raises is logged and the feed goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from diffs.storage import engine as engines
from diffs.storage.models import EventRow
from diffs.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CHANNEL = "shadowdiff_events"
PROMOTION = "promotion"
NOISE_MARKS = "noise_marks"
LEARNED_TEMPLATES = "learned_templates"
ID_PAIRS = "id_pairs"
ID_PENDING = "id_pending"
_BATCH = 500
_LOCKED = select(
    func.pg_advisory_xact_lock(func.hashtext(literal("shadowdiff.events.") + func.current_schema())),
    func.pg_notify(CHANNEL, ""),  # delivered at the commit
).subquery("locked")
"""PostgreSQL: the feed's lock (per schema, until the commit) and the NOTIFY, as the row source of the insert."""


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str
    payload: Mapping[str, Any]
    at: datetime


Subscriber = Callable[[Event], Awaitable[None] | None]


class Listening(Protocol):
    """A LISTEN connection (asyncpg's `Connection` is one)."""

    def is_closed(self) -> bool: ...

    async def close(self) -> None: ...

    async def fetchval(self, query: str) -> Any: ...


Newest = Callable[[], Awaitable[int | None]]
"""The newest event id committed now, by a cheap lookup (None: cannot tell); lets `sync` skip a read that would
deliver nothing."""
_NEWEST = "SELECT coalesce(max(id), 0) FROM events"


Listen = Callable[[Callable[[], None]], Awaitable[Listening]]
"""Opens a connection that LISTENs on `CHANNEL` and calls the given `wake()` on every notification."""


async def publish(conn: AsyncConnection, kind: str, payload: Mapping[str, Any]) -> None:
    """Record an event inside the caller's write transaction (its last statement: the transaction holds the feed's
    lock from here to its commit); other processes hear of it after the commit.

    Events are read by id, so they must become visible in id order: an id taken by one transaction and committed
    after a later id was read would never be read at all. On PostgreSQL a transaction-scoped advisory lock makes
    publishers take ids and commit one at a time (SQLite's write lock already does)."""
    data = orjson.dumps(dict(payload)).decode()
    row = {"kind": kind, "payload": data, "at": datetime.now(UTC)}
    if conn.dialect.name != "postgresql":
        await conn.execute(insert(EventRow).values(**row))
        return
    # One statement: the lock is held for as short a time as can be (this statement's answer, then the commit).
    values = select(*(literal(value, EventRow.__table__.c[name].type) for name, value in row.items()))
    await conn.execute(insert(EventRow).from_select(list(row), values.select_from(_LOCKED)))


class Feed:
    """One process's reader of the events table: notified (PostgreSQL LISTEN) or polling, and always checking."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        listen: Listen | None = None,
        poll_interval: float = 0.25,
        safety_interval: float = 5.0,
        newest: Newest | None = None,
    ) -> None:
        """`listen`: how to open a LISTEN connection (PostgreSQL); None polls every `poll_interval` seconds.
        `newest`: the cheap lookup `sync` tries first (the LISTEN connection's own, when there is one)."""
        self._engine = engine
        self._listen = listen
        self._newest = newest
        self._listening: Listening | None = None
        self.poll_interval = poll_interval
        self.safety_interval = safety_interval
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._last_id: int | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.read_at: float | None = None
        """Monotonic time of the last successful read of the table."""
        self.heard_from = float("-inf")
        """Monotonic time a delivered read started at (the newest): every event committed before it has been heard."""
        self.listening = False
        self.delivered = 0
        self.failures = 0
        self._reading: asyncio.Future[None] | None = None
        self._read_started = 0.0
        self._one_at_a_time = asyncio.Lock()  # the loop and `sync` may both read: each event is delivered once

    @property
    def mode(self) -> str:
        return "listen" if self._listen is not None else "poll"

    def subscribe(self, kind: str, subscriber: Subscriber) -> None:
        """Call `subscriber(event)` for every later event of `kind`."""
        self._subscribers.setdefault(kind, []).append(subscriber)

    async def start(self) -> None:
        """Begin after the newest event now (the caller has just read the state it follows)."""
        if self._task is not None:
            return
        async with engines.reading(self._engine) as conn:
            self._last_id = int((await conn.execute(select(func.max(EventRow.id)))).scalar_one() or 0)
        self.read_at = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="shadowdiff-feed")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def wake(self) -> None:
        """Read now (a notification arrived, or this process just published)."""
        self._wake.set()

    async def _run(self) -> None:
        listening: Listening | None = None
        retry_listen_at = 0.0
        try:
            while True:
                if listening is not None and listening.is_closed():
                    listening, self.listening = None, False  # the database went away with it: listen again
                    self._listening = None
                if self._listen is not None and listening is None and time.monotonic() >= retry_listen_at:
                    try:
                        listening = self._listening = await self._listen(self.wake)
                        self.listening = True
                        self._wake.set()  # read what was committed while nobody listened
                    except Exception as exc:
                        retry_listen_at = time.monotonic() + self.safety_interval
                        log.warning("cannot LISTEN for state changes, polling meanwhile: %s", exc)
                interval = self.safety_interval if self.listening else self.poll_interval
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.read()
                except Exception as exc:
                    self.failures += 1
                    if self.failures == 1 or self.failures % 100 == 0:
                        log.warning("cannot read the state feed (%d times): %s", self.failures, exc)
        finally:
            self._listening = None
            if listening is not None:
                with contextlib.suppress(Exception):
                    await listening.close()

    async def sync(self, after: float, timeout: float) -> bool:
        """Until a read that started after `after` (monotonic) has delivered what it found: every event committed
        before that moment has then been heard (at once when one already has: `heard_from`). Reads are shared:
        callers arriving during one wait for the next.
        False when that took longer than `timeout` seconds (or the store could not be read)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.heard_from >= after:
                return True
            reading = self._reading
            if reading is not None and self._read_started >= after:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await asyncio.shield(reading)
                except (TimeoutError, Exception):
                    return False
                return True
            if reading is not None:  # started before `after`: wait for it, then start ours
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        await asyncio.shield(reading)
                if time.monotonic() >= deadline:
                    return False
                continue
            started = self._read_started = time.monotonic()
            self._reading = asyncio.get_running_loop().create_future()
            try:
                if await self._nothing_new():
                    self.heard_from = max(self.heard_from, started)
                else:
                    await self.read()
            except Exception as exc:
                self._reading.set_exception(exc)
                self._reading.exception()  # retrieved: waiters see it, nobody logs "never retrieved"
                return False
            else:
                self._reading.set_result(None)
            finally:
                self._reading = None
            return True

    async def _nothing_new(self) -> bool:
        """Whether every event committed by now has been delivered, by the cheap lookup (False: cannot tell).
        Feed events commit in id order (`publish`), so none can appear later below the newest id seen now."""
        try:
            listening = self._listening
            if listening is not None and not listening.is_closed():
                newest = await listening.fetchval(_NEWEST)
            elif self._newest is not None:
                newest = await self._newest()
            else:
                return False
        except Exception:
            return False
        if newest is None:
            return False
        async with self._one_at_a_time:  # a read under way has delivered all it took
            return self._last_id is not None and int(newest) <= self._last_id

    async def read(self) -> int:
        """Deliver the events committed since the last read; returns how many."""
        started = time.monotonic()
        async with self._one_at_a_time:
            delivered = await self._read()
        self.heard_from = max(self.heard_from, started)
        return delivered

    async def _read(self) -> int:
        delivered = 0
        while True:
            query = select(EventRow).order_by(EventRow.id).limit(_BATCH)
            if self._last_id is not None:
                query = query.where(EventRow.id > self._last_id)
            async with engines.reading(self._engine) as conn:
                fetched = (await conn.execute(query)).all()
            self.read_at = time.monotonic()
            for row in fetched:
                self._last_id = row.id
                await self._deliver(Event(row.id, row.kind, orjson.loads(row.payload or "{}"), row.at))
                delivered += 1
            if len(fetched) < _BATCH:
                return delivered

    async def _deliver(self, event: Event) -> None:
        for subscriber in self._subscribers.get(event.kind, ()):
            try:
                result = subscriber(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("state feed subscriber failed on %s event %d", event.kind, event.id)
        self.delivered += 1


def sqlite_newest(path: str) -> Newest:
    """`Newest` for a SQLite file: a read-only connection of its own, queried in place (an indexed max, micro-
    seconds; never waits for a lock: None then, and `sync` reads as usual)."""
    state: dict[str, sqlite3.Connection] = {}

    async def newest() -> int | None:
        try:
            conn = state.get("conn")
            if conn is None:
                conn = state["conn"] = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0)
            [(found,)] = conn.execute(_NEWEST).fetchall()  # all: the statement ends, and its snapshot with it
            return int(found)
        except sqlite3.Error:
            state.pop("conn", None)
            return None

    return newest
