"""Resources a request names: the collection a path addresses, where its ids sit, which fields refer to which
resource. The pure model behind id correlation and causal order (`diffs.id_pairs`, `proxy.dataplane`).

A resource is a collection template: `/posts`, `/posts/{}/comments`. A path's id positions come from its endpoint
template (ids by their look, configured patterns) and from the resources already known (the position right after a
known collection holds its ids, whatever they look like). Fields name a resource by `IdNaming`: its own `id` where
the request or response is about that resource, `<singular>_id` / `<singular>Id` anywhere, or an explicit mapping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

ANY = "{}"
"""A path segment of a collection template that holds an id of a parent resource."""
_PLACEHOLDER = re.compile(r"\{[^{}/]*\}(\.[A-Za-z][A-Za-z0-9]{0,5})?")
_EXTENSION = re.compile(r"(.+)(\.[A-Za-z][A-Za-z0-9]{0,5})")
_NORMAL = str.maketrans("", "", "_-")


def singular(word: str) -> str:
    """`posts` → `post`, `categories` → `category`, `addresses` → `address`, `sku` → `sku` (English enough for APIs)."""
    lower = word.lower()
    if lower.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if lower.endswith(("sses", "shes", "ches", "xes", "zes", "uses")):
        return word[:-2]
    if lower.endswith("s") and not lower.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _normal(name: str) -> str:
    return name.translate(_NORMAL).lower()


@dataclass(frozen=True, slots=True)
class Resource:
    """A collection, by its template: `/posts`, `/posts/{}/comments`."""

    collection: str
    segments: tuple[str, ...] = field(init=False, compare=False, repr=False)
    plural: str = field(init=False, compare=False, repr=False)
    """The collection's last literal segment (`comments`)."""
    singular: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        segments = tuple(s for s in self.collection.strip("/").split("/") if s)
        plural = next((s for s in reversed(segments) if s != ANY), "")
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "plural", plural)
        object.__setattr__(self, "singular", singular(plural))

    @classmethod
    def of(cls, segments: Sequence[str]) -> Resource:
        return _resource("/" + "/".join(segments))

    def below(self, name: str) -> Resource:
        """A sub-collection of this resource's items: `/orders` → `/orders/{}/items`."""
        return Resource.of((*self.segments, ANY, name))


@lru_cache(maxsize=1024)
def _resource(collection: str) -> Resource:
    """Resources are few and immutable: made once each (a request's path names the same few again and again)."""
    return Resource(collection)


@dataclass(frozen=True, slots=True)
class PathId:
    """An id in a request path: its position, the resource it belongs to, its value and any extension (`.json`)."""

    index: int
    resource: Resource
    value: str
    suffix: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """What a request path addresses."""

    ids: tuple[PathId, ...]
    collection: Resource
    """The collection the path is about: itself when it ends with a word (`/posts`, `/posts/{}/comments`), the
    collection of its last id otherwise (`/posts/5` → `/posts`)."""
    item: PathId | None
    """The item addressed: the path's last id (`/posts/5`, `/orders/5/cancel`), None when it has none."""


def target(segments: Sequence[str], template: Sequence[str], known: Iterable[Resource] = ()) -> Target:
    """Id positions of a request path: where its endpoint `template` (same length, `{...}` at ids) has placeholders,
    and right after any `known` collection."""
    collections = {r.segments for r in known}
    shape: list[str] = []
    ids: list[PathId] = []
    for index, segment in enumerate(segments):
        placeholder = index < len(template) and _PLACEHOLDER.fullmatch(template[index]) is not None
        if index and (placeholder or tuple(shape) in collections):
            value, suffix = segment, ""
            extended = _EXTENSION.fullmatch(segment)
            if extended and (not placeholder or template[index].endswith(extended.group(2))):
                value, suffix = extended.group(1), extended.group(2)
            ids.append(PathId(index, Resource.of(shape), value, suffix))
            shape.append(ANY)
        else:
            shape.append(segment)
    if ids and ids[-1].index == len(segments) - 1:
        return Target(tuple(ids), ids[-1].resource, ids[-1])
    return Target(tuple(ids), Resource.of(shape), ids[-1] if ids else None)


@dataclass(frozen=True, slots=True)
class IdNaming:
    """Which fields hold which resource's ids (a service's `id_key`, `id_fields` and `id_references`)."""

    key: str = "id"
    """A resource's own id field: in its create's response, and in requests about it."""
    references: tuple[str, ...] = ("{singular}_id", "{singular}Id")
    """Fields that refer to a resource by its singular name, anywhere."""
    explicit: Mapping[str, str] = field(default_factory=dict)
    """Field name → collection template, for references the patterns do not name (`author` → `/users`)."""

    def own_fields(self, resource: Resource) -> frozenset[str]:
        """The fields that hold this resource's own id in a response about it: `id`, `post_id`, `postId`."""
        return frozenset({self.key, *(p.format(singular=resource.singular) for p in self.references)})

    def named_by(self, name: str, known: Iterable[Resource]) -> tuple[Resource, ...]:
        """The known resources a reference field names (`user_id` → `/users`); never the bare `key`."""
        if name in self.explicit:
            wanted = Resource(self.explicit[name])
            return tuple(r for r in known if r == wanted) or (wanted,)
        if name == self.key:
            return ()
        normal = _normal(name)
        return tuple(
            r
            for r in known
            if r.singular and any(_normal(p.format(singular=r.singular)) == normal for p in self.references)
        )


def by_name(name: str | None, known: Iterable[Resource]) -> tuple[Resource, ...]:
    """The known resources a container key names: `comments` or `comment` → `/posts/{}/comments`, `/comments`."""
    if not name:
        return ()
    normal = _normal(name)
    return tuple(r for r in known if normal in (_normal(r.plural), _normal(r.singular)))


def endpoint_target(endpoint: str, known: Iterable[Resource] = ()) -> Target:
    """The `Target` of an endpoint template (`GET /posts/{id}` → item of `/posts`)."""
    path = endpoint.partition(" ")[2] or endpoint
    segments = [s for s in path.split("?", 1)[0].strip("/").split("/") if s]
    return target(segments, segments, known)
