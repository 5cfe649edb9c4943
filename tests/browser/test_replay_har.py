"""A HAR that Playwright recorded while Debian's Chromium used the demo's V1, replayed against V1 and V2.

The browser loads a product, creates an order through fetch() and reads it back, asks for a missing product and
posts an invalid order. Replayed against fresh copies of the demo (a secondary V1 measuring noise), the exchanges
land in the store under the run id, the created order is read on V2 under V2's own id, and the by-design
differences are the findings; `replay --check` fails on the real V2 and passes on a V2 that answers as V1 does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from diffs.readiness import Criteria
from diffs.report import Window
from diffs.rules import NoiseConfig
from diffs.storage import Store, queries
from legacy_app.app import create_app as create_legacy
from legacy_app.seed import seed_database as seed_legacy
from legacy_app.settings import LegacySettings
from proxy.config import load_settings
from proxy.replay.engine import Options, Tally, replay
from proxy.runtime.demo import demo_catalogue
from tests.proxy.replay.support import Lines
from tests.servers import run_server
from v2_app.app import create_app as create_v2
from v2_app.seed import seed_database_async as seed_v2
from v2_app.settings import V2Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SCRIPT = """async () => {
  const json = {"content-type": "application/json"};
  const created = await (await fetch("/api/orders", {method: "POST", headers: json,
      body: JSON.stringify({customer_id: 1, items: [{product_id: 2, quantity: 1}]})})).json();
  await fetch(`/api/orders/${created.id}`);
  await fetch("/api/products/99999");
  await fetch("/api/orders", {method: "POST", headers: json,
      body: JSON.stringify({customer_id: 1, items: [{product_id: 2, quantity: 0}]})});
  return created.id;
}"""


@contextlib.asynccontextmanager
async def legacy(path: Path) -> AsyncIterator[str]:
    """A V1 on its own freshly seeded database: every copy starts with the same rows and ids."""
    url = f"sqlite:///{path}"
    await asyncio.to_thread(seed_legacy, url, demo_catalogue())
    async with run_server(create_legacy(LegacySettings(database_url=url))) as served:
        yield served


@contextlib.asynccontextmanager
async def v2(path: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{path}"
    await seed_v2(url, demo_catalogue())
    async with run_server(create_v2(V2Settings(database_url=url))) as served:
        yield served


async def record_har(browser: Browser, tmp_path: Path) -> tuple[Path, int]:
    har = tmp_path / "yesterday.har"
    async with legacy(tmp_path / "production.db") as production:
        context = await browser.new_context(record_har_path=str(har), record_har_content="embed")
        page = await context.new_page()
        await page.goto(f"{production}/api/products/1")
        order_id = await page.evaluate(SCRIPT)
        await context.close()  # writes the HAR
    return har, int(order_id)


async def test_a_chromium_har_replays_against_the_demo(browser: Browser, tmp_path: Path) -> None:
    har, order_id = await record_har(browser, tmp_path)
    recorded = [
        e["request"]["method"] + " " + e["request"]["url"].split("/", 3)[3]
        for e in json.loads(har.read_text())["log"]["entries"]
    ]
    assert f"GET api/orders/{order_id}" in recorded and "POST api/orders" in recorded
    database = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    async with (
        legacy(tmp_path / "v1.db") as v1_url,
        legacy(tmp_path / "noise.db") as secondary,
        v2(tmp_path / "v2.db") as v2_url,
    ):
        overrides = {"v1_url": v1_url, "v2_url": v2_url, "secondary_url": secondary, "database_url": database}
        settings = load_settings(overrides=overrides, environ={})
        tally = Tally()
        await replay(settings, str(har), Options(run_id="har", concurrency=1), Lines(), asyncio.Event(), tally)
    assert tally.bad == 0 and tally.sent == tally.total == len(recorded) and tally.failed == 0
    store = await Store.open(database)
    try:
        page = await store.list_exchanges(limit=100, run="har")
        by_path = {f"{x.method} {x.path}": x for x in page.items}
        created = by_path[f"GET /api/orders/{order_id}"]
        assert created.primary_status == created.shadow_status == 200  # V2's own order, under V2's own id
        report = await queries.load_report(
            store,
            window=Window(run="har"),
            criteria=Criteria(min_samples=1),
            noise=NoiseConfig(),
            primaries={},
            services=list(settings.services),
        )
    finally:
        await store.close()
    findings = {
        (e.endpoint, f.path) for s in report.services for e in s.endpoints for f in e.fields if f.verdict == "finding"
    }
    assert ("GET /api/products/{id}", "root.error") in findings  # V2's error body shape, by design
    assert ("POST /api/orders", "status") in findings  # 400 vs 422, by design
    assert not any(path.endswith(("created_at", "order_number")) for _, path in findings)  # noise, not findings


async def test_replay_check_gates_on_the_recorded_har(browser: Browser, tmp_path: Path) -> None:
    har, _ = await record_har(browser, tmp_path)

    async def check(v2_url: str, v1_url: str, secondary: str, name: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", "replay", str(har), "--v1", v1_url, "--v2", v2_url,
            "--secondary", secondary, "--database-url", f"sqlite+aiosqlite:///{tmp_path / name}", "--check",
            "--min-samples", "1", "--max-p99-ratio", "1000",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert b"Traceback" not in err
        assert process.returncode is not None
        return process.returncode, out.decode()

    async with (
        legacy(tmp_path / "a1.db") as v1_url,
        legacy(tmp_path / "a2.db") as noise,
        v2(tmp_path / "a3.db") as v2_url,
    ):
        failing, out = await check(v2_url, v1_url, noise, "breaks.db")
    assert failing == 1, out
    assert "not ready: products" in out and "not ready: orders" in out
    async with (
        legacy(tmp_path / "b1.db") as v1_url,
        legacy(tmp_path / "b2.db") as noise,
        legacy(tmp_path / "b3.db") as same,
    ):
        passing, out = await check(same, v1_url, noise, "same.db")
    assert passing == 0, out
    assert out.splitlines()[-1].startswith("ready: ")
