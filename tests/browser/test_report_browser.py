"""The web report in real headless Chromium, served by a real admin server over a store seeded through write_batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from tests.proxy.report_seed import ReportApp, report_app
from tests.servers import run_server

# The tests share the module's Chromium, so they and their fixtures run on the module's event loop.
pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "browser-token-for-tests"


@pytest_asyncio.fixture(loop_scope="module")
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, ReportApp]]:
    async with report_app(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", admin_token=TOKEN) as ctx:
        async with run_server(ctx.app) as url:
            yield url, ctx


async def test_overview_shows_each_service_with_its_verdict(served: tuple[str, ReportApp], page: Page) -> None:
    url, _ = served
    await page.goto(url + "/")
    await expect(page).to_have_title("shadowdiff")
    orders = page.locator('tr[data-service="orders"]')
    await expect(orders.locator("td.name")).to_have_text("orders")
    await expect(orders.locator("[data-verdict]")).to_have_text("NOT READY")
    await expect(orders.locator("li[data-criterion]")).to_have_text(
        ["diff rate 7.14% > 1.00%", "shadow error rate 1.43% > 1.00%"]
    )
    await expect(page.locator('tr[data-service="products"] [data-verdict]')).to_have_text("READY")
    await expect(page.locator('tr[data-service="products"] [data-speedup]')).to_contain_text("V2 23% faster")


async def test_endpoint_page_lists_fields_and_marks_one_as_noise(served: tuple[str, ReportApp], page: Page) -> None:
    url, ctx = served
    await page.goto(url + "/")
    await page.get_by_role("link", name="GET /api/orders/{id}").first.click()
    await expect(page.locator("h1")).to_have_text("GET /api/orders/{id}")
    row = page.locator('tr.field[data-path="root.total"]')
    await expect(row.locator('[data-count="raw"]')).to_have_text("10")
    await expect(row.locator('[data-count="noise"]')).to_have_text("0")
    await expect(row.locator("[data-verdict]")).to_have_text("finding")
    await row.locator('input[name="note"]').fill("rounding is accepted")
    await row.locator('input[name="token"]').fill(TOKEN)
    await row.get_by_role("button", name="Mark as noise").click()
    await expect(page.locator('tr.field[data-path="root.total"] [data-verdict]')).to_have_text("marked noise")
    assert [(m.path, m.note) for m in await ctx.store.list_noise_marks()] == [("root.total", "rounding is accepted")]


async def test_exchange_page_highlights_the_differing_field(served: tuple[str, ReportApp], page: Page) -> None:
    url, _ = served
    await page.goto(url + "/endpoint?endpoint=" + "GET%20%2Fapi%2Forders%2F%7Bid%7D")
    await page.locator('tr.field[data-path="root.total"]').get_by_role("link", name="example").click()
    shadow = page.locator('div.side[data-side="shadow"] mark.diff')
    primary = page.locator('div.side[data-side="primary"] mark.diff')
    await expect(shadow).to_have_count(1)
    await expect(shadow).to_have_text('  "total": "28.00",')
    await expect(primary).to_have_text('  "total": "27.00",')
    background = await shadow.evaluate("element => getComputedStyle(element).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # it is visibly highlighted


async def test_promote_from_the_promotions_page_reaches_the_admin_api(
    served: tuple[str, ReportApp], page: Page
) -> None:
    url, _ = served
    await page.goto(url + "/promotions")
    row = page.locator('tr[data-service="products"]')
    await expect(row.locator("[data-verdict]")).to_have_text("READY")
    await row.locator('input[name="reason"]').fill("V2 is ready")
    await row.locator('input[name="token"]').fill(TOKEN)
    await row.get_by_role("button", name="Promote v2 to primary").click()
    await expect(page.locator(".flash")).to_have_text("products: primary is now v2 (was v1)")
    await expect(page.locator('tr[data-service="products"] [data-primary]')).to_have_text("v2")
    await expect(page.locator("table.history tr[data-promotion]").first).to_contain_text("V2 is ready")
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/api/services/products")).json()["primary"] == "v2"


async def test_promoting_a_not_ready_service_takes_a_confirmation(served: tuple[str, ReportApp], page: Page) -> None:
    url, ctx = served
    await page.goto(url + "/promotions")
    row = page.locator('tr[data-service="orders"]')
    await row.locator('input[name="token"]').fill(TOKEN)
    await row.get_by_role("button", name="Promote v2…").click()
    await expect(page.locator("[data-confirm] li[data-criterion]")).to_have_text(
        ["diff rate 7.14% > 1.00%", "shadow error rate 1.43% > 1.00%"]
    )
    assert ctx.state.primary("orders") == "v1"
    await page.locator('[data-confirm] input[name="token"]').fill(TOKEN)
    await page.get_by_role("button", name="Promote v2 to primary anyway").click()
    await expect(page.locator(".flash")).to_have_text("orders: primary is now v2 (was v1)")
    assert ctx.state.primary("orders") == "v2"


async def test_a_wrong_token_changes_nothing(served: tuple[str, ReportApp], page: Page) -> None:
    url, ctx = served
    await page.goto(url + "/promotions")
    row = page.locator('tr[data-service="products"]')
    await row.locator('input[name="token"]').fill("not-the-token")
    await row.get_by_role("button", name="Promote v2 to primary").click()
    await expect(page.locator("p.error")).to_have_text("The admin token is missing or wrong.")
    assert ctx.state.primary("products") == "v1"


async def test_overview_shows_every_service_at_a_glance_without_scrolling(
    served: tuple[str, ReportApp], browser: Browser, tmp_path: Path
) -> None:
    """Issue 13: at 1400x1000 one and a half services were visible; four needed ~2,700 px of scrolling."""
    url, _ = served
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = await context.new_page()
        await page.goto(url + "/")
        rows = page.locator("table.summary tr[data-service]")
        await expect(rows).to_have_count(4)
        names = [await rows.nth(i).get_attribute("data-service") for i in range(4)]
        assert sorted(n or "" for n in names) == ["ai", "default", "orders", "products"]
        for i in range(4):
            row = rows.nth(i)
            for part in (row, row.locator("[data-verdict]"), row.locator("svg.spark, td:last-child")):
                box = await part.first.bounding_box()
                assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 1000, (names[i], box)
                assert box["x"] + box["width"] <= 1400
        failures = page.locator('tr[data-service="orders"] li[data-criterion]')
        for i in range(await failures.count()):
            box = await failures.nth(i).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 1000  # the why is on screen too
        assert await page.evaluate("document.documentElement.scrollWidth") <= 1400  # no sideways scrolling
        shot = await page.screenshot(path=str(tmp_path / "overview-1400x1000.png"))
        assert len(shot) > 10_000
    finally:
        await context.close()
