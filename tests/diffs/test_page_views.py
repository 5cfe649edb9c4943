"""What pages show: bodies as lines with differing fields marked, status and headers, the field tree."""

from __future__ import annotations

import json

from diffs import page_views
from diffs.report import FieldSummary, Verdict


def test_json_lines_mark_the_differing_fields_and_everything_inside_them() -> None:
    body = {"id": 1, "items": [{"price": "1.00", "qty": 1}], "total": "1.00", "meta": {"a": {"b": 1}}, "x.y": 2}
    lines = page_views.mark_lines(page_views.json_lines(body), ["root.items[*].price", "root.meta"])
    marked = [line.text.strip() for line in lines if line.marked]
    assert marked == ['"price": "1.00",', '"meta": {', '"a": {', '"b": 1', "}", "},"]
    assert json.loads("\n".join(line.text for line in lines)) == body  # still the same JSON
    assert next(line.path for line in lines if '"x.y"' in line.text) == 'root["x.y"]'


def test_body_view_for_missing_text_and_json_bodies() -> None:
    headers = (("content-type", "application/json"),)
    assert page_views.body_view(None, headers, ())[0].text == "(body not kept for this exchange)"
    assert page_views.body_view(b"", headers, ())[0].text == "(empty body)"
    plain = page_views.body_view(b"hello\nworld", (("content-type", "text/plain"),), ["root"])
    assert [(line.text, line.marked) for line in plain] == [("hello", True), ("world", True)]
    assert any(line.marked for line in page_views.body_view(b'{"a": 1}', headers, ["root.a"]))


def test_header_view_marks_a_differing_status_and_header() -> None:
    lines = page_views.header_view(
        404, (("Content-Type", "text/plain"), ("x-a", "1")), ["status", "header.content-type"]
    )
    assert [(line.text, line.marked) for line in lines] == [
        ("status 404", True),
        ("Content-Type: text/plain", True),
        ("x-a: 1", False),
    ]


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
        page_views.json_lines({"total": "1.00", "created_at": "x", "id": 1}), ["root.total"], ["root.created_at"]
    )
    assert [(line.text.strip(), line.marked, line.noise) for line in lines[1:-1]] == [
        ('"total": "1.00",', True, False),
        ('"created_at": "x",', False, True),
        ('"id": 1', False, False),
    ]
    head = page_views.header_view(200, (("date", "today"),), [], ["header.date"])
    assert [(line.marked, line.noise) for line in head] == [(False, False), (False, True)]
