"""Wrong verdicts seen on a real migration, each replayed through the real proxy in front of Inkwell V1 and V2.

Every test here failed before issue 11's changes: ids paired across resources, a read racing a mirrored write, lists
compared by position, one endpoint per SKU or generated id, a dropped field excused as noise, an HTML page excused
by one noisy line, and a secondary whose data drifted while V2 was primary.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from diffs.exchange import DiffKind, Outcome
from diffs.report import Window
from diffs.storage import Store, queries
from tests.thirdparty_pair.harness import SERVICE, diffs_at, inkwell


async def test_an_id_pair_rewrites_only_where_its_resource_is_named(tmp_path: Path) -> None:
    async with inkwell(tmp_path) as ink:
        comment = (await ink.send("POST", "/comments", json={"post_id": 1, "body": "hi"})).json()
        assert comment["id"] == 5  # V1's new comment 5; V2 gave it a generated string id
        v2_comment = ink.v2.received[-1]
        assert v2_comment.target == "/comments"
        v2_comment_id = next(c for c in ink.v2_data.comments.values() if c["body"] == "hi")["id"]

        await ink.send("GET", "/posts/5")  # post 5 is a seeded post: not the comment created above
        await ink.send("PATCH", "/posts/5", json={"title": "Edited"})
        await ink.send("GET", "/comments/5")  # the comment: the shadow's own comment
        post = (await ink.send("POST", "/posts", json={"title": "New", "user_id": 1})).json()
        assert post["id"] == 6
        await ink.send("GET", "/posts?user_id=6")  # user 6, not the post 6 just paired
        await ink.send("POST", "/comments", json={"post_id": 6, "body": "on the new post"})

        shadow_targets = ink.v2.targets()
        get_post = await ink.exchange("GET", "/posts/5")
    assert "/posts/5" in shadow_targets and f"/posts/{v2_comment_id}" not in shadow_targets
    assert ink.v2_data.posts["5"]["title"] == "Edited"  # the PATCH reached V2's post 5
    assert f"/comments/{v2_comment_id}" in shadow_targets
    assert "/posts?user_id=6" in shadow_targets
    assert get_post.shadow is not None and get_post.shadow.status == 200
    assert not diffs_at(get_post, "status")
    # Typed: V2's own id, as V2's JSON type (a string), in the body of the comment on the new post.
    new_post_v2 = next(p for p in ink.v2_data.posts.values() if p["title"] == "New")["id"]
    assert orjson.loads(ink.v2.received[-1].body)["post_id"] == new_post_v2


async def test_a_read_right_after_a_mirrored_patch_sees_the_patch(tmp_path: Path) -> None:
    async with inkwell(tmp_path, secondary=False, patch_delay=1.0) as ink:
        patched = await ink.client.patch(f"{ink.proxy}/posts/3", json={"views": 99})
        started = time.perf_counter()
        read = await ink.client.get(f"{ink.proxy}/posts/3")
        listing = await ink.client.get(f"{ink.proxy}/posts")
        client_seconds = time.perf_counter() - started
        ink.seen = 3
        exchange = await ink.exchange("GET", "/posts/3")
        listed = await ink.exchange("GET", "/posts")
    assert patched.status_code == read.status_code == listing.status_code == 200
    assert client_seconds < 1.0  # the client never waits for the shadow's ordering
    assert not diffs_at(exchange, "root.views"), exchange.diffs
    assert not diffs_at(listed, "root.items[*].views"), listed.diffs


async def test_a_filtered_reordered_list_is_aligned_by_id(tmp_path: Path) -> None:
    async with inkwell(tmp_path, secondary=False) as ink:
        await ink.send("GET", "/posts?tag=news")  # same posts, newest first on V2, ids now strings
        await ink.send("GET", "/posts?tag=howto")  # V2's filter lets a draft in
        news = await ink.exchange("GET", "/posts?tag=news")
        howto = await ink.exchange("GET", "/posts?tag=howto")
    for exchange in (news, howto):
        changed = {d.path for d in exchange.diffs if d.kind is DiffKind.CHANGED}
        assert not changed & {"root.items[*].title", "root.items[*].author", "root.items[*].views"}, exchange.diffs
        kinds = {d.path: d.kind for d in exchange.diffs}
        assert kinds["root.items[*].id"] is DiffKind.TYPE_CHANGED
    assert [d.kind for d in diffs_at(news, "root.items")] == [DiffKind.REORDERED]
    [added] = [d for d in howto.diffs if d.kind is DiffKind.ITEM_ADDED]
    assert added.path == "root.items[*]" and added.shadow_value["id"] == "4"


async def _endpoints(ink_store_url: str) -> set[str]:
    store = await Store.open(ink_store_url)
    try:
        counts = await queries.endpoint_counts(store, Window(), SERVICE)
    finally:
        await store.close()
    return {c.endpoint for c in counts}


async def test_skus_extensions_and_generated_ids_group_into_templates_before_and_after_promotion(
    tmp_path: Path,
) -> None:
    async with inkwell(tmp_path, secondary=False) as ink:
        for n in range(1, 13):
            await ink.send("GET", f"/products/sku/SKU-{n:04d}")
        for n in range(1, 6):
            await ink.send("GET", f"/posts/{n}.json")
            await ink.send("GET", f"/posts/{n}")
        await ink.promote("v2")
        created = [(await ink.send("POST", "/posts", json={"title": f"T{n}"})).json()["id"] for n in range(8)]
        assert all(isinstance(i, str) and len(i) == 11 for i in created)  # V2's generated ids, as clients see them
        for post_id in created:
            await ink.send("GET", f"/posts/{post_id}")
            await ink.send("GET", f"/posts/{post_id}.json")
        for n in range(1, 5):
            await ink.send("GET", f"/products/sku/SKU-{n:04d}")
        endpoints = await _endpoints(ink.store_url)
    sku = {e for e in endpoints if e.startswith("GET /products/sku/")}
    by_id = {e for e in endpoints if e.startswith("GET /posts/") and not e.endswith(".json")}
    json = {e for e in endpoints if e.startswith("GET /posts/") and e.endswith(".json")}
    assert len(sku) == 1 and "{" in next(iter(sku)), sku
    assert len(by_id) == 1 and "{" in next(iter(by_id)), by_id
    assert len(json) == 1 and "{" in next(iter(json)), json


async def test_a_dropped_field_is_a_finding_even_when_its_value_was_noisy(tmp_path: Path) -> None:
    async with inkwell(tmp_path) as ink:
        for _ in range(5):
            await ink.send("GET", "/stats")
        exchanges = await ink.stored(5)
        store = await Store.open(ink.store_url)
        try:
            fields = await queries.field_counts(store, Window())
        finally:
            await store.close()
    for exchange in exchanges:
        [removed] = diffs_at(exchange, "root.took_ms")
        assert removed.kind is DiffKind.REMOVED and not removed.noise
        assert exchange.summary.outcome is Outcome.DIFF
    [took] = [f for f in fields if f.path == "root.took_ms"]
    assert took.raw == 5 and took.noise == 0


async def test_an_html_page_with_one_noisy_line_still_shows_its_real_changes(tmp_path: Path) -> None:
    async with inkwell(tmp_path) as ink:
        for _ in range(3):
            await ink.send("GET", "/posts/2.html")
        exchanges = await ink.stored(3)
    for exchange in exchanges:
        assert exchange.summary.outcome is Outcome.DIFF
        findings = [d for d in exchange.diffs if not d.noise]
        assert any("<nav>" in str(d.shadow_value) for d in findings), exchange.diffs
        assert all(d.path != "root" for d in exchange.diffs)  # compared line by line, not as one value


async def test_the_secondary_stays_in_step_across_promotion_and_rollback(tmp_path: Path) -> None:
    async with inkwell(tmp_path) as ink:
        await ink.send("GET", "/posts/1")
        await ink.promote("v2")
        await ink.send("PATCH", "/posts/1", json={"score": 4.25})  # V2 (primary now) keeps 4.2, V1 4.25
        await ink.promote("v1")
        await ink.send("GET", "/posts/1")
        await ink.send("GET", "/posts/1")
        reads = [e for e in await ink.stored(ink.seen) if e.summary.method == "GET"][1:]
        await asyncio.sleep(0)
    assert ink.secondary_data.posts[1]["score"] == 4.25
    for exchange in reads:
        [score] = diffs_at(exchange, "root.score")
        assert score.kind is DiffKind.CHANGED and not score.noise, exchange.diffs
