"""The id pairs the analysis process knows, and what they change: a shadow id generated for the primary's is no finding.

The pairs come from the data plane in two ways: the ones its correlator learns are forwarded over the channel (ahead
of the exchange that shows them), and the ones already persisted are read from the store at start-up and refreshed
(other workers' creates). Only this module reads them; the data plane's correlation model stays its own.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

import orjson

from diffs.exchange import Comparison, DiffKind, FieldDiff, Outcome
from diffs.storage import Store
from proxy.dataplane.correlation import IdFields


def _text(stored: str) -> str:
    """A persisted id (JSON text, so that types survive) as the text it is compared by."""
    try:
        value = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return stored
    return str(value)


class IdPairs:
    """Primary id → shadow id per service (text on both sides), an LRU bounded by `capacity` per service."""

    def __init__(self, id_fields: Mapping[str, Sequence[str]], capacity: int) -> None:
        self.capacity = capacity
        self._fields = {service: IdFields(patterns) for service, patterns in id_fields.items()}
        self._maps: dict[str, OrderedDict[str, str]] = {}

    def learn(self, service: str, pairs: Iterable[tuple[object, object]]) -> None:
        mapping = self._maps.setdefault(service, OrderedDict())
        for primary_id, shadow_id in pairs:
            key = str(primary_id)
            mapping[key] = str(shadow_id)
            mapping.move_to_end(key)
        while len(mapping) > self.capacity:
            mapping.popitem(last=False)

    def lookup(self, service: str, primary_id: object) -> str | None:
        mapping = self._maps.get(service)
        return None if mapping is None else mapping.get(str(primary_id))

    async def load(self, store: Store, *, newest: int | None = None) -> int:
        """Learn the persisted pairs of every service (the newest `newest`, or up to `capacity`)."""
        loaded = 0
        for service in self._fields:
            rows = await store.load_correlations(service, limit=newest or self.capacity)
            self.learn(service, [(_text(p), _text(s)) for p, s in rows])
            loaded += len(rows)
        return loaded

    def discount(self, comparison: Comparison) -> Comparison:
        """Diffs where the shadow shows the id it generated for the primary's become noise (order 7 is order 1007
        there); an exchange left with no finding is a match."""
        if comparison.outcome is not Outcome.DIFF:
            return comparison
        service = comparison.exchange.service
        fields = self._fields.get(service)
        if not fields or not self._maps.get(service):
            return comparison
        diffs: list[FieldDiff] = []
        for diff in comparison.diffs:
            if not diff.noise and diff.kind is DiffKind.CHANGED and self._is_pair(service, fields, diff):
                diff = dataclasses.replace(diff, noise=True)
            diffs.append(diff)
        outcome = Outcome.DIFF if any(not d.noise for d in diffs) else Outcome.MATCH
        return dataclasses.replace(comparison, diffs=tuple(diffs), outcome=outcome)

    def _is_pair(self, service: str, fields: IdFields, diff: FieldDiff) -> bool:
        key = diff.path.rsplit(".", 1)[-1].removesuffix("[*]")
        primary = diff.primary_value
        if key not in fields or isinstance(primary, bool) or not isinstance(primary, int | str):
            return False
        known = self.lookup(service, primary)
        return known is not None and known == str(diff.shadow_value)
