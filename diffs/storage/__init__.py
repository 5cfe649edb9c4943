"""Persistence for exchanges, field diffs, noise marks, id correlations and promotions (the only SQLAlchemy user)."""

from diffs.storage.records import (
    Cursor,
    ExchangeSummary,
    NoiseMark,
    Page,
    PromotionRecord,
    StoredExchange,
    StoredRequest,
    StoredSide,
)
from diffs.storage.retention import RetentionPolicy
from diffs.storage.store import Store, StoreUnavailable

__all__ = [
    "Cursor",
    "ExchangeSummary",
    "NoiseMark",
    "Page",
    "PromotionRecord",
    "RetentionPolicy",
    "Store",
    "StoreUnavailable",
    "StoredExchange",
    "StoredRequest",
    "StoredSide",
]
