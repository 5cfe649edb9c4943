"""Id correlation: primary id → shadow id, learned from mirrored creates and applied to later shadow requests.

When a mirrored POST succeeds on both sides with different generated ids, the pair is remembered per service
(and per mirrored role: the secondary has a database of its own too). Later requests to that side have the
primary's ids replaced — path segments, query values under id fields, JSON body values under id fields — so
`GET /api/orders/7` reaches the shadow's own order 1007.

A create is *pending* from the moment the primary answered (its ids are known: the client may use them at
once) until the shadow answered. A request naming a pending id waits for it, up to `wait_seconds`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from diffs.exchange import Role

IdValue = int | str
Pairs = Sequence[tuple[IdValue, IdValue]]
IdMap = dict[str, IdValue]
"""JSON location ("id", "order.id", "items[0].id") → id value."""
_Key = tuple[str, Role]
_MAX_ID_LENGTH = 128
log = structlog.get_logger("shadowdiff.correlation")


class IdFields:
    """Which JSON field names hold ids: exact names and fnmatch patterns such as "*_id"."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if not any(c in p for c in "*?["))
        self._globs = tuple(p for p in self.patterns if p not in self._exact)
        self._memo: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self._exact:
            return True
        hit = self._memo.get(name)
        if hit is None:
            hit = any(fnmatch.fnmatchcase(name, glob) for glob in self._globs)
            if len(self._memo) < 4096:  # field names come from bodies: keep the memo bounded
                self._memo[name] = hit
        return hit


def _is_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH)


def _objects(document: object) -> Iterable[tuple[str, dict[str, Any]]]:
    """The top-level object, objects nested one level in it, and objects in its top-level lists."""
    if not isinstance(document, dict):
        return
    yield "", document
    for name, value in document.items():
        if isinstance(value, dict):
            yield f"{name}.", value
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    yield f"{name}[{index}].", item


def extract_ids(body: bytes, fields: IdFields) -> IdMap:
    """The ids in a JSON body, by location; empty when the body is not a JSON object."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return {
        prefix + name: value
        for prefix, obj in _objects(document)
        for name, value in obj.items()
        if name in fields and _is_id(value)
    }


@dataclass(slots=True)
class PendingCreate:
    """A create the primary has answered and a mirrored side has not yet."""

    service: str
    role: Role
    primary: IdMap
    event: asyncio.Event = field(default_factory=asyncio.Event)


class IdCorrelator:
    """A bounded LRU of primary id → mirrored-side id per (service, role), and the creates still pending."""

    def __init__(
        self,
        capacity: int,
        wait_seconds: float,
        *,
        on_pairs: Callable[[str, Pairs], None] | None = None,
    ) -> None:
        self.capacity = capacity
        self.wait_seconds = wait_seconds
        self.on_pairs = on_pairs
        """Called with each create's new shadow pairs, so the control plane can persist them."""
        self._maps: dict[_Key, OrderedDict[str, IdValue]] = {}
        self._pending: dict[_Key, dict[str, PendingCreate]] = {}
        self._fields: dict[tuple[str, ...], IdFields] = {}
        self.waits = 0
        self.wait_timeouts = 0

    def fields(self, patterns: tuple[str, ...]) -> IdFields:
        """Compiled id-field patterns, one per distinct configuration (cached)."""
        compiled = self._fields.get(patterns)
        if compiled is None:
            compiled = self._fields[patterns] = IdFields(patterns)
        return compiled

    def active(self, service: str, role: Role = Role.SHADOW) -> bool:
        """Whether requests to this side may need rewriting (a cheap check for the hot path)."""
        key = (service, role)
        return bool(self._maps.get(key)) or bool(self._pending.get(key))

    def lookup(self, service: str, primary_id: IdValue, role: Role = Role.SHADOW) -> IdValue | None:
        mapping = self._maps.get((service, role))
        return None if mapping is None else mapping.get(str(primary_id))

    def remember(self, service: str, pairs: Pairs, role: Role = Role.SHADOW) -> None:
        """Learn pairs (also how persisted pairs are loaded back at start-up)."""
        mapping = self._maps.setdefault((service, role), OrderedDict())
        for primary_id, shadow_id in pairs:
            key = str(primary_id)
            mapping[key] = shadow_id
            mapping.move_to_end(key)
        while len(mapping) > self.capacity:
            mapping.popitem(last=False)

    def begin(self, service: str, role: Role, primary: IdMap) -> PendingCreate | None:
        """The primary answered a mirrored create with these ids; requests naming them wait until `complete`."""
        if not primary:
            return None
        pending = PendingCreate(service, role, primary)
        table = self._pending.setdefault((service, role), {})
        for value in primary.values():
            table[str(value)] = pending
        return pending

    def complete(self, pending: PendingCreate, shadow: IdMap | None) -> Pairs:
        """The mirrored side answered (`shadow` None: it failed): learn the pairs, release the waiters."""
        pairs: list[tuple[IdValue, IdValue]] = []
        if shadow:
            for location, value in pending.primary.items():
                other = shadow.get(location)
                if other is not None and str(other) != str(value):
                    pairs.append((value, other))
        if pairs:
            self.remember(pending.service, pairs, pending.role)
        key = (pending.service, pending.role)
        table = self._pending.get(key)
        if table is not None:
            for value in pending.primary.values():
                if table.get(str(value)) is pending:
                    del table[str(value)]
            if not table:
                del self._pending[key]
        pending.event.set()
        if pairs and self.on_pairs is not None and pending.role is Role.SHADOW:
            try:
                self.on_pairs(pending.service, pairs)
            except Exception:
                # Persisting is best effort: the pairs are learnt here either way.
                log.exception("on_pairs hook failed", service=pending.service)
        return pairs

    async def rewrite(
        self,
        service: str,
        role: Role,
        path: str,
        query: str,
        body: bytes,
        fields: IdFields,
        *,
        json_body: bool,
    ) -> tuple[str, str, bytes]:
        """`path`, `query` and `body` with known primary ids replaced, after waiting for pending creates."""
        key = (service, role)
        segments = path.split("/")
        params = [part.partition("=") for part in query.split("&")] if query else []
        document: Any = None
        if json_body and body and fields:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                document = None
        pending = self._pending.get(key)
        if pending:
            names = {s for s in segments if s}
            names.update(value for name, _, value in params if name in fields)
            for _, obj in _objects(document):
                names.update(str(v) for k, v in obj.items() if k in fields and _is_id(v))
            await self._wait([p.event for name in names if (p := pending.get(name)) is not None])
        mapping = self._maps.get(key)
        if not mapping:
            return path, query, body
        changed = False
        for index, segment in enumerate(segments):
            if segment in mapping:
                segments[index] = str(self._hit(mapping, segment))
                changed = True
        if changed:
            path = "/".join(segments)
        if params:
            hit = False
            for index, (name, sep, value) in enumerate(params):
                if value in mapping and name in fields:
                    params[index] = (name, sep, str(self._hit(mapping, value)))
                    hit = True
            if hit:
                query = "&".join(name + sep + value for name, sep, value in params)
        if document is not None and self._rewrite_document(document, mapping, fields):
            body = orjson.dumps(document)
        return path, query, body

    def _rewrite_document(self, document: Any, mapping: OrderedDict[str, IdValue], fields: IdFields) -> bool:
        changed = False
        for _, obj in _objects(document):
            for name, value in obj.items():
                if name in fields and _is_id(value) and (text := str(value)) in mapping:
                    other = self._hit(mapping, text)
                    obj[name] = str(other) if isinstance(value, str) else other
                    changed = True
        return changed

    @staticmethod
    def _hit(mapping: OrderedDict[str, IdValue], key: str) -> IdValue:
        mapping.move_to_end(key)
        return mapping[key]

    async def _wait(self, events: list[asyncio.Event]) -> None:
        if not events:
            return
        self.waits += 1
        deadline = time.monotonic() + self.wait_seconds
        for event in events:
            remaining = deadline - time.monotonic()
            if event.is_set():
                continue
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    await event.wait()
            except TimeoutError:
                self.wait_timeouts += 1
                return
