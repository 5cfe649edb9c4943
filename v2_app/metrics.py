"""Prometheus metrics of one app instance, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

# Fine below 100 ms, where most of this app's requests land, so p50/p90/p99 interpolate well.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
QUERY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """http.request.duration, error counts, cache hit/miss, db.query.duration and AI provider outcomes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time to serve a request, by route template.",
            ["method", "endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "http_request_errors",
            "Error responses, by error code.",
            ["code", "status"],
            registry=self.registry,
        )
        self.cache_hits = Counter("cache_hits", "Cache lookups that hit.", ["namespace"], registry=self.registry)
        self.cache_misses = Counter("cache_misses", "Cache lookups that missed.", ["namespace"], registry=self.registry)
        self.cache_errors = Counter(
            "cache_errors", "Cache backend failures (treated as misses).", ["namespace"], registry=self.registry
        )
        self.query_duration = Histogram(
            "db_query_duration_seconds",
            "Time of each SQL statement, by operation.",
            ["operation"],
            buckets=QUERY_BUCKETS,
            registry=self.registry,
        )
        self.ai_requests = Counter(
            "ai_provider_requests",
            "AI provider calls, by provider and outcome (ok, error, timeout).",
            ["provider", "outcome"],
            registry=self.registry,
        )

    def observe_query(self, operation: str, seconds: float) -> None:
        self.query_duration.labels(operation=operation).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
