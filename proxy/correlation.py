"""Id correlation: primary id → shadow id learned from mirrored creates, applied to later shadow requests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

Pairs = Sequence[tuple[str, object]]


class IdCorrelator:
    """Per service: a bounded LRU of primary id → shadow id, and the creates still pending on the shadow."""

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
