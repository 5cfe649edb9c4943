"""proxy.analysis.metrics: the analysis plane's counts and backlog, exported in multiprocess mode too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, multiprocess, values

from proxy.analysis.metrics import AnalysisMetrics
from proxy.dataplane.metrics import ProxyMetrics


@pytest.fixture
def multiprocess_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """What a `--workers N` worker runs with: every value in an mmap file of PROMETHEUS_MULTIPROC_DIR."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    yield tmp_path


def scraped(path: Path, name: str, **labels: str) -> float | None:
    """What the supervisor's /metrics reads: the files of every worker, added up."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return registry.get_sample_value(name, labels)


def test_the_backlog_is_exported_in_multiprocess_mode(multiprocess_mode: Path) -> None:
    # It was a scrape-time function (set_function), which multiprocess mode never writes: with --workers 2 it read 0.
    metrics = AnalysisMetrics(ProxyMetrics(CollectorRegistry(), deferred=True))
    metrics.set_backlog(queue=3, store=5)
    assert scraped(multiprocess_mode, "shadowdiff_comparison_backlog", stage="queue") == 3
    assert scraped(multiprocess_mode, "shadowdiff_comparison_backlog", stage="store") == 5


def test_reported_counts_are_added_in_the_workers_registry() -> None:
    proxy = ProxyMetrics(CollectorRegistry())
    metrics = AnalysisMetrics(proxy)
    endpoint = "GET /api/orders/{id}"
    for _ in range(2):
        metrics.apply([["orders", endpoint, "diff", 2]], [["orders", endpoint, "true", 3]], [["store_unavailable", 4]])
    sample = proxy.registry.get_sample_value
    assert sample("shadowdiff_comparisons_total", {"service": "orders", "endpoint": endpoint, "outcome": "diff"}) == 4
    assert sample("shadowdiff_field_diffs_total", {"service": "orders", "endpoint": endpoint, "noise": "true"}) == 6
    assert sample("shadowdiff_dropped_total", {"reason": "store_unavailable"}) == 8
