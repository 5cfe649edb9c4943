"""Noise marks (listed, updated, removed) and id correlations (saved, newest kept, loaded for an LRU)."""

from __future__ import annotations

from store_fixtures import Database

from diffs.storage import Store
from diffs.templating import LearnedTemplate


async def test_noise_marks_are_listed_updated_and_removed(store: Store) -> None:
    assert await store.list_noise_marks() == []
    mark = await store.add_noise_mark("GET /api/orders/{id}", "root.created_at", "generated per run")
    other = await store.add_noise_mark("POST /api/ai/generate", "root.cached", "")
    assert mark.id != other.id and mark.created_at.tzinfo is not None
    again = await store.add_noise_mark("GET /api/orders/{id}", "root.created_at", "timestamps differ")
    assert again.id == mark.id and again.note == "timestamps differ"
    listed = await store.list_noise_marks()
    assert [(m.endpoint, m.path, m.note) for m in listed] == [
        ("GET /api/orders/{id}", "root.created_at", "timestamps differ"),
        ("POST /api/ai/generate", "root.cached", ""),
    ]
    assert await store.delete_noise_mark(mark.id) is True
    assert await store.delete_noise_mark(mark.id) is False
    assert [m.id for m in await store.list_noise_marks()] == [other.id]


async def test_correlations_keep_the_newest_shadow_id_per_primary_id(store: Store) -> None:
    await store.save_correlations("orders", [("1", "101"), ("2", "102")])
    await store.save_correlations("orders", [("3", "103"), ("1", "111")])
    await store.save_correlations("products", [("1", "9")])
    await store.save_correlations("orders", [])
    pairs = await store.load_correlations("orders")
    assert dict(pairs) == {"1": "111", "2": "102", "3": "103"}
    assert pairs[-1] in {("1", "111"), ("3", "103")}  # the newest batch comes last
    assert await store.load_correlations("products") == [("1", "9")]
    assert await store.load_correlations("ai") == []


async def test_load_correlations_returns_only_the_newest(store: Store) -> None:
    for i in range(5):
        await store.save_correlations("orders", [(f"p{i}", f"s{i}")])
    assert await store.load_correlations("orders", limit=2) == [("p3", "s3"), ("p4", "s4")]


async def test_a_repeated_primary_id_in_one_batch_is_saved_once(store: Store) -> None:
    await store.save_correlations("orders", [("1", "a"), ("1", "b")])
    assert await store.load_correlations("orders") == [("1", "b")]


async def test_correlations_survive_a_restart(database: Database) -> None:
    first = await database.open()
    await first.save_correlations("orders", [("7", "70")])
    await first.close()
    second = await database.open()
    try:
        assert await second.load_correlations("orders") == [("7", "70")]
    finally:
        await second.close()


async def test_learned_templates_are_shared_and_any_wins_over_id(store: Store) -> None:
    assert await store.load_learned_templates() == []
    await store.save_learned_templates([LearnedTemplate("blog", "/posts/{id}", "id")])
    await store.save_learned_templates(
        [LearnedTemplate("blog", "/tags/{id}", "any"), LearnedTemplate("blog", "/posts/{id}", "id")]
    )
    await store.save_learned_templates([LearnedTemplate("blog", "/tags/{id}", "id")])  # a process that did not know
    await store.save_learned_templates([])
    assert set(await store.load_learned_templates()) == {
        LearnedTemplate("blog", "/posts/{id}", "id"),
        LearnedTemplate("blog", "/tags/{id}", "any"),
    }
    await store.save_learned_templates([LearnedTemplate("blog", "/posts/{id}", "any")])
    assert LearnedTemplate("blog", "/posts/{id}", "any") in await store.load_learned_templates()
