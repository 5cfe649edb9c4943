"""Noise: differences the primary's own app also shows between two runs, or that a person marked as noise.

Per exchange, two sources, none guessed:

1. The secondary — a second copy of the app on one side (V1, whichever side it plays) answered the same request;
   every (path, kind) where that side and the secondary differ is noise on this exchange. Matched by path *and* kind:
   a value that varies between two runs of V1 excuses a `changed` value, not a `removed` field or a changed type.
2. Marks — `(endpoint, path pattern)` pairs a person marked as noise, loaded from the store by the caller.

Across exchanges, one rule decides whether a field is a finding or noise (`is_finding`, Diffy's filter):

    finding  ⇔  raw − noise > relative × (raw + noise)   and   raw − noise > absolute × samples

`raw`: exchanges where the field differed between primary and shadow; `noise`: how many of those differences were
noise (flagged by the secondary); `samples`: compared exchanges of the endpoint. Defaults: relative 0.20, absolute
0.0003 (0.03%); with them a field is a finding when raw > 1.5 × noise and the unexplained differences are more than
3 in 10,000 exchanges.

Recommended ignore rules for the demo apps (generated on every run, so noise by construction): `**.created_at`,
`**.updated_at` and `root.order_number` (a secondary measures the same thing without configuration).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from diffs.exchange import DiffKind, FieldDiff
from diffs.paths import ROOT, PatternSet, ancestors
from diffs.rules import NoiseConfig

Noisy = frozenset[tuple[str, DiffKind]]
"""(path template, kind) of every difference between the secondary and the side that runs its app."""

ANY_ENDPOINT = "*"


class NoiseMark(NamedTuple):
    """A person's verdict that a field is noise; a plain pair so rows from the store fit as they are."""

    endpoint: str
    """Endpoint template, or "*" for every endpoint."""
    path: str
    """Path pattern (`root.order_number`, `**.created_at`), or exactly `status` / `header.<name>`."""


class Marks:
    """Marks indexed by endpoint, each side's patterns precompiled."""

    def __init__(self, marks: Iterable[tuple[str, str]] = ()) -> None:
        body: dict[str, list[str]] = {}
        self._exact: set[tuple[str, str]] = set()
        for endpoint, path in marks:
            if path.startswith(ROOT) or "*" in path or not (path == "status" or path.startswith("header.")):
                body.setdefault(endpoint, []).append(path)
            else:
                self._exact.add((endpoint, path))  # "status" must not read as the body field root.status
        self._body = {endpoint: PatternSet(paths) for endpoint, paths in body.items()}
        self._size = sum(len(p) for p in body.values()) + len(self._exact)

    def __len__(self) -> int:
        return self._size

    def is_marked(self, endpoint: str, path: str) -> bool:
        for key in (endpoint, ANY_ENDPOINT):
            if (key, path) in self._exact:
                return True
            patterns = self._body.get(key)
            if patterns is not None and patterns.matches(path):
                return True
        return False


def is_noisy(path: str, kind: DiffKind, noisy: Noisy) -> bool:
    """The secondary showed this difference: the same path with the same kind, or a whole value above it changed."""
    if not noisy:
        return False
    if (path, kind) in noisy:
        return True
    # A value that varies as a whole (a text body, a subtree past the depth limit) covers value changes inside it.
    return kind is DiffKind.CHANGED and any((a, DiffKind.CHANGED) in noisy for a in ancestors(path))


def flag_noise(diffs: Sequence[FieldDiff], noisy: Noisy, marks: Marks, endpoint: str) -> list[FieldDiff]:
    """The diffs with `noise=True` where the secondary showed the same difference, or a mark matches."""
    if not noisy and not len(marks):
        return list(diffs)
    return [
        dataclasses.replace(d, noise=True)
        if not d.noise and (is_noisy(d.path, d.kind, noisy) or marks.is_marked(endpoint, d.path))
        else d
        for d in diffs
    ]


def is_finding(raw: int, noise: int, samples: int, config: NoiseConfig) -> bool:
    """The one noise rule (module docstring): raw − noise > relative × (raw + noise) and > absolute × samples.

    On counts, in decimals, so a field exactly on a threshold is noise, never a float's width past it.
    """
    excess = raw - noise
    if excess <= 0:
        return False
    relative, absolute = Decimal(repr(config.relative_threshold)), Decimal(repr(config.absolute_threshold))
    return excess > relative * (raw + noise) and excess > absolute * samples
