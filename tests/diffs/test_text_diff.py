"""Text bodies in parts: one change per differing block, numbered by the primary's lines, noise per block."""

from __future__ import annotations

import pytest

from diffs.comparer import Comparer
from diffs.exchange import DiffKind
from diffs.response_diff import compare_responses
from diffs.rules import CompareRules, TextSimilarity
from diffs.text_diff import TextChange, span, text_changes
from proxy.config import ServiceConfig
from tests.factories import exchange, primary, secondary, shadow

C, IA, IR = DiffKind.CHANGED, DiffKind.ITEM_ADDED, DiffKind.ITEM_REMOVED
PAGE = "<html>\n<head><title>Post 2</title></head>\n<body>\n<h1>Post 2</h1>\n<!-- rendered in 3.1 ms -->\n</body>\n"


def test_lines_that_differ_are_one_change_per_block_at_the_primarys_line() -> None:
    other = PAGE.replace("<head><title>Post 2</title></head>", "<head>\n<title>Post 2 · Inkwell</title>\n</head>")
    other = other.replace("<!-- rendered in 3.1 ms -->\n", "") + "<script></script>\n"
    assert text_changes(PAGE, other) == [
        TextChange(
            "root.line.2",
            C,
            "<head><title>Post 2</title></head>",
            "<head>\n<title>Post 2 · Inkwell</title>\n</head>",
            "root.line.2",
            "root.line.2-4",
        ),
        TextChange("root.line.5", IR, "<!-- rendered in 3.1 ms -->", None, "root.line.5", None),
        TextChange("root.line.7", IA, None, "<script></script>", None, "root.line.8"),
    ]


def test_one_long_line_is_compared_token_by_token() -> None:
    a = "<div>" + " ".join(f"<b>word{n}</b>" for n in range(40)) + "</div>"
    b = a.replace("word7", "WORD7")
    [change] = text_changes(a, b) or []
    assert (change.kind, change.primary, change.shadow) == (C, "word7", "WORD7")
    assert change.path.startswith("root.token.")


def test_short_or_equal_texts_have_no_parts() -> None:
    assert text_changes("ok", "OK") is None  # one short line: one value
    assert text_changes(PAGE, PAGE) == []


@pytest.mark.parametrize(
    ("at", "expected"),
    [("root.line.3", ("line", 3, 3)), ("root.line.3-5", ("line", 3, 5)), ("root.token.9", ("token", 9, 9))],
)
def test_span(at: str, expected: tuple[str, int, int]) -> None:
    assert span(at) == expected
    assert span(None) is None and span("root.items[2]") is None


def html(text: str) -> dict[str, object]:
    return {"body": text.encode(), "content_type": "text/html; charset=utf-8"}


def test_one_noisy_line_is_noise_alone_and_the_real_changes_are_findings() -> None:
    v2 = PAGE.replace("<body>", "<body>\n<nav>Inkwell</nav>").replace("<!-- rendered in 3.1 ms -->\n", "")
    result = Comparer({"default": ServiceConfig()}).compare(
        exchange(
            path="/posts/2.html",
            primary=primary(**html(PAGE)),
            shadow=shadow(**html(v2)),
            secondary=secondary(**html(PAGE.replace("3.1", "7.4"))),
        )
    )
    assert result.noisy == {("root.line.5", C)}
    assert [(d.path, d.kind, d.noise) for d in result.diffs] == [
        ("root.line.4", IA, False),  # <nav> is new in V2: a finding
        ("root.line.5", IR, False),  # the timing line is gone on V2: removed, not merely varying
    ]
    noisy_only = Comparer({"default": ServiceConfig()}).compare(
        exchange(
            path="/posts/2.html",
            primary=primary(**html(PAGE)),
            shadow=shadow(**html(PAGE.replace("3.1", "5.0"))),
            secondary=secondary(**html(PAGE.replace("3.1", "7.4"))),
        )
    )
    assert [(d.path, d.noise) for d in noisy_only.diffs] == [("root.line.5", True)]


def test_a_line_can_be_ignored_and_a_similarity_rule_keeps_comparing_the_whole_text() -> None:
    other = PAGE.replace("3.1", "9.9")

    def paths(rules: CompareRules) -> list[str]:
        found = compare_responses(primary(**html(PAGE)), shadow(**html(other)), rules, exchange_id="x", endpoint="e")
        return [d.path for d in found]

    assert paths(CompareRules()) == ["root.line.5"]
    assert paths(CompareRules(ignore=("root.line.5",))) == []
    assert paths(CompareRules(text_similarity=(TextSimilarity(path="root", threshold=0.9),))) == []
    assert paths(CompareRules(text_similarity=(TextSimilarity(path="root", threshold=1.0),))) == ["root"]
