"""V1, the legacy order/product/AI service: synchronous SQLAlchemy on SQLite, `{"detail": ...}` errors, no cache."""
