"""The exchange page in headless Chromium, after real traffic through the proxy in front of Inkwell V1 and V2: it shows
the request line the shadow actually got (its own id, rewritten by the proxy) and highlights only the list item that
differs, not every item's line of that field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from tests.thirdparty_pair.harness import Inkwell, inkwell

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module")
async def ink(tmp_path: Path) -> AsyncIterator[Inkwell]:
    async with inkwell(tmp_path, secondary=False) as stack:
        yield stack


async def test_the_shadows_rewritten_request_line_is_shown_and_highlighted(ink: Inkwell, page: Page) -> None:
    post = (await ink.send("POST", "/posts", json={"title": "New", "user_id": 1})).json()
    await ink.send("GET", f"/posts/{post['id']}")
    v2_id = next(p["id"] for p in ink.v2_data.posts.values() if p["title"] == "New")
    exchange = await ink.exchange("GET", f"/posts/{post['id']}")

    await page.goto(f"{ink.admin}/exchanges/{exchange.id}")
    shadow = page.locator('div.side[data-side="shadow"][data-received]')
    primary = page.locator('div.side[data-side="primary"][data-received]')
    await expect(shadow.locator("mark[data-rewritten]")).to_have_text(f"GET /posts/{v2_id}")
    await expect(primary.locator("[data-target]")).to_have_text(f"GET /posts/{post['id']}")
    await expect(primary.locator("mark[data-rewritten]")).to_have_count(0)
    background = await shadow.locator("mark[data-rewritten]").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # visibly highlighted


async def test_only_the_list_item_that_differs_is_highlighted(ink: Inkwell, page: Page) -> None:
    # Twelve products, newest first on V2, ids now strings; only product 3's stock differs (31 on V1, 30 on V2).
    await ink.send("GET", "/products")
    exchange = await ink.exchange("GET", "/products")

    await page.goto(f"{ink.admin}/exchanges/{exchange.id}")
    for side, stock in (("primary", 31), ("shadow", 30)):
        body = page.locator(f'div.side[data-side="{side}"][data-response] pre.code').nth(1)
        stock_lines = body.locator(":scope > *", has_text='"stock"')
        await expect(stock_lines).to_have_count(12)
        marked = body.locator(':scope > mark.diff:has-text("\\"stock\\"")')
        await expect(marked).to_have_count(1)  # one item's line, though every item has a stock line
        await expect(marked).to_have_text(f'      "stock": {stock}')
        # ... and it is product 3's: the lines just above it name SKU-0003
        index = await marked.evaluate("m => Array.from(m.parentElement.children).indexOf(m)")
        above = await body.locator(":scope > *").nth(index - 2).inner_text()
        assert "SKU-0003" in above
