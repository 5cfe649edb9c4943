"""Compare two responses field by field — status, chosen headers, then the decoded body under the comparison rules.

deepdiff walks every node in Python (about 1.3 ms for a 1.2 KB order with three changed fields, over the 1 ms
budget), so the walker here skips equal subtrees with C-speed `==` (confirmed by canonical orjson bytes, because
Python holds `True == 1`) and aligns lists itself: by key when every item is an object carrying one (`id` unless the
rules say otherwise; 1 and "1" are one key), reporting `reordered`, `item_added`, `item_removed` and the changes
inside the items present on both sides; otherwise by position (difflib over canonical items). Unordered lists are
matched as multisets of canonical items (by key when they have one); deepdiff (`ignore_order`, `report_repetition`)
pairs what is left over when several items changed, which is where its similarity-based pairing earns its price
(milliseconds: see MAX_PAIRED).

What counts as equal (JSON semantics, tolerance, similarity, shapes) lives in `diffs.values`.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from deepdiff import DeepDiff

from diffs.decoding import DecodedBody, decode_body, header_value, parse_media_type
from diffs.exchange import DiffKind, FieldDiff, SideResponse
from diffs.paths import ROOT, PatternMap, PatternSet, child, concrete, fold_path, item, join
from diffs.rules import CompareRules, NumericTolerance, TextSimilarity
from diffs.text_diff import text_changes
from diffs.values import TypeName, clip, json_type, plain, same, similar, skeleton, sort_key, within_tolerance

VOLATILE_HEADERS = frozenset(
    {
        "age", "cf-ray", "connection", "content-encoding", "content-length", "date", "etag", "expires",
        "keep-alive", "last-modified", "nel", "report-to", "server", "set-cookie", "traceparent", "tracestate",
        "transfer-encoding", "via", "x-cache", "x-process-time", "x-request-id", "x-response-time", "x-runtime",
        "x-shadow-request", "x-trace-id",
    }
)  # fmt: skip
"""Differ on every response or only in transport; compared only when named in `CompareRules.headers`."""
ALL_HEADERS = "*"
"""In `CompareRules.headers`: every header except the volatile ones."""
MAX_DIFFS = 1000
"""A comparison stops collecting after this many diffs (a 10,000-item list that changed is one story, not 10,000)."""
MAX_PAIRED = 4
"""Unordered lists: up to this many unmatched items a side are paired by deepdiff (≈3 ms for 2, 17 ms for 4)."""
MAX_DEPTH = 100
"""Below this depth a differing subtree is reported as one change (keeps the walk far from the recursion limit)."""

_NO_RULES = CompareRules()


@dataclass(frozen=True, slots=True)
class CompiledRules:
    ignore: PatternSet
    unordered: PatternSet
    schema: PatternSet
    tolerance: PatternMap[NumericTolerance]
    similarity: PatternMap[TextSimilarity]
    headers: tuple[str, ...]
    all_headers: bool
    compare_status: bool
    list_key: str
    list_keys: PatternMap[str]

    def key_of(self, path: str) -> str:
        """The field that identifies the items of the list at `path` ("" for none)."""
        if self.list_keys:
            found = self.list_keys.lookup(path)
            if found is not None:
                return found
        return self.list_key


@lru_cache(maxsize=512)
def compile_rules(rules: CompareRules) -> CompiledRules:
    """Precompile a rule set's patterns once (cached per rule set; rules are frozen and hashable)."""
    headers = tuple(dict.fromkeys(h.lower() for h in rules.headers if h != ALL_HEADERS))
    return CompiledRules(
        ignore=PatternSet(rules.ignore),
        unordered=PatternSet(rules.unordered),
        schema=PatternSet(rules.schema_only),
        tolerance=PatternMap([(t.path, t) for t in rules.numeric_tolerance]),
        similarity=PatternMap([(t.path, t) for t in rules.text_similarity]),
        headers=headers,
        all_headers=ALL_HEADERS in rules.headers,
        compare_status=rules.compare_status,
        list_key=rules.list_key,
        list_keys=PatternMap([(k.path, k.key) for k in rules.list_keys]),
    )


Found = tuple[str, DiffKind, Any, Any]
Index = tuple[int, ...]
"""The list indices on one side that the `[*]` of a path stand for, outermost first."""
Located = tuple[str, DiffKind, Any, Any, str | None, str | None]
"""A `Found` and where it is on each side (`FieldDiff.primary_at`, `shadow_at`)."""
_NOWHERE: Index | None = None
KeyCounterpart = Callable[[str, Any], Any]
"""(the path template of a list item's key field, `root.items[*].id`; a primary item's key) → the key the other side
gives that record, when an id pair says so (`diffs.id_pairs.counterpart`), else None."""


class _Enough(Exception):
    pass


class _Walker:
    """Collects (path template, kind, primary value, shadow value, where on each side) for one pair of bodies."""

    __slots__ = ("counterpart", "found", "max_diffs", "rules")

    def __init__(self, rules: CompiledRules, max_diffs: int, counterpart: KeyCounterpart | None = None) -> None:
        self.rules = rules
        self.max_diffs = max_diffs
        self.counterpart = counterpart
        self.found: list[Located] = []

    def add(self, path: str, kind: DiffKind, a: Any, b: Any, ia: Index | None = (), ib: Index | None = ()) -> None:
        pa = concrete(path, ia) if ia else None
        pb = concrete(path, ib) if ib else None
        self.found.append((path, kind, a, b, pa, pb))
        if len(self.found) >= self.max_diffs:
            raise _Enough

    def place(self, path: str, kind: DiffKind, a: Any, b: Any, at_a: str | None, at_b: str | None) -> None:
        """`add` with the places already spelled out (text lines)."""
        self.found.append((path, kind, a, b, at_a, at_b))
        if len(self.found) >= self.max_diffs:
            raise _Enough

    def node(
        self, a: Any, b: Any, path: str, depth: int = 0, schema: bool = False, ia: Index = (), ib: Index = ()
    ) -> None:
        if same(a, b) or self.rules.ignore.matches(path):
            return
        if not schema and self.rules.schema.matches(path):
            a, b, schema = skeleton(a), skeleton(b), True
            if same(a, b):
                return
        ta, tb = type(a), type(b)
        if depth >= MAX_DEPTH:
            self.add(path, DiffKind.CHANGED if ta is tb else DiffKind.TYPE_CHANGED, a, b, ia, ib)
        elif ta is dict and tb is dict:
            self.objects(a, b, path, depth, schema, ia, ib)
        elif ta is list and tb is list:
            self.arrays(a, b, path, depth, schema, ia, ib)
        else:
            self.leaf(a, b, path, schema, ia, ib)

    def objects(
        self, a: dict[str, Any], b: dict[str, Any], path: str, depth: int, schema: bool, ia: Index, ib: Index
    ) -> None:
        for key, value in a.items():
            if key in b:
                self.node(value, b[key], child(path, key), depth + 1, schema, ia, ib)
            elif not self.rules.ignore.matches(sub := child(path, key)):
                self.add(sub, DiffKind.REMOVED, value, None, ia, _NOWHERE)
        for key, value in b.items():
            if key not in a and not self.rules.ignore.matches(sub := child(path, key)):
                self.add(sub, DiffKind.ADDED, None, value, _NOWHERE, ib)

    def arrays(self, a: list[Any], b: list[Any], path: str, depth: int, schema: bool, ia: Index, ib: Index) -> None:
        if schema and (not a or not b):
            return  # an empty array has every element shape
        unordered = not schema and self.rules.unordered.matches(path)
        if not schema and self.keyed(a, b, path, depth, ia, ib, ordered=not unordered):
            return
        if unordered:
            self.multiset(a, b, path, ia, ib)
            return
        at = item(path)
        if len(a) == len(b):
            differing = [i for i in range(len(a)) if not same(a[i], b[i])]
            # A permutation moves at least two items; one reordered diff says more than n changed items.
            if len(differing) > 1 and not schema:
                ka, kb = self.keys([a[i] for i in differing], at), self.keys([b[i] for i in differing], at)
                if ka != kb and sorted(ka) == sorted(kb):
                    self.add(path, DiffKind.REORDERED, a, b, ia, ib)
                    return
            for i in differing:
                self.node(a[i], b[i], at, depth + 1, schema, (*ia, i), (*ib, i))
            return
        matcher = difflib.SequenceMatcher(None, self.keys(a, at), self.keys(b, at), autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            paired = min(i2 - i1, j2 - j1)
            for k in range(paired):
                self.node(a[i1 + k], b[j1 + k], at, depth + 1, schema, (*ia, i1 + k), (*ib, j1 + k))
            for i in range(i1 + paired, i2):
                self.add(at, DiffKind.ITEM_REMOVED, a[i], None, (*ia, i), _NOWHERE)
            for j in range(j1 + paired, j2):
                self.add(at, DiffKind.ITEM_ADDED, None, b[j], _NOWHERE, (*ib, j))

    def keyed(self, a: list[Any], b: list[Any], path: str, depth: int, ia: Index, ib: Index, *, ordered: bool) -> bool:
        """Align two lists of objects by their key field; False (nothing reported) when they cannot be."""
        key = self.rules.key_of(path)
        if not key:
            return False
        ka, kb = _item_keys(a, key), _item_keys(b, key)
        if ka is None or kb is None:
            return False
        if self.counterpart is not None:
            ka = self.paired_keys(a, ka, key, child(item(path), key))
        where_b = {k: j for j, k in enumerate(kb)}
        where_a = {k: i for i, k in enumerate(ka)}
        both = [k for k in ka if k in where_b]
        if ordered and both != [k for k in kb if k in where_a]:
            order_a = [a[where_a[k]][key] for k in both]
            order_b = [b[where_b[k]][key] for k in kb if k in where_a]
            self.add(path, DiffKind.REORDERED, order_a, order_b, ia, ib)
        at = item(path)
        for k in both:
            i, j = where_a[k], where_b[k]
            self.node(a[i], b[j], at, depth + 1, False, (*ia, i), (*ib, j))
        for i, k in enumerate(ka):
            if k not in where_b:
                self.add(at, DiffKind.ITEM_REMOVED, a[i], None, (*ia, i), _NOWHERE)
        for j, k in enumerate(kb):
            if k not in where_a:
                self.add(at, DiffKind.ITEM_ADDED, None, b[j], _NOWHERE, (*ib, j))
        return True

    def paired_keys(self, items: list[Any], keys: list[str], key: str, field: str) -> list[str]:
        """The primary's keys as the other side knows those records: V1's order 3, paired with V2's order 4, aligns
        with V2's 4 (whatever record V2's 3 is). Keys without a pair stay as they are; pairs that would make two
        items one key are not used."""
        assert self.counterpart is not None
        mapped = []
        for value, text in zip(items, keys, strict=True):
            other = _key_text(self.counterpart(field, value[key]))
            mapped.append(text if other is None else other)
        return mapped if len(set(mapped)) == len(mapped) else keys

    def leaf(self, a: Any, b: Any, path: str, schema: bool = False, ia: Index = (), ib: Index = ()) -> None:
        ja, jb = json_type(a), json_type(b)
        if schema or type(a) is TypeName:
            kind = DiffKind.TYPE_CHANGED
            a, b = plain(a), plain(b)
        elif ja == jb:
            tolerance = self.rules.tolerance.lookup(path)
            if tolerance is not None and within_tolerance(a, b, tolerance):
                return
            similarity = self.rules.similarity.lookup(path) if ja == jb == "string" else None
            if similarity is not None and similar(a, b, similarity.threshold):
                return
            kind = DiffKind.CHANGED
        else:
            kind = DiffKind.TYPE_CHANGED
        self.add(path, kind, a, b, ia, ib)

    def keys(self, values: list[Any], path: str) -> list[bytes]:
        """Canonical bytes per item, after the rules (ignored fields dropped, schema-only reduced to shapes)."""
        if self.rules.ignore or self.rules.schema:
            values = [self.clean(v, path) for v in values]
        return [sort_key(v) for v in values]

    def clean(self, value: Any, path: str) -> Any:
        """A copy without ignored fields and with schema-only subtrees as shapes; integral floats become ints."""
        if self.rules.schema.matches(path):
            return skeleton(value)
        kind = type(value)
        if kind is dict:
            paths = ((k, v, child(path, k)) for k, v in value.items())
            return {k: self.clean(v, p) for k, v, p in paths if not self.rules.ignore.matches(p)}
        if kind is list:
            at = item(path)
            return [self.clean(v, at) for v in value]
        if kind is float and value.is_integer():
            return int(value)  # deepdiff hashes 5 and 5.0 apart; JSON does not tell them apart
        return value

    def multiset(self, a: list[Any], b: list[Any], path: str, ia: Index = (), ib: Index = ()) -> None:
        ca, cb = self.clean(a, path), self.clean(b, path)
        ka, kb = [sort_key(v) for v in ca], [sort_key(v) for v in cb]
        only_a, only_b = _unmatched(ka, Counter(kb)), _unmatched(kb, Counter(ka))
        at = item(path)
        if len(only_a) == len(only_b) == 1:  # the usual case, one item changed: no pairing to do
            i, j = only_a[0], only_b[0]
            self.node(ca[i], cb[j], at, 1, False, (*ia, i), (*ib, j))
            return
        if not only_a or not only_b or max(len(only_a), len(only_b)) > MAX_PAIRED:
            # Nothing to pair with, or too many to pair at deepdiff's price: whole items came and went.
            for i in only_a:
                self.add(at, DiffKind.ITEM_REMOVED, ca[i], None, (*ia, i), _NOWHERE)
            for j in only_b:
                self.add(at, DiffKind.ITEM_ADDED, None, cb[j], _NOWHERE, (*ib, j))
            return
        # deepdiff pairs the leftovers by similarity and diffs each pair field by field. Under ignore_order it hashes
        # items order-insensitively, so lists nested in these items are compared as unordered too.
        tree = DeepDiff(
            [ca[i] for i in only_a],
            [cb[j] for j in only_b],
            ignore_order=True,
            report_repetition=True,
            threshold_to_diff_deeper=0,
            cutoff_intersection_for_pairs=1,  # the leftovers share nothing by construction; pair them anyway
            view="tree",
        )
        for report, levels in tree.items():
            for level in levels:
                sub = join(path, fold_path(level.path(output_format="list")))
                if self.rules.ignore.covers(sub):
                    continue
                item_level = report.startswith("iterable_item")
                if report.endswith("_added"):
                    self.add(sub, DiffKind.ITEM_ADDED if item_level else DiffKind.ADDED, None, level.t2, _NOWHERE)
                elif report.endswith("_removed"):
                    kind = DiffKind.ITEM_REMOVED if item_level else DiffKind.REMOVED
                    self.add(sub, kind, level.t1, None, ia=_NOWHERE, ib=_NOWHERE)
                elif report == "repetition_change":
                    counts = level.additional["repetition"]
                    grew = counts["new_repeat"] > counts["old_repeat"]
                    kind = DiffKind.ITEM_ADDED if grew else DiffKind.ITEM_REMOVED
                    before = {"item": level.t1, "count": counts["old_repeat"]}
                    self.add(sub, kind, before, {"item": level.t2, "count": counts["new_repeat"]})
                else:
                    self.leaf(level.t1, level.t2, sub, self.rules.schema.covers(sub))


def _key_text(value: Any) -> str | None:
    """An item key, type-tolerant: 1, 1.0 and "1" are one key; other values (objects, booleans) cannot key."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is int:
        return str(value)
    if kind is float and value.is_integer():
        return str(int(value))
    return None


def _item_keys(values: list[Any], key: str) -> list[str] | None:
    """Each item's key, or None when not every item is an object with a distinct, scalar key."""
    keys = []
    for value in values:
        if type(value) is not dict:
            return None
        text = _key_text(value.get(key))
        if text is None:
            return None
        keys.append(text)
    return keys if len(set(keys)) == len(keys) else None


def _unmatched(keys: list[bytes], other: Counter[bytes]) -> list[int]:
    """Indices of the keys without a counterpart in `other` (the other side's keys as a multiset)."""
    left = []
    for index, key in enumerate(keys):
        if other[key] > 0:
            other[key] -= 1
        else:
            left.append(index)
    return left


def _content_type_key(value: str | None) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    # application/json and application/json; charset=utf-8 are the same: UTF-8 is JSON's only encoding (RFC 8259)
    # and the practical default for text; any other charset, or any other parameter, is a real difference.
    if value is None:
        return None
    media, params = parse_media_type(value)
    if params.get("charset") in ("utf-8", "utf8"):
        del params["charset"]
    return media, tuple(sorted(params.items()))


def _header_names(primary: SideResponse, shadow: SideResponse, rules: CompiledRules) -> Iterator[str]:
    yield from rules.headers
    if rules.all_headers:
        names = dict.fromkeys(name for name, _ in primary.headers + shadow.headers)
        yield from (n for n in names if n not in VOLATILE_HEADERS and n not in rules.headers)


def compare_headers(primary: SideResponse, shadow: SideResponse, rules: CompiledRules) -> Iterator[Found]:
    for name in _header_names(primary, shadow, rules):
        a, b = header_value(primary.headers, name), header_value(shadow.headers, name)
        if a == b:
            continue  # the usual case, settled before parsing content types
        if name == "content-type" and _content_type_key(a) == _content_type_key(b):
            continue
        if a != b and (a is None or b is None or a.strip() != b.strip()):
            yield f"header.{name}", DiffKind.HEADER, a, b


def _shown(body: DecodedBody) -> Any:
    return f"sha256:{body.value}" if body.kind == "binary" else body.value


def compare_bodies(primary: SideResponse, shadow: SideResponse, walker: _Walker) -> None:
    if primary.body == shadow.body and header_value(primary.headers, "content-encoding") == header_value(
        shadow.headers, "content-encoding"
    ):
        return  # the fast path: most mirrored responses are byte-identical
    if walker.rules.ignore.matches(ROOT):
        return
    a, b = decode_body(primary.body, primary.headers), decode_body(shadow.body, shadow.headers)
    if a.kind == b.kind:
        if a.kind == "binary":
            if a.value != b.value:
                walker.add(ROOT, DiffKind.CHANGED, _shown(a), _shown(b))
        elif a.kind == "text" and walker.rules.similarity.lookup(ROOT) is None:
            compare_text(a.value, b.value, walker)
        elif a.kind != "empty":
            walker.node(a.value, b.value, ROOT)
    elif a.kind == "empty":
        walker.add(ROOT, DiffKind.ADDED, None, _shown(b))
    elif b.kind == "empty":
        walker.add(ROOT, DiffKind.REMOVED, _shown(a), None)
    else:
        walker.add(ROOT, DiffKind.TYPE_CHANGED, _shown(a), _shown(b))


def compare_text(a: str, b: str, walker: _Walker) -> None:
    """Text in parts (`diffs.text_diff`): one change per differing block of lines, each its own path for noise."""
    changes = text_changes(a, b)
    if changes is None:
        walker.leaf(a, b, ROOT)
        return
    for change in changes:
        if not walker.rules.ignore.matches(change.path):
            walker.place(change.path, change.kind, change.primary, change.shadow, change.primary_at, change.shadow_at)


def _field_diffs(found: Iterable[Located], exchange_id: str, endpoint: str, value_limit: int) -> list[FieldDiff]:
    limit = value_limit
    return [
        FieldDiff(exchange_id, endpoint, path, kind, clip(a, limit), clip(b, limit), False, at_a, at_b)
        for path, kind, a, b, at_a, at_b in found
    ]


def compare_responses(
    primary: SideResponse,
    shadow: SideResponse,
    rules: CompareRules,
    *,
    exchange_id: str,
    endpoint: str,
    value_limit: int = 1024,
    max_diffs: int = MAX_DIFFS,
    counterpart: KeyCounterpart | None = None,
) -> list[FieldDiff]:
    """Every difference between two responses under the rules; paths are templates, values clipped to value_limit.

    `counterpart`: lists aligned by key align a primary item with the item the other side has for that record.
    """
    compiled = compile_rules(rules)
    walker = _Walker(compiled, max_diffs, counterpart)
    try:
        if compiled.compare_status and primary.status != shadow.status:
            walker.add("status", DiffKind.STATUS, primary.status, shadow.status)
        for found in compare_headers(primary, shadow, compiled):
            walker.add(*found)
        compare_bodies(primary, shadow, walker)
    except _Enough:
        pass
    except RecursionError:  # a body nested past what the decoder allowed; one diff says so instead of a crash
        walker.found.append((ROOT, DiffKind.CHANGED, "<nested too deeply to compare>", None, None, None))
    return _field_diffs(walker.found, exchange_id, endpoint, value_limit)


def compare_values(
    primary: Any, shadow: Any, rules: CompareRules | None = None, *, max_diffs: int = MAX_DIFFS
) -> list[Found]:
    """(path, kind, primary value, shadow value) for two decoded JSON values: the body comparison on its own."""
    walker = _Walker(compile_rules(rules or _NO_RULES), max_diffs)
    try:
        walker.node(primary, shadow, ROOT)
    except _Enough:
        pass
    return [(path, kind, a, b) for path, kind, a, b, _, _ in walker.found]


def distinct_paths(diffs: Iterable[FieldDiff]) -> frozenset[str]:
    """The path templates among diffs: what per-endpoint counts are keyed by (once per exchange, not per item)."""
    return frozenset(d.path for d in diffs)
