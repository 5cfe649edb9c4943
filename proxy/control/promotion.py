"""Which side is primary for each service right now: config, overridden by the store's audited promotions.

Every process (worker, replica) holds a `PrimaryState`. A promotion made through any admin plane is pushed to every
process by the store's state feed (PostgreSQL LISTEN/NOTIFY, or SQLite polling), and each process also re-reads the
store every few `refresh_seconds` in case a push was missed. Changes are race-free across admin planes: each is
recorded only if the stored primary is still the one it was decided on (the store checks under a lock), else it is
decided again. The rule for what wins, config or a run-time promotion, is in docs/promotion.md: the newest decision
wins, and a config value counts as a decision only when it is set explicitly and differs from the last one recorded
from config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from diffs.storage import PromotionRecord
from diffs.storage.feed import PROMOTION, Event
from diffs.storage.store import PromotionConflict
from proxy.config import ServiceConfig, Side, configured_primary, guide_flag
from proxy.errors import ShadowdiffError

log = logging.getLogger("shadowdiff.promotion")

CONFIG_ACTORS = frozenset({"config", "env"})
"""Actors of rows recorded at start-up from configuration; the admin API refuses them as actor names."""
ROLLBACK_TARGET: Side = "v1"
"""Where a rollback goes, whatever happened before: the legacy side, which served before any promotion."""
AUDIT_LOOKBACK = 1000
"""How far back in one service's audit trail to look for its last config decision or last change."""
ATTEMPTS = 5
"""Decisions retried when another admin plane changed the same service meanwhile."""
FOLLOWING_REFRESH = 5
"""With the state feed, the periodic re-read runs this many times less often (it only catches missed pushes)."""


class UnknownService(ShadowdiffError):
    def __init__(self, service: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown service {service!r}; known services: {', '.join(known)}")
        self.service = service


class KeptChanging(ShadowdiffError):
    """Other admin planes changed the service's primary every time this one decided (ATTEMPTS times)."""


class PromotionStore(Protocol):
    """What `PrimaryState` needs from `diffs.storage.Store`."""

    async def get_primaries(self) -> dict[str, str]: ...

    async def record_promotion(
        self, service: str, from_side: str, to_side: str, reason: str, actor: str, *, expected: str | None = ...
    ) -> PromotionRecord: ...

    async def list_promotions(self, service: str | None = None, limit: int = 100) -> list[PromotionRecord]: ...


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome of a promote or rollback call."""

    service: str
    primary: Side
    previous: Side
    record: PromotionRecord | None
    """The audit row written; None when the service already had that primary (nothing changed)."""

    @property
    def changed(self) -> bool:
        return self.record is not None


def other_side(side: Side) -> Side:
    return "v2" if side == "v1" else "v1"


def _side(value: str | None) -> Side | None:
    """A side read from the store; None for anything else (never promoted, or a row from a newer version)."""
    if value == "v1":
        return "v1"
    if value == "v2":
        return "v2"
    return None


class PrimaryState:
    """The run-time primary of each service (implements `proxy.dataplane.routing.PrimaryLookup`).

    `primary()` is a dict lookup with no I/O; the dict is replaced whole by `refresh()`, never mutated in place.
    """

    def __init__(
        self, services: Mapping[str, ServiceConfig], store: PromotionStore, *, refresh_seconds: float = 1.0
    ) -> None:
        self._services = dict(services)
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._primaries: dict[str, Side] = {name: config.primary for name, config in services.items()}
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshed_at: float | None = None
        self._failing_since: float | None = None
        self._changing = asyncio.Lock()  # one change at a time here: each reads the current primary, then records
        self._local_changes = 0

    # -- the hot path -------------------------------------------------------------------------------------------------

    def primary(self, service: str) -> Side:
        return self._primaries.get(service, "v1")

    def shadow(self, service: str) -> Side:
        return other_side(self.primary(service))

    # -- reading ------------------------------------------------------------------------------------------------------

    @property
    def services(self) -> Mapping[str, ServiceConfig]:
        return self._services

    def snapshot(self) -> dict[str, Side]:
        return dict(self._primaries)

    @property
    def staleness(self) -> float | None:
        """Seconds since the last successful read of the store; None before the first."""
        return None if self._refreshed_at is None else time.monotonic() - self._refreshed_at

    async def history(self, service: str | None = None, limit: int = 100) -> list[PromotionRecord]:
        if service is not None:
            self._check(service)
        return await self._store.list_promotions(service, limit)

    # -- lifecycle ----------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow the state feed, read the store once (errors propagate: a process must not start blind), then keep
        re-reading now and then."""
        follow = getattr(self._store, "follow", None)
        if follow is not None:  # first, so that a promotion committed while we read is heard of
            await follow(PROMOTION, self._pushed)
            self._refresh_seconds *= FOLLOWING_REFRESH
        await self.refresh()
        task = asyncio.get_running_loop().create_task(self._refresh_forever(), name="primary-state-refresh")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self) -> None:
        """Re-read promotions; services never promoted keep their config primary."""
        seen = self._local_changes
        stored = await self._store.get_primaries()
        if seen != self._local_changes:
            return  # a change made here while we read: our snapshot may predate it, the next refresh will not
        fresh: dict[str, Side] = {}
        for name, config in self._services.items():
            fresh[name] = _side(stored.get(name)) or config.primary
        for name, side in fresh.items():
            if side != self._primaries.get(name):
                log.info("primary of %s is now %s (was %s)", name, side, self._primaries.get(name))
        self._primaries = fresh
        self._refreshed_at = time.monotonic()

    async def _pushed(self, event: Event) -> None:
        """Another process (or this one) promoted: read the new state now."""
        await self.refresh()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:
                # Keep serving with the last known primaries; say so once, not every second.
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("cannot refresh primaries from the store, keeping the last known: %s", exc)
                continue
            if self._failing_since is not None:
                log.info("primaries refreshed from the store again after %.1fs", time.monotonic() - self._failing_since)
                self._failing_since = None

    # -- start-up: config as a decision -------------------------------------------------------------------------------

    async def reconcile(self, environ: Mapping[str, str]) -> list[PromotionRecord]:
        """Record each explicitly configured primary that differs from the last one recorded from config.

        Run once per deployment start, before workers read the state. `environ` names the USE_V2_* flag in the
        audit row when one decided the value.
        """
        recorded = []
        for name, config in self._services.items():
            wanted = configured_primary(config)
            if wanted is None:
                continue
            row = await self._reconcile_one(name, wanted, environ)
            if row is not None:
                recorded.append(row)
        if recorded:
            await self.refresh()
        return recorded

    async def _reconcile_one(self, name: str, wanted: Side, environ: Mapping[str, str]) -> PromotionRecord | None:
        # Replicas starting together each try; the store lets one record the decision, the others find it done.
        for _ in range(ATTEMPTS):
            stored = (await self._store.get_primaries()).get(name)
            trail = await self._store.list_promotions(name, AUDIT_LOOKBACK)
            last = next((row for row in trail if row.actor in CONFIG_ACTORS), None)
            if last is not None and last.to_side == wanted:
                return None
            current = _side(stored) or "v1"
            flag = guide_flag(name, environ)
            if flag is not None:
                actor, reason = "env", f"{flag[0]}={'true' if flag[1] else 'false'} at start-up"
            else:
                actor, reason = "config", f"primary = {wanted!r} in the configuration at start-up"
            try:
                row = await self._store.record_promotion(name, current, wanted, reason, actor, expected=stored)
            except PromotionConflict:
                continue
            if current != wanted:
                log.warning("%s: %s → %s by %s (%s)", name, current, wanted, actor, reason)
            return row
        raise KeptChanging(f"{name}: the primary kept changing while the configured one was being recorded")

    # -- run-time changes ---------------------------------------------------------------------------------------------

    async def promote(self, service: str, to: Side, *, reason: str, actor: str) -> Change:
        """Make `to` the primary of `service` now; persisted and audited. A no-op when it already is."""
        self._check(service)
        async with self._changing:
            return await self._change(service, to, reason=reason, actor=actor)

    async def _change(self, service: str, to: Side, *, reason: str, actor: str) -> Change:
        for _ in range(ATTEMPTS):
            stored = (await self._store.get_primaries()).get(service)
            current = self._current_of(service, stored)
            if current == to:
                self._set(service, to)
                return Change(service, to, current, None)
            try:
                record = await self._store.record_promotion(service, current, to, reason, actor, expected=stored)
            except PromotionConflict:
                continue  # another admin plane changed it since we read: decide again on what it is now
            self._set(service, to)
            log.warning("%s: %s → %s by %s (%s)", service, current, to, actor, reason)
            return Change(service, to, current, record)
        raise KeptChanging(f"{service}: the primary kept changing; try again")

    async def rollback(self, service: str, *, reason: str, actor: str) -> Change:
        """Back to V1, the side a migration starts from: the guide's rollback (`USE_V2_SERVICES=false`), without a
        restart. Idempotent: when V1 already answers, nothing changes and nothing is recorded (`Change.changed` is
        False), so a rollback retried during an incident can never put V2 back in front."""
        self._check(service)
        async with self._changing:
            return await self._change(service, ROLLBACK_TARGET, reason=reason, actor=actor)

    def _current_of(self, service: str, stored: str | None) -> Side:
        # The store's answer, not the cache: another admin plane may have changed it since the last refresh.
        return _side(stored) or self._services[service].primary

    def _set(self, service: str, side: Side) -> None:
        self._local_changes += 1
        self._primaries = {**self._primaries, service: side}

    def _check(self, service: str) -> None:
        if service not in self._services:
            raise UnknownService(service, tuple(self._services))
