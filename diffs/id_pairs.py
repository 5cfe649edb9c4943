"""Id pairs: the id one side generated and the id another side generated for the same create, per resource.

`IdPair` is the unit that is learned (from a mirrored create), stored and shared between processes; `IdPairs` is the
bounded in-memory map every process looks pairs up in; `correlated` is the one decision the analysis makes with it:
is this differing value pair the same record's id on both sides?

Sides are upstreams, not roles: "v1", "v2" and "secondary" (which has a database of its own), so pairs survive a
promotion: after one, V2's ids are translated back to V1's through the same pairs.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from diffs.exchange import DiffKind, FieldDiff
from diffs.resources import IdNaming, Resource, by_name, endpoint_target

IdValue = int | str
SIDES = ("v1", "v2", "secondary")
_KEY = re.compile(r'\.([A-Za-z0-9_$@-]+)$|\["((?:[^"\\]|\\.)*)"\]$')


def id_text(value: object) -> str | None:
    """How an id is looked up, whatever its JSON type (7 and "7" are one id); None for what cannot be an id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 256:
        return value
    return None


@dataclass(frozen=True, slots=True)
class IdPair:
    """`from_id` on side `from_side` is `to_id` on side `to_side`, for one record of `resource` in `service`."""

    service: str
    resource: str
    """The collection template of the resource that created the record: `/posts`, `/orders/{}/items`."""
    from_side: str
    from_id: IdValue
    to_side: str
    to_id: IdValue
    """Typed as `to_side` gave it: an int stays an int, so a rewritten JSON body keeps each side's own types."""


_Map = OrderedDict[str, IdValue]


class IdPairs:
    """Pairs by (service, resource, from side, to side), each map a bounded LRU; both directions are kept."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._maps: dict[tuple[str, str, str, str], _Map] = {}
        self._resources: dict[str, dict[str, Resource]] = {}

    def __len__(self) -> int:
        return sum(len(m) for m in self._maps.values())

    def active(self, service: str) -> bool:
        """Whether any pair of this service is known (a cheap check before parsing anything)."""
        return service in self._resources

    def resources(self, service: str) -> Collection[Resource]:
        """The resources of a service that pairs were learned for (or that `add_resource` announced)."""
        return self._resources.get(service, {}).values()

    def add_resource(self, service: str, resource: Resource) -> None:
        self._resources.setdefault(service, {}).setdefault(resource.collection, resource)

    def remember(self, pairs: Iterable[IdPair]) -> None:
        """Learn pairs, in both directions (also how stored pairs are loaded back)."""
        for pair in pairs:
            self.add_resource(pair.service, Resource(pair.resource))
            self._put((pair.service, pair.resource, pair.from_side, pair.to_side), pair.from_id, pair.to_id)
            self._put((pair.service, pair.resource, pair.to_side, pair.from_side), pair.to_id, pair.from_id)

    def _put(self, key: tuple[str, str, str, str], value: IdValue, other: IdValue) -> None:
        text = id_text(value)
        if text is None:
            return
        mapping = self._maps.setdefault(key, OrderedDict())
        mapping[text] = other
        mapping.move_to_end(text)
        while len(mapping) > self.capacity:
            mapping.popitem(last=False)

    def lookup(self, service: str, resource: str, from_side: str, to_side: str, value: object) -> IdValue | None:
        """`value` (an id on `from_side`) as `to_side` knows that record, or None when no pair says so.

        Through the third side when there is no direct pair: a record created while V1 was primary is known to the
        secondary through V1 after a promotion.
        """
        text = id_text(value)
        if text is None or from_side == to_side:
            return None
        found = self._get((service, resource, from_side, to_side), text)
        if found is not None:
            return found
        for middle in SIDES:
            if middle in (from_side, to_side):
                continue
            step = self._get((service, resource, from_side, middle), text)
            if step is not None:
                step_text = id_text(step)
                if step_text is not None:
                    found = self._get((service, resource, middle, to_side), step_text)
                    if found is not None:
                        return found
        return None

    def _get(self, key: tuple[str, str, str, str], text: str) -> IdValue | None:
        mapping = self._maps.get(key)
        if mapping is None:
            return None
        found = mapping.get(text)
        if found is not None:
            mapping.move_to_end(text)
        return found


def _keys(path: str) -> tuple[str | None, str | None]:
    """The last key of a diff path and the key of the object or list holding it (`root.items[*].id` → id, items)."""
    match = _KEY.search(path)
    if match is None:
        return None, None
    name = match.group(1) or match.group(2)
    rest = path[: match.start()]
    while rest.endswith("[*]"):
        rest = rest[:-3]
    parent = _KEY.search(rest)
    return name, (parent.group(1) or parent.group(2)) if parent else None


def named_resources(path: str, endpoint: str, naming: IdNaming, known: Collection[Resource]) -> tuple[Resource, ...]:
    """The resources whose id a body field holds: a reference field names one by its name (`user_id` → `/users`);
    the own `id` field belongs to the resource its container names (`comments[*].id`), else the endpoint's own."""
    name, parent = _keys(path)
    if name is None:
        return ()
    if name != naming.key:
        return naming.named_by(name, known)
    return by_name(parent, known) or (endpoint_target(endpoint, known).collection,)


def counterpart(
    path: str,
    value: object,
    *,
    service: str,
    endpoint: str,
    from_side: str,
    to_side: str,
    pairs: IdPairs,
    naming: IdNaming,
) -> IdValue | None:
    """The id `to_side` gave the record that `value`, at body field `path` on `from_side`, names: a pair of the
    resource this field names says so (`root.items[*].id` of `GET /orders` → `/orders`); None when none does."""
    if id_text(value) is None or not pairs.active(service):
        return None
    for resource in named_resources(path, endpoint, naming, pairs.resources(service)):
        known = pairs.lookup(service, resource.collection, from_side, to_side, value)
        if known is not None:
            return known
    return None


def correlated(
    diff: FieldDiff, *, service: str, primary_side: str, shadow_side: str, pairs: IdPairs, naming: IdNaming
) -> bool:
    """Whether a changed value is one record's id on both sides: a pair of the resource this field names says that
    the primary's value is the shadow's. A value that merely equals some known id, elsewhere, is not."""
    if diff.kind is not DiffKind.CHANGED or not pairs.active(service):
        return False
    primary, shadow = diff.primary_value, diff.shadow_value
    if id_text(primary) is None or id_text(shadow) is None:
        return False
    for resource in named_resources(diff.path, diff.endpoint, naming, pairs.resources(service)):
        known = pairs.lookup(service, resource.collection, primary_side, shadow_side, primary)
        if known is not None and type(known) is type(shadow) and known == shadow:
            return True
    return False
