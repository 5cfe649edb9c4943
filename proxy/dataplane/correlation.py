"""Id correlation in the data plane: pairs learned from mirrored creates, applied where their resource is named.

When a mirrored create (`POST /posts`) succeeds on both sides with different generated ids, the pair belongs to the
resource it created (`/posts`, whose items are `/posts/{id}`), and to sub-resources the response holds one level
down (`/orders/{}/items`). A later request to a side has the primary's id replaced only where that resource is
named: its position in the path, query parameters and JSON body fields that refer to it (`id` in a request about
it, `post_id` / `postId` anywhere, `IdNaming`). A value that merely equals a known id elsewhere is left alone.

Typed: a JSON body gets the side's id with the type that side gave it. Validated: only id-shaped values
(`[A-Za-z0-9._~:@-]{1,128}`) are written into a path or query; anything else is counted and either left as it was
or, with `strict` (the mirror's way), refused with `UnsafeId` so that request is not sent to that side at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

import orjson
import structlog

from diffs.id_pairs import IdPair, IdPairs, IdValue, id_text
from diffs.resources import IdNaming, Resource, Target, by_name, target
from diffs.templating import EndpointTemplater

log = structlog.get_logger("shadowdiff.correlation")
SAFE_ID = re.compile(r"[A-Za-z0-9._~:@-]{1,128}")
"""What may be written into a request line: characters that need no escaping and change no meaning there."""
Created = dict[str, tuple[Resource, IdValue]]
"""JSON location in a create's response (`id`, `data.id`, `items[0].id`) → the resource and id found there."""


class UnsafeId(ValueError):
    """A paired id that is not id-shaped, so it cannot be written into a request line (`IdCorrelator.rewrite`)."""


@dataclass(frozen=True, slots=True)
class ServiceIds:
    """How one service's requests name resources: its field naming and its endpoint templates (cached)."""

    naming: IdNaming
    templater: EndpointTemplater

    @classmethod
    def of(cls, naming: IdNaming, patterns: Sequence[str] = ()) -> ServiceIds:
        return cls(naming, EndpointTemplater(patterns, cache_size=2048))

    def target(self, method: str, raw_path: str, known: Sequence[Resource] | Any = ()) -> Target:
        """What a raw (percent-encoded) path addresses, its ids where templates and known collections put them."""
        segments = _segments(raw_path)
        template = _segments(self.templater.template(method, raw_path).partition(" ")[2])
        return target(segments, template if len(template) == len(segments) else segments, known)


def _segments(path: str) -> list[str]:
    stripped = path.split("?", 1)[0].strip("/")
    return stripped.split("/") if stripped else []


def _own(obj: dict[str, Any], resource: Resource, naming: IdNaming, prefix: str, found: Created) -> bool:
    hit = False
    for name in naming.own_fields(resource):
        value = obj.get(name)
        if isinstance(value, int | str) and id_text(value) is not None:
            found[prefix + name] = (resource, value)
            hit = True
    return hit


def created_ids(document: Any, resource: Resource, naming: IdNaming) -> Created:
    """The ids a create's (decoded JSON) response holds: the created record's own (at the top, or in a one-object
    envelope such as `{"data": {...}}`), and those of records created with it one level down (`items[0].id`)."""
    if not isinstance(document, dict):
        return {}
    found: Created = {}
    record, prefix = document, ""
    if not _own(document, resource, naming, "", found):
        envelopes = [(k, v) for k, v in document.items() if isinstance(v, dict)]
        if len(envelopes) != 1 or not _own(envelopes[0][1], resource, naming, envelopes[0][0] + ".", found):
            return found
        record, prefix = envelopes[0][1], envelopes[0][0] + "."
    for name, value in record.items():
        sub = resource.below(name)
        if isinstance(value, dict):
            _own(value, sub, naming, f"{prefix}{name}.", found)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    _own(item, sub, naming, f"{prefix}{name}[{index}].", found)
    return found


def _differs(a: IdValue, b: IdValue) -> bool:
    return type(a) is not type(b) or a != b


class IdCorrelator:
    """The pairs of every service (`IdPairs`), learned from creates and applied to mirrored requests."""

    def __init__(self, capacity: int, *, on_pairs: Callable[[list[IdPair]], None] | None = None) -> None:
        self.pairs = IdPairs(capacity)
        self.on_pairs = on_pairs
        """Called with each create's new pairs, so they can be persisted and shared."""
        self.on_settled: Callable[[str, str, Created, list[IdPair]], None] | None = None
        """Called when another side answered a create (with its pairs, maybe none): (service, from side, the
        create's ids, pairs), so processes waiting for that create elsewhere stop waiting."""
        self.unsafe = 0
        """Ids not written into a request line because they were not id-shaped."""

    def active(self, service: str) -> bool:
        return self.pairs.active(service)

    def resources(self, service: str) -> list[Resource]:
        return list(self.pairs.resources(service))

    def announce(self, service: str, created: Created) -> None:
        """The resources a create showed: their id positions are known from now on, even before any pair."""
        for resource, _ in created.values():
            self.pairs.add_resource(service, resource)

    def learn(self, service: str, primary: Created, from_side: str, other: Created, to_side: str) -> list[IdPair]:
        """Pairs from the ids the primary's create answered with and those another side answered at the same places;
        ids that are the same on both sides (value and type) need no pair."""
        pairs = [
            IdPair(service, resource.collection, from_side, value, to_side, found[1])
            for location, (resource, value) in primary.items()
            if (found := other.get(location)) is not None and _differs(value, found[1])
        ]
        if pairs:
            self.pairs.remember(pairs)
            if self.on_pairs is not None:
                try:
                    self.on_pairs(pairs)
                except Exception:  # persisting is best effort: the pairs are learnt here either way
                    log.exception("on_pairs hook failed", service=service)
        return pairs

    def settled(self, service: str, from_side: str, created: Created, pairs: list[IdPair]) -> None:
        """Another side answered a create (paired, or with the same ids, or failed)."""
        if self.on_settled is not None and created:
            try:
                self.on_settled(service, from_side, created, pairs)
            except Exception:
                log.exception("on_settled hook failed", service=service)

    def rewrite(
        self,
        service: str,
        from_side: str,
        to_side: str,
        raw_path: str,
        query: str,
        body: bytes,
        *,
        request: Target,
        naming: IdNaming,
        json_body: bool,
        strict: bool = False,
        misses: list[tuple[Resource, object]] | None = None,
    ) -> tuple[str, str, bytes]:
        """The request as `to_side` must get it: `from_side`'s ids replaced where their resource is named.

        A paired id that may not go into the path or query is counted (`unsafe`) and left as it was, or with
        `strict` raises UnsafeId: the request as it was would name another record of `to_side`, or none.
        `misses`, when given, collects the (resource, value) named where no pair is known: what a process that did
        not see the create may have to ask the other processes about (`proxy.dataplane.shared_ids`).
        """
        pairs = self.pairs

        def other(resource: Resource, value: object) -> IdValue | None:
            found = pairs.lookup(service, resource.collection, from_side, to_side, value)
            if found is None and misses is not None:
                misses.append((resource, value))
            return found

        if request.ids:
            parts = raw_path.split("/")
            changed = False
            for pid in request.ids:
                found = other(pid.resource, unquote(pid.value))
                if found is not None and self._safe(found, strict):
                    parts[pid.index + 1] = f"{found}{pid.suffix}"
                    changed = True
            if changed:
                raw_path = "/".join(parts)
        known = pairs.resources(service)
        own = (request.collection,)
        if query:
            params = [part.partition("=") for part in query.split("&")]
            hit = False
            for index, (name, sep, value) in enumerate(params):
                field = unquote_plus(name)
                for resource in own if field == naming.key else naming.named_by(field, known):
                    found = other(resource, unquote_plus(value))
                    if found is not None and self._safe(found, strict):
                        params[index] = (name, sep, str(found))
                        hit = True
                        break
            if hit:
                query = "&".join(name + sep + value for name, sep, value in params)
        if json_body and body:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                document = None
            if isinstance(document, dict) and self._rewrite_body(document, own, naming, known, other):
                body = orjson.dumps(document)
        return raw_path, query, body

    def _rewrite_body(
        self,
        document: dict[str, Any],
        own: tuple[Resource, ...],
        naming: IdNaming,
        known: Any,
        other: Callable[[Resource, object], IdValue | None],
    ) -> bool:
        """Top-level fields, and objects one level down (alone or in a list): typed, as the other side gave them."""
        changed = False

        def fields(obj: dict[str, Any], mine: tuple[Resource, ...]) -> None:
            nonlocal changed
            for name, value in obj.items():
                if id_text(value) is None:
                    continue
                for resource in mine if name == naming.key else naming.named_by(name, known):
                    found = other(resource, value)
                    if found is not None:
                        obj[name] = found
                        changed = True
                        break

        fields(document, own)
        for name, value in document.items():
            nested = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
            mine = by_name(name, known)
            for item in nested:
                if isinstance(item, dict):
                    fields(item, mine)
        return changed

    def _safe(self, value: IdValue, strict: bool) -> bool:
        if SAFE_ID.fullmatch(str(value)):
            return True
        self.unsafe += 1
        if strict:
            raise UnsafeId(f"paired id {str(value)[:60]!r} cannot go into a request line")
        return False
