"""Noise marks (listed, updated, removed), id pairs (saved per resource, newest kept, loaded for an LRU) and
learned templates."""

from __future__ import annotations

from store_fixtures import Database

from diffs.id_pairs import IdPair, IdValue
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


def pair(resource: str, from_id: IdValue, to_id: IdValue, service: str = "orders", to_side: str = "v2") -> IdPair:
    return IdPair(service, resource, "v1", from_id, to_side, to_id)


async def test_id_pairs_keep_the_newest_counterpart_per_resource_direction_and_id(store: Store) -> None:
    await store.save_id_pairs([pair("/orders", 1, 101), pair("/orders", 2, 102), pair("/customers", 1, "c-1")])
    await store.save_id_pairs([pair("/orders", 3, 103), pair("/orders", 1, 111), pair("/orders", 1, 7, to_side="x")])
    await store.save_id_pairs([pair("/p", 1, 9, service="products")])
    await store.save_id_pairs([])
    pairs = await store.load_id_pairs(services=["orders"])
    assert {(p.resource, p.to_side, p.from_id): p.to_id for p in pairs} == {
        ("/orders", "v2", 1): 111,
        ("/orders", "v2", 2): 102,
        ("/orders", "v2", 3): 103,
        ("/orders", "x", 1): 7,
        ("/customers", "v2", 1): "c-1",  # its own resource: no clash with order 1
    }
    assert pairs[-1].from_id in (3, 1)  # the newest batch comes last
    assert [p.service for p in await store.load_id_pairs(services=["products"])] == ["products"]
    assert len(await store.load_id_pairs()) == 6


async def test_load_id_pairs_returns_only_the_newest(store: Store) -> None:
    for i in range(5):
        await store.save_id_pairs([pair("/orders", f"p{i}", f"s{i}")])
    assert [(p.from_id, p.to_id) for p in await store.load_id_pairs(limit=2)] == [("p3", "s3"), ("p4", "s4")]


async def test_a_repeated_id_in_one_batch_is_saved_once_and_ids_keep_their_types(store: Store) -> None:
    await store.save_id_pairs([pair("/orders", 1, "a"), pair("/orders", 1, "b"), pair("/orders", "1", 2)])
    loaded = await store.load_id_pairs()
    assert sorted((type(p.from_id).__name__, p.to_id) for p in loaded) == [("int", "b"), ("str", 2)]


async def test_id_pairs_survive_a_restart(database: Database) -> None:
    first = await database.open()
    await first.save_id_pairs([pair("/orders", 7, 70)])
    await first.close()
    second = await database.open()
    try:
        assert await second.load_id_pairs() == [pair("/orders", 7, 70)]
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
