"""PrimaryState: promote, roll back, persist, audit, refresh across instances, and config at start-up as a decision."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from diffs.storage import PromotionRecord, Store, StoreUnavailable
from proxy.config import Settings, load_settings
from proxy.control.promotion import PrimaryState, UnknownService


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'shadowdiff.db'}"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = await Store.open(database_url)
    yield store
    await store.close()


def settings(environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    return load_settings(config_file, environ=environ or {})


async def started(store: Store, environ: Mapping[str, str] | None = None, *, refresh: float = 1.0) -> PrimaryState:
    """A process start: settings from `environ`, config reconciled into the store, state loaded."""
    state = PrimaryState(settings(environ).services, store, refresh_seconds=refresh)
    await state.reconcile(environ or {})
    await state.start()
    return state


async def test_starts_from_config_and_reads_the_hot_path_without_io(store: Store) -> None:
    state = await started(store, {"USE_V2_PRODUCT_SERVICE": "true"})
    try:
        assert state.snapshot() == {"orders": "v1", "products": "v2", "ai": "v1", "default": "v1"}
        assert (state.primary("products"), state.shadow("products")) == ("v2", "v1")
        assert state.primary("no-such-service") == "v1"
    finally:
        await state.aclose()


async def test_promote_is_persisted_audited_and_survives_a_restart(database_url: str) -> None:
    store = await Store.open(database_url)
    state = await started(store)
    change = await state.promote("orders", "v2", reason="error rate flat for a week", actor="ada@laptop")
    assert change.changed and (change.previous, change.primary) == ("v1", "v2")
    assert (state.primary("orders"), state.shadow("orders")) == ("v2", "v1")
    await state.aclose()
    await store.close()

    store = await Store.open(database_url)
    try:
        restarted = await started(store)
        assert restarted.primary("orders") == "v2"
        assert restarted.primary("products") == "v1"
        [row] = await restarted.history("orders")
        assert (row.from_side, row.to_side, row.reason, row.actor) == (
            "v1",
            "v2",
            "error rate flat for a week",
            "ada@laptop",
        )
        assert row.at.tzinfo is not None
        await restarted.aclose()
    finally:
        await store.close()


async def test_promoting_to_the_current_primary_records_nothing(store: Store) -> None:
    state = await started(store)
    change = await state.promote("orders", "v1", reason="", actor="ada")
    assert not change.changed and change.record is None
    assert await state.history() == []
    await state.aclose()


async def test_rollback_returns_to_the_previous_primary_and_is_audited(store: Store) -> None:
    state = await started(store)
    await state.promote("ai", "v2", reason="try it", actor="ada")
    change = await state.rollback("ai", reason="latency doubled", actor="grace")
    assert (change.previous, change.primary) == ("v2", "v1")
    assert state.primary("ai") == "v1"
    newest = (await state.history("ai"))[0]
    assert (newest.from_side, newest.to_side, newest.reason, newest.actor) == ("v2", "v1", "latency doubled", "grace")
    await state.aclose()


async def test_a_second_rollback_is_a_no_op_not_a_toggle(store: Store) -> None:
    """Issue 13: run twice after one promotion, rollback put V2 back in front ("primary is now v2 (was v1)")."""
    state = await started(store)
    await state.promote("ai", "v2", reason="try it", actor="ada")
    first = await state.rollback("ai", reason="latency doubled", actor="grace")
    retried = await state.rollback("ai", reason="retrying during the incident", actor="grace")
    assert (first.changed, first.primary) == (True, "v1")
    assert (retried.changed, retried.primary, retried.previous, retried.record) == (False, "v1", "v1", None)
    assert state.primary("ai") == "v1"
    trail = [(r.from_side, r.to_side, r.reason) for r in await state.history("ai")]
    assert trail == [("v2", "v1", "latency doubled"), ("v1", "v2", "try it")]
    await state.aclose()


async def test_rollback_means_back_to_v1_whatever_came_before(store: Store) -> None:
    state = await started(store, {"USE_V2_AI_SERVICE": "true"})  # V2 by configuration, never promoted at run time
    change = await state.rollback("ai", reason="guide's rollback without a restart", actor="ada")
    assert (change.previous, change.primary) == ("v2", "v1")
    await state.promote("ai", "v2", reason="", actor="ada")
    await state.promote("ai", "v1", reason="", actor="ada")
    await state.promote("ai", "v2", reason="", actor="ada")
    assert (await state.rollback("ai", reason="", actor="ada")).primary == "v1"
    await state.aclose()


async def test_rollback_of_a_service_never_promoted_changes_nothing(store: Store) -> None:
    state = await started(store)
    change = await state.rollback("orders", reason="", actor="ada")
    assert not change.changed and state.primary("orders") == "v1"
    assert await state.history("orders") == []
    await state.aclose()


async def test_unknown_service_is_refused_everywhere(store: Store) -> None:
    state = await started(store)
    for call in (
        state.promote("search", "v2", reason="", actor="ada"),
        state.rollback("search", reason="", actor="ada"),
        state.history("search"),
    ):
        with pytest.raises(UnknownService, match="unknown service 'search'; known services: orders, products"):
            await call
    await state.aclose()


async def test_refresh_picks_up_another_instances_change(database_url: str) -> None:
    store_a, store_b = await Store.open(database_url), await Store.open(database_url)
    admin = await started(store_a)
    worker = PrimaryState(settings().services, store_b, refresh_seconds=0.05)
    await worker.start()
    try:
        await admin.promote("products", "v2", reason="", actor="ada")
        assert worker.primary("products") == "v1"  # not yet: only the refresh tells it
        for _ in range(100):
            if worker.primary("products") == "v2":
                break
            await asyncio.sleep(0.02)
        assert worker.primary("products") == "v2"
    finally:
        await worker.aclose()
        await admin.aclose()
        await store_a.close()
        await store_b.close()


class FlakyStore:
    """A store whose reads fail while `down` is set, as a database restart would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    async def get_primaries(self) -> dict[str, str]:
        if self.down:
            raise StoreUnavailable("database unavailable: connection refused")
        return await self.store.get_primaries()

    async def record_promotion(
        self, service: str, from_side: str, to_side: str, reason: str, actor: str, **options: Any
    ) -> PromotionRecord:
        return await self.store.record_promotion(service, from_side, to_side, reason, actor, **options)

    async def list_promotions(self, service: str | None = None, limit: int = 100) -> list[PromotionRecord]:
        return await self.store.list_promotions(service, limit)


async def test_refresh_keeps_the_last_known_primaries_while_the_store_is_down(store: Store) -> None:
    flaky = FlakyStore(store)
    worker = PrimaryState(settings().services, flaky, refresh_seconds=0.02)
    await worker.start()
    try:
        flaky.down = True
        await store.record_promotion("orders", "v1", "v2", "", "ada")
        await asyncio.sleep(0.1)
        assert worker.primary("orders") == "v1"  # still serving, with what it knew
        flaky.down = False
        for _ in range(100):
            if worker.primary("orders") == "v2":
                break
            await asyncio.sleep(0.02)
        assert worker.primary("orders") == "v2"
    finally:
        await worker.aclose()


# -- config at start-up: what wins, config or a run-time promotion (docs/promotion.md) ---------------------------------


async def restart(database_url: str, environ: Mapping[str, str]) -> dict[str, str]:
    store = await Store.open(database_url)
    try:
        state = await started(store, environ)
        await state.aclose()
        return dict(state.snapshot())
    finally:
        await store.close()


async def test_default_config_records_nothing(store: Store) -> None:
    state = await started(store)
    assert await store.list_promotions() == []
    await state.aclose()


async def test_env_flag_is_recorded_once_with_actor_env(database_url: str) -> None:
    assert (await restart(database_url, {"USE_V2_SERVICES": "true"}))["orders"] == "v2"
    assert (await restart(database_url, {"USE_V2_SERVICES": "true"}))["orders"] == "v2"
    store = await Store.open(database_url)
    rows = await store.list_promotions("orders")
    await store.close()
    assert [(r.from_side, r.to_side, r.actor, r.reason) for r in rows] == [
        ("v1", "v2", "env", "USE_V2_SERVICES=true at start-up")
    ]


async def test_run_time_rollback_survives_a_restart_with_unchanged_config(database_url: str) -> None:
    environ = {"USE_V2_ORDER_SERVICE": "true"}
    await restart(database_url, environ)
    store = await Store.open(database_url)
    state = await started(store, environ)
    await state.rollback("orders", reason="500s on checkout", actor="ada")
    await state.aclose()
    await store.close()
    assert (await restart(database_url, environ))["orders"] == "v1"


async def test_the_guides_rollback_export_false_and_restart_wins_over_a_run_time_promotion(database_url: str) -> None:
    store = await Store.open(database_url)
    state = await started(store)
    await state.promote("orders", "v2", reason="", actor="ada")
    await state.promote("products", "v2", reason="", actor="ada")
    await state.aclose()
    await store.close()

    after = await restart(database_url, {"USE_V2_SERVICES": "false"})
    assert after == {"orders": "v1", "products": "v1", "ai": "v1", "default": "v1"}

    store = await Store.open(database_url)
    [newest, *_] = await store.list_promotions("orders")
    await store.close()
    assert (newest.from_side, newest.to_side, newest.actor) == ("v2", "v1", "env")


async def test_the_per_service_flag_wins_over_the_global_one(store: Store) -> None:
    state = await started(store, {"USE_V2_SERVICES": "true", "USE_V2_ORDER_SERVICE": "false"})
    assert state.primary("orders") == "v1" and state.primary("products") == "v2"
    [row] = await store.list_promotions("orders")
    assert row.reason == "USE_V2_ORDER_SERVICE=false at start-up"
    await state.aclose()


async def test_a_primary_set_in_the_config_file_is_recorded_with_actor_config(store: Store, tmp_path: Path) -> None:
    config = tmp_path / "shadowdiff.toml"
    config.write_text('[services.ai]\nprimary = "v2"\n', encoding="utf-8")
    state = PrimaryState(settings(config_file=config).services, store)
    [row] = await state.reconcile({})
    await state.start()
    assert (row.service, row.from_side, row.to_side, row.actor) == ("ai", "v1", "v2", "config")
    assert state.primary("ai") == "v2"
    assert state.services["ai"].prefixes == ("/api/ai",)
    await state.aclose()


async def test_concurrent_promotions_record_one_change(store: Store) -> None:
    state = await started(store)
    changes = await asyncio.gather(*(state.promote("orders", "v2", reason="", actor=f"op{n}") for n in range(3)))
    assert [c.changed for c in changes].count(True) == 1
    assert len(await state.history("orders")) == 1
    await state.aclose()


class StaleReadStore(FlakyStore):
    """Its next `get_primaries` reads the store, then waits to answer until released: a refresh caught mid-read."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.hold = False
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def get_primaries(self) -> dict[str, str]:
        if not self.hold:
            return await self.store.get_primaries()
        self.hold = False
        snapshot = await self.store.get_primaries()
        self.reading.set()
        await self.release.wait()
        return snapshot


async def test_a_refresh_that_read_before_a_local_promotion_does_not_undo_it(store: Store) -> None:
    stale = StaleReadStore(store)
    state = PrimaryState(settings().services, stale, refresh_seconds=60)
    await state.start()
    stale.hold = True
    refresh = asyncio.get_running_loop().create_task(state.refresh())
    await stale.reading.wait()  # it holds the pre-promotion snapshot
    await state.promote("orders", "v2", reason="", actor="ada")
    stale.release.set()
    await refresh
    assert state.primary("orders") == "v2"
    await state.refresh()
    assert state.primary("orders") == "v2"
    await state.aclose()
