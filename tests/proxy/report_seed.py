"""A store seeded through the real comparison pipeline and batch writer, for the report, API, CLI and browser tests.

products: 150 compared exchanges, all matching, V2 25% faster       → ready
orders:   GET /api/orders/{id}: 120 (10 differ at root.total, 2 shadow timeouts, created_at noise on a secondary)
          POST /api/orders: 20, order_number differs everywhere (and on the secondary: noise)  → not ready
ai:       5 matching exchanges                                        → too few samples
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from diffs.comparer import Comparer
from diffs.exchange import Comparison, ErrorKind, Role
from diffs.storage import RetentionPolicy, Store
from proxy.config import Settings, load_settings
from proxy.control.admin import create_admin_app
from proxy.control.promotion import PrimaryState
from proxy.review.web import admin_routes
from tests import factories as f

KEEP_ALL = RetentionPolicy(examples_per_field=1000, match_examples_per_endpoint=1000)
"""Every seeded exchange stored as an example, so listings have pages to walk (reports read rollups either way)."""
DIFF_TOTAL = ("28.00", "27.00")
"""(shadow total, primary total) on the orders exchanges that differ."""


@dataclass(frozen=True, slots=True)
class Seeded:
    settings: Settings
    diff_exchange_id: str
    """A GET /api/orders/{id} exchange whose shadow answered total "28.00" (primary "27.00")."""
    match_exchange_id: str
    error_exchange_id: str
    started: datetime
    """When the first exchange was recorded."""


def comparisons(settings: Settings, now: datetime) -> tuple[list[Comparison], Seeded]:
    comparer = Comparer(settings.services)
    start = now - timedelta(minutes=30)
    tick = iter(range(100_000))
    out: list[Comparison] = []

    def at() -> datetime:
        return start + timedelta(seconds=next(tick))

    for n in range(150):
        body = f.product_body(id=n + 1)
        x = f.exchange(
            primary=f.primary(body, latency_ms=40.0 + n % 10),
            shadow=f.shadow(body, latency_ms=30.0 + n % 10),
            path=f"/api/products/{n + 1}",
            service="products",
            started_at=at(),
        )
        out.append(comparer.compare(x))

    diff_id = match_id = error_id = ""
    for n in range(120):
        order = f.order_body(id=n + 1)
        stamp = {"created_at": f"2026-11-28T14:{n % 60:02d}:00+00:00"}
        if n < 10:
            shadow = f.shadow({**order, "total": DIFF_TOTAL[0]}, latency_ms=18.0)
        elif n < 12:
            shadow = f.failed(Role.SHADOW, ErrorKind.TIMEOUT, latency_ms=5000.0)
        else:
            shadow = f.shadow(order, latency_ms=15.0 + n % 5)
        x = f.exchange(
            primary=f.primary(order, latency_ms=20.0 + n % 5),
            shadow=shadow,
            secondary=f.secondary({**order, **stamp}) if n % 3 == 0 else None,
            path=f"/api/orders/{n + 1}",
            service="orders",
            started_at=at(),
        )
        out.append(comparer.compare(x))
        if n == 3:
            diff_id = x.id
        elif n == 10:
            error_id = x.id
        elif n == 50:
            match_id = x.id

    for n in range(20):
        order = f.order_body(id=500 + n)
        x = f.exchange(
            primary=f.primary(order, status=201, latency_ms=60.0),
            shadow=f.shadow({**order, "order_number": f"ORD-{n:08X}"}, status=201, latency_ms=45.0),
            secondary=f.secondary({**order, "order_number": f"ORD-S{n:07X}"}, status=201),
            method="POST",
            path="/api/orders",
            service="orders",
            request=f.request("POST", "/api/orders", json={"customer_id": 1, "items": [{"product_id": 3}]}),
            started_at=at(),
        )
        out.append(comparer.compare(x))

    for n in range(5):
        body = f.ai_body(f"hello {n}")
        x = f.exchange(
            primary=f.primary(body, latency_ms=100.0),
            shadow=f.shadow(body, latency_ms=70.0),
            method="POST",
            path="/api/ai/generate",
            service="ai",
            started_at=at(),
        )
        out.append(comparer.compare(x))
    return out, Seeded(settings, diff_id, match_id, error_id, start)


async def seed(store: Store, settings: Settings | None = None, now: datetime | None = None) -> Seeded:
    """Write the mix above through `Store.write_batch`; exchanges end about 25 minutes before `now`."""
    settings = settings or load_settings(environ={})
    batch, seeded = comparisons(settings, now or datetime.now(UTC))
    for i in range(0, len(batch), 100):
        await store.write_batch(batch[i : i + 100])
    return seeded


@dataclass(frozen=True, slots=True)
class ReportApp:
    """A seeded store behind the real admin app with the report's routes, and what the tests need to look behind it."""

    app: Any
    store: Store
    state: PrimaryState
    seeded: Seeded
    settings: Settings


@contextlib.asynccontextmanager
async def report_app(database_url: str, **overrides: Any) -> AsyncIterator[ReportApp]:
    """The admin app as `shadowdiff proxy` serves it (admin API + /api/v1 + web pages) over a seeded store."""
    settings = load_settings(overrides=overrides, environ={})
    store = await Store.open(database_url, retention=KEEP_ALL)
    state = PrimaryState(settings.services, store, refresh_seconds=0.05)
    try:
        seeded = await seed(store, settings)
        await state.start()
        app = create_admin_app(
            settings, state=state, registry=CollectorRegistry(), extra_routes=admin_routes(settings, store, state)
        )
        yield ReportApp(app, store, state, seeded, settings)
    finally:
        await state.aclose()
        await store.close()
