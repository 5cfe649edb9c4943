"""Sampling: which requests of a service are mirrored, at random or consistently per key header value."""

from __future__ import annotations

import hashlib
import random

_SCALE = float(1 << 64)


def key_fraction(key: str) -> float:
    """Where a key falls in [0, 1): the same key always lands in the same place."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Sampler:
    """Decides per request; with a key (e.g. a user id header) the decision is the same for every request
    carrying it, so a sampled user's whole session is mirrored (a create and the reads that follow it)."""

    __slots__ = ("rate", "_random")

    def __init__(self, rate: float, *, rng: random.Random | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample rate must be within 0..1, not {rate!r}")
        self.rate = rate
        self._random = (rng or random.Random()).random

    def sampled(self, key: str | None = None) -> bool:
        rate = self.rate
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        if key:
            return key_fraction(key) < rate
        return self._random() < rate
