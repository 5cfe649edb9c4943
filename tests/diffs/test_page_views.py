"""What pages show: bodies as lines with differing fields marked, status and headers, the field tree."""

from __future__ import annotations

import json

from diffs import page_views
from diffs.exchange import DiffKind, FieldDiff
from diffs.report import FieldSummary, Verdict

H = page_views.Highlights


def test_json_lines_mark_the_differing_fields_and_everything_inside_them() -> None:
    body = {"id": 1, "items": [{"price": "1.00", "qty": 1}], "total": "1.00", "meta": {"a": {"b": 1}}, "x.y": 2}
    lines = page_views.mark_lines(page_views.json_lines(body), H.of(["root.items[*].price", "root.meta"]))
    marked = [line.text.strip() for line in lines if line.marked]
    assert marked == ['"price": "1.00",', '"meta": {', '"a": {', '"b": 1', "}", "},"]
    assert json.loads("\n".join(line.text for line in lines)) == body  # still the same JSON
    assert next(line.path for line in lines if '"x.y"' in line.text) == 'root["x.y"]'


def test_body_view_for_missing_text_and_json_bodies() -> None:
    headers = (("content-type", "application/json"),)
    assert page_views.body_view(None, headers)[0].text == "(body not kept for this exchange)"
    assert page_views.body_view(b"", headers)[0].text == "(empty body)"
    plain = page_views.body_view(b"hello\nworld", (("content-type", "text/plain"),), H.of(["root"]))
    assert [(line.text, line.marked) for line in plain] == [("hello", True), ("world", True)]
    assert any(line.marked for line in page_views.body_view(b'{"a": 1}', headers, H.of(["root.a"])))


def test_header_view_marks_a_differing_status_and_header() -> None:
    lines = page_views.header_view(
        404, (("Content-Type", "text/plain"), ("x-a", "1")), H.of(["status", "header.content-type"])
    )
    assert [(line.text, line.marked) for line in lines] == [
        ("status 404", True),
        ("Content-Type: text/plain", True),
        ("x-a: 1", False),
    ]


STOCK = [{"id": n, "stock": 31} for n in (1, 2, 3)]


def diff(kind: DiffKind, path: str, at_a: str | None = None, at_b: str | None = None) -> FieldDiff:
    return FieldDiff("x", "GET /products", path, kind, None, None, False, at_a, at_b)


def marked_lines(body: object, highlights: page_views.Highlights) -> list[str]:
    return [line.text.strip() for line in page_views.mark_lines(page_views.json_lines(body), highlights) if line.marked]


def test_only_the_differing_item_of_an_aligned_list_is_marked_on_each_side() -> None:
    primary = {"items": STOCK}
    shadow = {"items": [{"id": 3, "stock": 30}, {"id": 2, "stock": 31}, {"id": 1, "stock": 31}]}
    changed = diff(DiffKind.CHANGED, "root.items[*].stock", "root.items[2].stock", "root.items[0].stock")
    moved = diff(DiffKind.REORDERED, "root.items")
    diffs = [changed, moved]
    assert marked_lines(primary, page_views.highlights(diffs, "primary")) == ['"items": [', '"stock": 31', "]"]
    shadow_lines = page_views.mark_lines(page_views.json_lines(shadow), page_views.highlights(diffs, "shadow"))
    assert [(n, line.text.strip()) for n, line in enumerate(shadow_lines) if line.marked] == [
        (1, '"items": ['),  # the reordered list itself (its brackets), not everything in it
        (4, '"stock": 30'),  # item 3's stock, first on the shadow; items 1 and 2 say 31 on both sides
        (14, "]"),
    ]


def test_added_and_removed_items_are_marked_on_the_side_that_has_them() -> None:
    added = diff(DiffKind.ITEM_ADDED, "root.items[*]", None, "root.items[1]")
    removed = diff(DiffKind.ITEM_REMOVED, "root.items[*]", "root.items[0]", None)
    body = {"items": STOCK[:2]}
    assert marked_lines(body, page_views.highlights([added, removed], "shadow")) == [
        "{",
        '"id": 2,',
        '"stock": 31',
        "}",
    ]
    assert marked_lines(body, page_views.highlights([added, removed], "primary")) == [
        "{",
        '"id": 1,',
        '"stock": 31',
        "},",
    ]


def test_diffs_stored_without_a_place_mark_every_item_as_before() -> None:
    legacy = diff(DiffKind.CHANGED, "root.items[*].stock")
    assert marked_lines({"items": STOCK}, page_views.highlights([legacy], "primary")) == ['"stock": 31'] * 3


def test_text_bodies_mark_the_lines_of_each_differing_block_on_its_side() -> None:
    headers = (("content-type", "text/html"),)
    changed = diff(DiffKind.CHANGED, "root.line.2", "root.line.2", "root.line.2-3")
    added = diff(DiffKind.ITEM_ADDED, "root.line.4", None, "root.line.5")
    primary = page_views.body_view(b"a\nb\nc\nd\n", headers, page_views.highlights([changed, added], "primary"))
    shadow = page_views.body_view(b"a\nB\nB2\nc\nnew\n", headers, page_views.highlights([changed, added], "shadow"))
    assert [line.text for line in primary if line.marked] == ["b"]
    assert [line.text for line in shadow if line.marked] == ["B", "B2", "new"]


def test_field_tree_nests_body_fields_under_their_ancestors() -> None:
    fields = [
        FieldSummary("E", p, 1, 0, Verdict.FINDING)
        for p in ("root.items[*].price", "status", "root.total", "root.items[*].name")
    ]
    rows = [(r.depth, r.label, r.field is not None) for r in page_views.field_tree(fields)]
    assert rows == [
        (0, "status", True),
        (0, "root", False),
        (1, "items", False),
        (2, "[*]", False),
        (3, "name", True),
        (3, "price", True),
        (1, "total", True),
    ]


def test_noise_lines_are_told_apart_from_differing_ones() -> None:
    lines = page_views.mark_lines(
        page_views.json_lines({"total": "1.00", "created_at": "x", "id": 1}),
        H.of(["root.total"]),
        H.of(["root.created_at"]),
    )
    assert [(line.text.strip(), line.marked, line.noise) for line in lines[1:-1]] == [
        ('"total": "1.00",', True, False),
        ('"created_at": "x",', False, True),
        ('"id": 1', False, False),
    ]
    head = page_views.header_view(200, (("date", "today"),), page_views.NOTHING, H.of(["header.date"]))
    assert [(line.marked, line.noise) for line in head] == [(False, False), (False, True)]
