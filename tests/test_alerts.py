"""deploy/alerts.yml: valid for promtool, the alerts fire on the series they describe, and name only real metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from proxy.dataplane.metrics import ProxyMetrics

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "alerts.yml"
SOURCES = (ROOT / "proxy", ROOT / "diffs")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "summary": ("_count",)}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing, and CI=true requires it (apt-get install prometheus)", pytrace=False)
        pytest.skip("promtool is not installed")
    return found


def expressions() -> list[str]:
    """Every `expr` in the rules file (PyYAML is not a dependency: read the folded blocks by hand if it is absent)."""
    try:
        import yaml
    except ImportError:
        return _expressions_by_hand(RULES.read_text())
    data = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in data["groups"] for rule in group["rules"]]


def _expressions_by_hand(text: str) -> list[str]:
    found, lines = [], text.splitlines()
    for n, line in enumerate(lines):
        match = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if not match:
            continue
        indent, rest = len(match.group(1)), match.group(2).strip()
        if rest not in (">-", ">", "|", "|-"):
            found.append(rest)
            continue
        block = []
        for following in lines[n + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        found.append(" ".join(b for b in block if b))
    return found


def defined_metrics() -> set[str]:
    """Sample names the code exposes: ProxyMetrics' families, plus any other shadowdiff_* metric declared in source."""
    registry = CollectorRegistry()
    ProxyMetrics(registry)
    declared = {(family.name, family.type) for family in registry.collect()}
    pattern = re.compile(r'\b(Counter|Histogram|Gauge|Summary)\(\s*"(shadowdiff_[a-z0-9_]+)"')
    for source in SOURCES:
        for path in source.rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                declared.add((name.removesuffix("_total"), kind.lower()))
    return {name + suffix for name, kind in declared for suffix in SUFFIXES.get(kind, ("",))}


def metric_names(expr: str) -> set[str]:
    """The shadowdiff_* series an expression reads (recording-rule names contain a colon and are left out)."""
    return set(re.findall(r"(?<![:\w])(shadowdiff_[a-z0-9_]+)(?![:\w])", expr))


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_every_expression_names_only_metrics_the_code_defines() -> None:
    exprs = expressions()
    assert len(exprs) == 7
    named = set().union(*(metric_names(e) for e in exprs))
    assert {"shadowdiff_upstream_latency_seconds_bucket", "shadowdiff_shadow_errors_total"} <= named
    assert "shadowdiff_comparisons_total" in named  # the per-endpoint diff rate (proxy.analysis.metrics)
    defined = defined_metrics()
    assert not named - defined, f"not defined by the code: {sorted(named - defined)}"


def test_the_hand_reader_agrees_with_yaml() -> None:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(RULES.read_text())
    by_yaml = [" ".join(rule["expr"].split()) for group in data["groups"] for rule in group["rules"]]
    assert [" ".join(e.split()) for e in _expressions_by_hand(RULES.read_text())] == by_yaml


# ---------------------------------------------------------------- promtool unit tests on synthetic series


def _buckets(labels: str, per_minute: dict[str, int], minutes: int) -> list[dict[str, str]]:
    """Cumulative histogram bucket series growing by `per_minute[le]` observations each minute."""
    series, total = [], 0
    for le in ("0.1", "0.25", "0.5", "1.0", "2.5", "+Inf"):
        total += per_minute.get(le, 0)
        series.append(
            {
                "series": f'shadowdiff_upstream_latency_seconds_bucket{{{labels},le="{le}"}}',
                "values": f"0+{total}x{minutes}",
            }
        )
    series.append(
        {"series": f"shadowdiff_upstream_latency_seconds_count{{{labels}}}", "values": f"0+{total}x{minutes}"}
    )
    return series


def run_promtool_test(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    # JSON is YAML, so the test file needs no YAML writer.
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "alerts_test.yml"
    path.write_text(json.dumps(spec, indent=1))
    return subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)


SLOW = {
    "exp_labels": {"severity": "warning", "service": "orders", "role": "primary", "app": "v2"},
    "exp_annotations": {
        "summary": "Slow Response After Migration: orders (v2) p99 is above 500ms",
        "description": "The p99 of orders's primary (v2) has been above 500ms for 5 minutes. "
        "Consider `shadowdiff rollback orders`.",
    },
}


def test_slow_response_after_migration_fires_after_five_slow_minutes_and_not_before(tmp_path: Path) -> None:
    slow = _buckets('service="orders",role="primary",app="v2"', {"0.25": 90, "1.0": 10}, 30)
    fast = _buckets('service="products",role="primary",app="v2"', {"0.1": 100}, 30)
    result = run_promtool_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": slow + fast,
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "SlowResponseAfterMigration", "exp_alerts": []},
                    {"eval_time": "12m", "alertname": "SlowResponseAfterMigration", "exp_alerts": [SLOW]},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_slow_response_after_migration_stays_quiet_under_500ms(tmp_path: Path) -> None:
    fine = _buckets('service="orders",role="primary",app="v2"', {"0.25": 99, "0.5": 1}, 30)
    result = run_promtool_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": fine,
                "alert_rule_test": [{"eval_time": "25m", "alertname": "SlowResponseAfterMigration", "exp_alerts": []}],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_test_would_notice_a_wrong_expectation(tmp_path: Path) -> None:
    # Guards the harness itself: expecting the alert on fast traffic must make promtool fail.
    fast = _buckets('service="orders",role="primary",app="v2"', {"0.1": 100}, 30)
    result = run_promtool_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": fast,
                "alert_rule_test": [
                    {"eval_time": "12m", "alertname": "SlowResponseAfterMigration", "exp_alerts": [SLOW]}
                ],
            }
        ],
    )
    assert result.returncode != 0


def test_diff_rate_shadow_error_and_shadow_latency_alerts_fire_on_their_series(tmp_path: Path) -> None:
    endpoint = 'service="orders",endpoint="GET /api/orders/{id}"'
    series = [
        {"series": f'shadowdiff_comparisons_total{{{endpoint},outcome="match"}}', "values": "0+570x40"},
        {"series": f'shadowdiff_comparisons_total{{{endpoint},outcome="diff"}}', "values": "0+30x40"},
        {"series": 'shadowdiff_shadow_errors_total{service="orders",kind="timeout"}', "values": "0+12x40"},
        *_buckets('service="orders",role="shadow",app="v2"', {"0.1": 588, "2.5": 12}, 40),
        *_buckets('service="orders",role="primary",app="v1"', {"0.1": 600}, 40),
    ]
    diff_alert = {
        "exp_labels": {"severity": "warning", "service": "orders", "endpoint": "GET /api/orders/{id}"},
        "exp_annotations": {
            "summary": "orders GET /api/orders/{id}: more than 1% of responses differ between V1 and V2",
            "description": "Open the endpoint's page in the shadowdiff report to see which fields differ, "
            "with examples side by side.",
        },
    }
    error_alert = {
        "exp_labels": {"severity": "warning", "service": "orders"},
        "exp_annotations": {
            "summary": "orders: more than 1% of mirrored requests get no answer from the shadow",
            "description": "Timeouts, refused or reset connections on orders's shadow; clients are unaffected, "
            "but the service is not ready to promote.",
        },
    }
    # The 2% of shadow calls that took up to 2.5s put the shadow's p99 far above the primary's.
    slower_alert = {
        "exp_labels": {"severity": "info", "service": "orders"},
        "exp_annotations": {
            "summary": "orders: the shadow's p99 is more than 1.2x the primary's",
            "description": "orders would get slower if its shadow were promoted now "
            "(the migration guide expects V2 at least 20% faster).",
        },
    }
    result = run_promtool_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "ShadowDiffRateHigh", "exp_alerts": [diff_alert]},
                    {"eval_time": "30m", "alertname": "ShadowErrorRateHigh", "exp_alerts": [error_alert]},
                    {"eval_time": "30m", "alertname": "ShadowSlowerThanPrimary", "exp_alerts": [slower_alert]},
                    {"eval_time": "30m", "alertname": "SlowResponseAfterMigration", "exp_alerts": []},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr
