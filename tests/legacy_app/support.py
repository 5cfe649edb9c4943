"""Types of the legacy app's test fixtures (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

MakeProduct = Callable[..., Awaitable[dict[str, Any]]]
Snapshot = Callable[[], Awaitable[dict[str, Any]]]
