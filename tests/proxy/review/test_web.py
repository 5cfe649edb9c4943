"""The web report over ASGI: overview, endpoint field tree and noise marks, exchanges, latency, promotions, tokens."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import event

from diffs.comparer import Comparer
from diffs.exchange import SentRequest
from diffs.readiness import Criteria
from diffs.report import Window
from diffs.rules import NoiseConfig
from diffs.storage import queries
from proxy.review.web import render_report_html
from tests import factories as f
from tests.proxy.report_seed import ReportApp, report_app

TOKEN = "web-token-for-tests"
GET_ORDER = "GET /api/orders/{id}"
Make = Callable[..., Any]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    """Build a seeded report app (settings overrides as keywords); returns (client, ReportApp)."""
    stack: list[Any] = []

    async def build(**overrides: Any) -> tuple[httpx.AsyncClient, ReportApp]:
        manager = report_app(f"sqlite+aiosqlite:///{tmp_path / f'store{len(stack)}.db'}", **overrides)
        ctx = await manager.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=ctx.app), base_url="http://127.0.0.1:8900")
        stack.append((manager, client))
        return client, ctx

    yield build
    for manager, client in reversed(stack):
        await client.aclose()
        await manager.__aexit__(None, None, None)


async def post_form(client: httpx.AsyncClient, url: str, data: dict[str, str], **kwargs: Any) -> httpx.Response:
    """Post a form as the report's pages do: with the CSRF token of the client's session (a page load sets it)."""
    page = (await client.get("/noise")).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    return await client.post(url, data={**data, "csrf_token": token.group(1)}, **kwargs)


def text_of(html: str, pattern: str) -> list[str]:
    """The text inside each match of `pattern`'s group, tags dropped and entities decoded."""
    return [unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(pattern, html, flags=re.S)]


async def test_overview_shows_each_service_its_primary_rates_latency_and_verdict(make: Make) -> None:
    client, _ = await make()
    response = await client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'data-service="orders"' in html and 'data-service="products"' in html
    orders = html[html.index('data-service="orders"') : html.index('data-service="products"')]
    assert 'data-verdict="not-ready"' in orders
    assert text_of(orders, r'<li data-criterion="[^"]+">(.*?)</li>') == [
        "diff rate 7.14% > 1.00%",
        "shadow error rate 1.43% > 1.00%",
    ]
    assert text_of(orders, r'<td class="num" data-rate="diff">(.*?)</td>') == ["7.14%"]
    assert "V2 18% faster" in orders
    products = html[html.index('data-service="products"') :]
    assert 'data-verdict="ready"' in products
    assert 'data-verdict="no-traffic"' in html  # the catch-all "default" service had no traffic


async def test_overview_filters_by_service_and_window(make: Make) -> None:
    client, _ = await make()
    only = (await client.get("/", params={"service": "products"})).text
    assert 'data-service="products"' in only and 'data-service="orders"' not in only
    recent = (await client.get("/", params={"since": "5m"})).text
    assert recent.count('data-verdict="no-traffic"') == 4  # everything was recorded ~25 minutes ago
    bad = await client.get("/", params={"since": "last tuesday"})
    assert bad.status_code == 422 and "Bad since" in bad.text
    unknown = await client.get("/", params={"service": "payments"})
    assert unknown.status_code == 404 and "unknown service &#39;payments&#39;" in unknown.text


async def test_endpoint_page_lists_the_field_tree_with_counts_verdicts_and_examples(make: Make) -> None:
    client, ctx = await make()
    html = (await client.get("/endpoint", params={"endpoint": GET_ORDER})).text
    row = html[html.index('data-path="root.total"') :]
    row = row[: row.index("</tr>")]
    assert text_of(row, r'data-count="raw">(.*?)</td>') == ["10"]
    assert text_of(row, r'data-count="noise">(.*?)</td>') == ["0"]
    assert 'data-verdict="finding"' in row and "Mark as noise" in row
    example = re.search(r'href="/exchanges/([^"]+)">example</a>', row)
    assert example is not None and (await ctx.store.get_exchange(example.group(1))) is not None
    assert '<svg class="chart"' in html
    noise = (await client.get("/endpoint", params={"endpoint": "POST /api/orders"})).text
    assert 'data-verdict="noise"' in noise
    missing = await client.get("/endpoint", params={"endpoint": "GET /nowhere"})
    assert missing.status_code == 404


async def test_marking_a_field_as_noise_stores_the_mark_and_clears_the_finding(make: Make) -> None:
    client, ctx = await make()
    here = "/endpoint?endpoint=" + quote(GET_ORDER)
    form = {"endpoint": GET_ORDER, "path": "root.total", "note": "rounding", "next": here}
    response = await post_form(client, "/noise", data=form)
    assert response.status_code == 303 and response.headers["location"] == here
    assert [(m.endpoint, m.path, m.note) for m in await ctx.store.list_noise_marks()] == [
        (GET_ORDER, "root.total", "rounding")
    ]
    html = (await client.get(here)).text
    assert 'data-verdict="marked"' in html and "Unmark" in html
    overview = (await client.get("/")).text
    orders = overview[overview.index('data-service="orders"') : overview.index('data-service="products"')]
    assert 'data-criterion="max_diff_rate"' not in orders  # the only finding is noise now
    (mark,) = await ctx.store.list_noise_marks()
    removed = await post_form(client, f"/noise/{mark.id}/delete", data={"next": here})
    assert removed.status_code == 303 and await ctx.store.list_noise_marks() == []


async def test_noise_marks_page_adds_and_lists_patterns(make: Make) -> None:
    client, ctx = await make()
    response = await post_form(client, "/noise", data={"endpoint": GET_ORDER, "path": "**.created_at"})
    assert response.status_code == 303 and response.headers["location"].startswith("/noise?message=")
    page = (await client.get(response.headers["location"])).text
    assert "Marked **.created_at as noise" in page and "**.created_at</td>" in page
    empty = await post_form(client, "/noise", data={"endpoint": "", "path": "x"})
    assert empty.status_code == 422


async def test_with_a_token_forms_need_it(make: Make) -> None:
    client, ctx = await make(admin_token=TOKEN)
    form = {"endpoint": GET_ORDER, "path": "root.total"}
    assert (await post_form(client, "/noise", data=form)).status_code == 401
    assert (await post_form(client, "/noise", data={**form, "token": "wrong"})).status_code == 401
    assert (await post_form(client, "/promotions/orders", data={"action": "promote"})).status_code == 401
    assert await ctx.store.list_noise_marks() == [] and ctx.state.primary("orders") == "v1"
    assert 'name="token"' in (await client.get("/promotions")).text  # the page asks for it
    assert (await post_form(client, "/noise", data={**form, "token": TOKEN})).status_code == 303
    assert len(await ctx.store.list_noise_marks()) == 1


async def test_forms_posted_from_another_site_are_refused(make: Make) -> None:
    client, ctx = await make()
    response = await client.post(
        "/promotions/orders", data={"action": "promote"}, headers={"origin": "http://evil.example"}
    )
    assert response.status_code == 403 and ctx.state.primary("orders") == "v1"
    same = await post_form(
        client, "/promotions/products", data={"action": "promote"}, headers={"origin": "http://127.0.0.1:8900"}
    )
    assert same.status_code == 303 and ctx.state.primary("products") == "v2"


async def test_redirects_stay_on_the_admin_site(make: Make) -> None:
    client, _ = await make()
    for target in ("//evil.example/x", "http://evil.example/", "https:/x"):
        response = await post_form(client, "/noise", data={"endpoint": GET_ORDER, "path": "root.total", "next": target})
        assert response.headers["location"].startswith("/noise?"), target


async def test_exchange_page_shows_both_sides_with_the_differing_field_marked(make: Make) -> None:
    client, ctx = await make()
    html = (await client.get(f"/exchanges/{ctx.seeded.diff_exchange_id}")).text
    starts = [
        html.index(f'<div class="side" data-side="{side}" data-response>')
        for side in ("primary", "shadow", "secondary")
    ]
    primary, shadow = html[starts[0] : starts[1]], html[starts[1] : starts[2]]
    assert text_of(primary, r'<mark class="diff" data-path="root.total">(.*?)</mark>') == ['"total": "27.00",']
    assert text_of(shadow, r'<mark class="diff" data-path="root.total">(.*?)</mark>') == ['"total": "28.00",']
    assert html.count('<mark class="diff"') == 2  # nothing else is marked
    assert "23.0 ms" in html and "18.0 ms" in html  # both latencies
    assert "GET /api/orders/4" in html


async def test_exchange_page_shows_what_each_side_received_and_marks_a_rewritten_target(make: Make) -> None:
    client, ctx = await make()
    headers = (("accept", "application/json"), ("x-shadow-request", "1"), ("authorization", "Bearer s3cret"))
    x = f.exchange(
        id="rewritten-1",
        path="/api/orders/7",
        primary=replace(f.primary(f.order_body(id=7)), sent=SentRequest("/api/orders/7", headers[:1])),
        shadow=replace(
            f.shadow(f.order_body(id=1007)), sent=SentRequest("/api/orders/1007?token=abc", headers, b'{"id": 1007}')
        ),
    )
    await ctx.store.write_batch([Comparer(ctx.settings.services).compare(x)])
    html = (await client.get("/exchanges/rewritten-1")).text
    received = html[html.index("What each side received") : html.index("<h2>Responses</h2>")]
    assert text_of(received, r"<mark[^>]*data-rewritten[^>]*>(.*?)</mark>") == ["GET /api/orders/1007?token=[REDACTED]"]
    assert text_of(received, r"<span data-target>(.*?)</span>") == ["GET /api/orders/7"]  # the primary's: as sent
    assert "x-shadow-request: 1" in received and "s3cret" not in html  # headers as received, secrets redacted
    api = (await client.get("/api/v1/exchanges/rewritten-1")).json()
    assert api["shadow"]["sent"]["target"] == "/api/orders/1007?token=[REDACTED]"
    assert api["primary"]["sent"]["body"] is None and api["shadow"]["sent"]["body"]["json"] == {"id": 1007}


async def test_exchange_ids_needing_quoting_still_resolve(make: Make) -> None:
    client, ctx = await make()
    x = f.exchange(id="odd id/#1", primary=f.primary(f.order_body()), shadow=f.shadow(f.order_body(total="1.00")))
    await ctx.store.write_batch([Comparer(ctx.settings.services).compare(x)])
    response = await client.get("/exchanges/" + quote("odd id/#1", safe=""))
    assert response.status_code == 200 and "odd id/#1" in response.text
    assert (await client.get("/exchanges/nope")).status_code == 404


async def test_exchange_list_filters_and_pages_with_a_cursor(make: Make) -> None:
    client, ctx = await make()
    first = (await client.get("/exchanges", params={"service": "orders"})).text
    ids = re.findall(r'<tr data-exchange="([^"]+)">', first)
    assert len(ids) == 50
    older = re.search(r'<a href="/exchanges(\?[^"]+)" rel="next">', first)
    assert older is not None
    second = (await client.get("/exchanges" + older.group(1).replace("&amp;", "&"))).text
    more = re.findall(r'<tr data-exchange="([^"]+)">', second)
    assert len(more) == 50 and not set(ids) & set(more) and "← newest" in second
    errors = (await client.get("/exchanges", params={"outcome": "shadow_error"})).text
    assert sorted(re.findall(r'<tr data-exchange="([^"]+)">', errors)) == sorted(
        x.id for x in (await queries.list_exchanges(ctx.store, queries.ExchangeFilter(outcome="shadow_error"))).items
    )
    by_field = (await client.get("/exchanges", params={"endpoint": GET_ORDER, "path": "root.total"})).text
    assert len(re.findall(r"<tr data-exchange=", by_field)) == 10
    assert (await client.get("/exchanges", params={"outcome": "weird"})).status_code == 422


async def test_latency_page_draws_a_chart_per_endpoint(make: Make) -> None:
    client, _ = await make()
    html = (await client.get("/latency")).text
    charts = re.findall(r'<div class="endpoint-chart" data-endpoint="([^"]+)">', html)
    assert sorted(charts) == [
        "GET /api/orders/{id}",
        "GET /api/products/{id}",
        "POST /api/ai/generate",
        "POST /api/orders",
    ]
    products = html[html.index('data-endpoint="GET /api/products/{id}"') :]
    bars = re.findall(r'<rect class="(primary|shadow)"[^>]*><title>\w+: ([\d.]+) ms</title>', products)[:6]
    assert bars == [
        ("primary", "44.0"),
        ("shadow", "34.0"),
        ("primary", "48.0"),
        ("shadow", "38.0"),
        ("primary", "49.0"),
        ("shadow", "39.0"),
    ]


async def test_promote_and_roll_back_from_the_promotions_page(make: Make) -> None:
    client, ctx = await make()
    response = await post_form(client, "/promotions/products", data={"action": "promote", "reason": "numbers are good"})
    assert response.status_code == 303
    assert ctx.state.primary("products") == "v2"
    page = (await client.get(response.headers["location"])).text
    assert "products: primary is now v2 (was v1)" in page
    assert "numbers are good" in page and "v1 → v2" in page
    (record,) = await ctx.store.list_promotions("products")
    assert record.actor.startswith("web@") and record.to_side == "v2"
    await post_form(client, "/promotions/products", data={"action": "rollback"})
    assert ctx.state.primary("products") == "v1"
    never = await post_form(client, "/promotions/orders", data={"action": "rollback"})
    assert "orders: primary is already v1; nothing changed" in (await client.get(never.headers["location"])).text
    assert (await post_form(client, "/promotions/payments", data={"action": "promote"})).status_code == 404
    assert (await post_form(client, "/promotions/orders", data={"action": "explode"})).status_code == 422


def promotion_row(html: str, service: str) -> str:
    row = html[html.index(f'<tr data-service="{service}">') :]
    return row[: row.index("</tr>")]


async def test_promoting_a_not_ready_service_asks_for_confirmation(make: Make) -> None:
    """Issue 13: the solid green "Promote v2 to primary" asked nothing, even for a NOT READY service."""
    client, ctx = await make()
    listing = (await client.get("/promotions")).text
    assert "Promote v2…" in promotion_row(listing, "orders") and 'class="go"' not in promotion_row(listing, "orders")
    assert "Promote v2 to primary" in promotion_row(listing, "products")  # READY: one click
    asked = await post_form(client, "/promotions/orders", data={"action": "promote", "reason": "trying"})
    assert asked.status_code == 200 and ctx.state.primary("orders") == "v1"
    assert text_of(asked.text, r'<li data-criterion="[^"]+">(.*?)</li>') == [
        "diff rate 7.14% > 1.00%",
        "shadow error rate 1.43% > 1.00%",
    ]
    assert 'name="confirm" value="yes"' in asked.text and 'value="trying"' in asked.text
    confirmed = await post_form(client, "/promotions/orders", data={"action": "promote", "confirm": "yes"})
    assert confirmed.status_code == 303 and ctx.state.primary("orders") == "v2"


async def test_rollback_is_offered_only_where_v2_serves(make: Make) -> None:
    """Issue 13: "Roll back" was offered for services never promoted."""
    client, ctx = await make()
    listing = (await client.get("/promotions")).text
    assert "Roll back" not in listing
    await ctx.state.promote("products", "v2", reason="", actor="test")
    listing = (await client.get("/promotions")).text
    assert "Roll back to v1" in promotion_row(listing, "products") and "Promote" not in promotion_row(
        listing, "products"
    )
    assert "Roll back" not in promotion_row(listing, "orders")


async def test_the_html_report_file_is_self_contained(make: Make) -> None:
    _, ctx = await make()
    report = await queries.load_report(
        ctx.store,
        window=Window(),
        criteria=Criteria(),
        noise=NoiseConfig(),
        primaries={},
        services=list(ctx.settings.services),
    )
    html = render_report_html(report)
    assert "<style>" in html and "<svg" in html and 'data-service="orders"' in html
    assert 'href="/' not in html and "<script" not in html  # no links back to a server, nothing to fetch
    assert "root.total" in html and "diff rate 7.14% &gt; 1.00%" in html


async def test_noise_differences_are_grey_not_highlighted(make: Make) -> None:
    client, ctx = await make()
    example = (await queries.field_examples(ctx.store, "POST /api/orders"))["root.order_number"]  # bodies kept
    html = (await client.get("/exchanges/" + quote(example, safe=""))).text
    assert '<mark class="diff"' not in html  # order_number differs on the secondary too: noise, not a finding
    assert text_of(html, r'<mark class="noise" data-path="root.order_number"[^>]*>(.*?)</mark>')[0].startswith(
        '"order_number": "ORD-'
    )


async def test_a_field_marked_as_noise_later_turns_grey_on_its_exchanges(make: Make) -> None:
    client, ctx = await make()
    await ctx.store.add_noise_mark(GET_ORDER, "root.total")
    html = (await client.get(f"/exchanges/{ctx.seeded.diff_exchange_id}")).text
    assert '<mark class="diff"' not in html
    assert html.count('<mark class="noise" data-path="root.total"') == 2  # primary and shadow


async def test_overview_takes_readiness_criteria_from_the_query(make: Make) -> None:
    client, _ = await make()
    html = (await client.get("/", params={"max_diff_rate": "0.1", "max_error_rate": "0.02"})).text
    orders = html[html.index('data-service="orders"') : html.index('data-service="products"')]
    assert 'data-verdict="ready"' in orders and "diff rate (findings, noise excluded) ≤ 10.00%" in html
    assert (await client.get("/", params={"max_diff_rate": "lots"})).status_code == 422


async def test_diff_values_are_shown_as_json_text_and_escaped(make: Make) -> None:
    client, ctx = await make()
    body = f.order_body(coupon="<b>a >= b</b>")
    x = f.exchange(id="xss-1", primary=f.primary(body), shadow=f.shadow({**body, "coupon": None}))
    await ctx.store.write_batch([Comparer(ctx.settings.services).compare(x)])
    html = (await client.get("/exchanges/xss-1")).text
    assert "<b>a" not in html and "\\u003e" not in html
    row = html[html.index('<tr data-path="root.coupon">') :]
    assert text_of(row[: row.index("</tr>")], r'<td class="mono">(.*?)</td>') == [
        "root.coupon",
        '"<b>a >= b</b>"',
        "null",
    ]


async def test_endpoint_page_lists_findings_before_noise(make: Make) -> None:
    """Issue 13: on the endpoint page noise rows sat alphabetically among findings."""
    client, ctx = await make()
    comparer = Comparer(ctx.settings.services)
    batch = []
    for n in range(6):
        order = {**f.order_body(id=900 + n), "aaa_stamp": "p"}
        x = f.exchange(
            primary=f.primary(order),
            shadow=f.shadow({**order, "aaa_stamp": "s"}),
            secondary=f.secondary({**order, "aaa_stamp": "2nd"}),  # differs on the secondary too: noise
            path=f"/api/orders/{900 + n}",
        )
        batch.append(comparer.compare(x))
    await ctx.store.write_batch(batch)
    html = (await client.get("/endpoint", params={"endpoint": GET_ORDER})).text
    groups = re.findall(r'<tr class="group" data-group="(\w+)">', html)
    assert groups == ["finding", "noise"]
    total, stamp = html.index('data-path="root.total"'), html.index('data-path="root.aaa_stamp"')
    assert html.index('data-group="finding"') < total < html.index('data-group="noise"') < stamp


ENDPOINT_PAGE_STATEMENTS = 9
"""The endpoint's service; the report (six statements: `tests/diffs/storage/test_report_queries.py`); the noise
marks; the field examples (one statement, whatever the number of fields)."""


@pytest.mark.parametrize("endpoint", [GET_ORDER, "POST /api/orders"])
async def test_the_endpoint_page_takes_a_fixed_number_of_statements(make: Make, endpoint: str) -> None:
    client, ctx = await make()
    await ctx.state.aclose()  # its re-reads of the promotions would land among the page's statements
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "(SELECT")) and "FROM events" not in statement:
            seen.append(statement)  # not the state feed's own poll (SQLite), whatever the page

    engine = queries._engine(ctx.store).sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        response = await client.get("/endpoint", params={"endpoint": endpoint})
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert response.status_code == 200 and 'href="/exchanges/' in response.text  # an example for a field
    assert len(seen) == ENDPOINT_PAGE_STATEMENTS, "\n\n".join(seen)
