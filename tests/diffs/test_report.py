"""The report model and its renderers: counts, field verdicts, assembly, windows, JSON/Markdown/text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from diffs import report_formats
from diffs.percentiles import (
    HistogramBucket,
    LatencyHistogram,
    build_latency,
    latency_bucket,
)
from diffs.readiness import Criteria
from diffs.report import (
    Counts,
    EndpointCounts,
    FieldCounts,
    FieldSummary,
    Verdict,
    Window,
    build_report,
    classify_fields,
    field_verdict,
    finding_fields,
    parse_since,
    start_of,
    window_of,
)
from diffs.rules import NoiseConfig
from diffs.templating import OVERFLOW

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def histogram(*latencies: float) -> tuple[HistogramBucket, ...]:
    """What the store's histogram query returns for these latencies."""
    grouped: dict[int, list[float]] = {}
    for value in latencies:
        grouped.setdefault(latency_bucket(value), []).append(value)
    return tuple(HistogramBucket(b, len(v), sum(v) / len(v)) for b, v in sorted(grouped.items()))


# ---------------------------------------------------------------- counts, fields, verdicts


def test_counts_rates_are_over_compared_exchanges() -> None:
    c = Counts.of({"match": 90, "diff": 8, "shadow_error": 2, "skipped": 50, "dropped": 5}, findings=4)
    assert (c.total, c.mirrored, c.samples) == (155, 105, 100)
    assert (c.match_rate, c.raw_diff_rate, c.diff_rate, c.error_rate) == (0.90, 0.08, 0.04, 0.02)
    assert Counts().diff_rate is None
    assert (c + c).samples == 200


@pytest.mark.parametrize(
    ("raw", "noise", "samples", "marked", "verdict"),
    [
        (10, 0, 100, False, Verdict.FINDING),  # never differs on the secondary: a finding
        (10, 10, 100, False, Verdict.NOISE),  # differs exactly as often between two copies of V1
        (100, 50, 100, False, Verdict.FINDING),  # twice as often as on the secondary
        (75, 50, 100, False, Verdict.NOISE),  # raw must exceed 1.5 × noise: 75 is on the line
        (76, 50, 100, False, Verdict.FINDING),
        (1, 0, 10_000, False, Verdict.NOISE),  # 0.01% is under the 0.03% absolute threshold
        (4, 0, 10_000, False, Verdict.FINDING),
        (10, 0, 100, True, Verdict.MARKED),  # a reviewer's mark wins
        (0, 0, 100, False, Verdict.NOISE),
    ],
)
def test_field_verdict(raw: int, noise: int, samples: int, marked: bool, verdict: str) -> None:
    assert field_verdict(raw, noise, samples, NoiseConfig(), marked) == verdict


def test_classify_fields_applies_marks_patterns_and_exact_paths() -> None:
    fields = [
        FieldCounts("GET /o/{id}", "root.total", 10, 0, ("changed",)),
        FieldCounts("GET /o/{id}", "root.items[*].created_at", 30, 0, ("changed",)),
        FieldCounts("GET /o/{id}", "status", 5, 0, ("status",)),
        FieldCounts("GET /p/{id}", "root.total", 10, 0, ("changed",)),
    ]
    marks = [("GET /o/{id}", "**.created_at"), ("GET /o/{id}", "status")]
    result = classify_fields(fields, {"GET /o/{id}": 100, "GET /p/{id}": 100}, NoiseConfig(), marks)
    verdicts = {(f.endpoint, f.path): f.verdict for f in result}
    assert verdicts == {
        ("GET /o/{id}", "root.total"): Verdict.FINDING,
        ("GET /o/{id}", "root.items[*].created_at"): Verdict.MARKED,
        ("GET /o/{id}", "status"): Verdict.MARKED,
        ("GET /p/{id}", "root.total"): Verdict.FINDING,  # marks are per endpoint
    }
    # Findings before what is noise or marked, however often that differed; then the most frequent first.
    assert [f.path for f in result if f.endpoint == "GET /o/{id}"] == [
        "root.total",
        "root.items[*].created_at",
        "status",
    ]
    assert finding_fields(result) == (("GET /o/{id}", "root.total"), ("GET /p/{id}", "root.total"))
    assert next(f for f in result if f.path == "root.total").raw_rate == 0.10


# ---------------------------------------------------------------- the report


def report(**kwargs: object) -> object:
    defaults: dict[str, object] = {
        "generated_at": NOW,
        "window": Window(),
        "criteria": Criteria(),
        "endpoints": [
            EndpointCounts("orders", "GET /o/{id}", {"match": 150, "diff": 10, "shadow_error": 1}, 10),
            EndpointCounts("orders", "POST /o", {"match": 40}),
            EndpointCounts("products", "GET /p/{id}", {"match": 300, "skipped": 7}),
        ],
        "fields": [FieldSummary("GET /o/{id}", "root.total", 10, 0, Verdict.FINDING)],
        "histograms": [
            LatencyHistogram("orders", "GET /o/{id}", "primary", histogram(*[20.0] * 160), "v1"),
            LatencyHistogram("orders", "GET /o/{id}", "shadow", histogram(*[15.0] * 160), "v2"),
            LatencyHistogram("products", "GET /p/{id}", "primary", histogram(*[30.0] * 300), "v1"),
            LatencyHistogram("products", "GET /p/{id}", "shadow", histogram(*[21.0] * 300), "v2"),
        ],
        "primaries": {"products": "v2"},
        "services": ["ai", "orders", "products"],
    }
    return build_report(**{**defaults, **kwargs})  # type: ignore[arg-type]


def test_build_report_groups_endpoints_into_services_and_judges_each() -> None:
    r = report()
    assert [s.service for s in r.services] == ["ai", "orders", "products"]
    orders, products, ai = r.service("orders"), r.service("products"), r.service("ai")
    assert orders is not None and products is not None and ai is not None
    assert orders.counts.samples == 201 and orders.counts.findings == 10
    assert [e.endpoint for e in orders.endpoints] == ["GET /o/{id}", "POST /o"]  # findings first
    assert orders.endpoints[0].finding_fields == 1 and orders.endpoints[1].fields == ()
    assert [f.criterion for f in orders.readiness.failures] == ["max_diff_rate"]
    assert products.readiness.ready and products.primary == "v2" and products.shadow == "v1"
    assert ai.counts.total == 0 and not ai.readiness.ready  # configured, no traffic


def test_a_gate_over_every_service_ignores_idle_ones_but_needs_traffic() -> None:
    r = report(endpoints=[EndpointCounts("products", "GET /p/{id}", {"match": 300})])
    assert [s.service for s in r.active] == ["products"]
    assert r.ready
    assert not report(endpoints=[], histograms=[]).ready


@pytest.mark.parametrize("primary", ["v1", "v2"])
def test_v2_speedup_compares_the_apps_that_answered_not_the_current_primary(primary: str) -> None:
    products = report(primaries={"products": primary}).service("products")  # type: ignore[attr-defined]
    assert products.v2_speedup == pytest.approx(0.30)  # V2 answered in 21 ms where V1 took 30 ms


def test_after_a_promotion_both_apps_appear_in_both_roles() -> None:
    # Before the promotion V1 was primary at 30 ms; after it V2 is primary at 20 ms and V1 the shadow at 32 ms.
    latency = build_latency(
        [
            LatencyHistogram("s", "E", "primary", histogram(*[30.0] * 50), "v1"),
            LatencyHistogram("s", "E", "shadow", histogram(*[21.0] * 50), "v2"),
            LatencyHistogram("s", "E", "primary", histogram(*[20.0] * 50), "v2"),
            LatencyHistogram("s", "E", "shadow", histogram(*[32.0] * 50), "v1"),
        ]
    )
    assert (latency.v1.count, latency.v2.count) == (100, 100)
    assert latency.v2_speedup == pytest.approx(1 - 20.0 / 30.0, abs=0.001)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", NOW - timedelta(minutes=15)),
        ("1h", NOW - timedelta(hours=1)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("2026-11-28T10:00:00+00:00", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28T10:00:00", datetime(2026, 11, 28, 10, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "1y", "-1h"])
def test_parse_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_since(text, NOW)


# ---------------------------------------------------------------- renderers


def test_report_dict_is_json_with_rates_latency_and_readiness() -> None:
    data = json.loads(report_formats.render_json(report()))  # type: ignore[arg-type]
    orders = next(s for s in data["services"] if s["service"] == "orders")
    assert orders["readiness"] == {
        "ready": False,
        "failures": [
            {
                "criterion": "max_diff_rate",
                "actual": pytest.approx(10 / 201),
                "limit": 0.01,
                "message": "diff rate 4.98% > 1.00%",
            }
        ],
    }
    assert orders["latency"]["primary"]["p99_ms"] == 20.0 and orders["latency"]["ratio"]["p99"] == 0.75
    assert orders["endpoints"][0]["fields"][0]["verdict"] == "finding"
    assert data["ready"] is False and data["schema_version"] == 1


def test_markdown_names_failures_and_findings_but_not_idle_services() -> None:
    text = report_formats.render_markdown(report())  # type: ignore[arg-type]
    assert "| orders | v1 |" in text and "❌ NOT READY" in text and "✅ READY" in text
    assert "- ❌ diff rate 4.98% > 1.00%" in text
    assert "| `GET /o/{id}` | `root.total` |" in text
    assert "| ai | v1 | 0 | 0 |" in text and "### ai" not in text


def test_plain_text_report() -> None:
    text = report_formats.render_text(report())  # type: ignore[arg-type]
    assert "orders: primary v1 · NOT READY" in text and "  ✗ diff rate 4.98% > 1.00%" in text
    assert "ai: primary v1 · no traffic" in text


def test_endpoints_are_listed_most_severe_first() -> None:
    r = report(
        endpoints=[
            EndpointCounts("orders", "GET /busy", {"match": 5000}),
            EndpointCounts("orders", "GET /errors", {"match": 90, "shadow_error": 10}),
            EndpointCounts("orders", "GET /findings", {"match": 95, "diff": 5}, 5),
            EndpointCounts("orders", "GET /noisy", {"match": 50, "diff": 50}, 0),
        ]
    )
    orders = r.service("orders")
    assert orders is not None
    assert [e.endpoint for e in orders.endpoints] == ["GET /findings", "GET /errors", "GET /busy", "GET /noisy"]


def test_noise_rate_counts_exchanges_that_differed_only_in_noise() -> None:
    counts = Counts(match=80, diff=20, findings=5)
    assert (counts.diff_rate, counts.noise_rate, counts.raw_diff_rate) == (0.05, 0.15, 0.20)
    assert Counts().noise_rate is None


def test_the_overflow_endpoint_is_named_as_such() -> None:
    busy = EndpointCounts("orders", "GET /o/{id}", {"match": 150})
    r = report(endpoints=[EndpointCounts("orders", f"GET {OVERFLOW}", {"match": 5}), busy])
    orders = r.service("orders")
    assert orders is not None
    overflow = [e for e in orders.endpoints if e.overflow]
    assert [e.endpoint for e in overflow] == ["GET (other endpoints)"]
    data = report_formats.report_dict(r)
    flags = {e["endpoint"]: e["overflow"] for s in data["services"] for e in s["endpoints"]}
    assert flags["GET (other endpoints)"] is True and flags["GET /o/{id}"] is False


# ---------------------------------------------------------------- directions, shares, speed-ups, windows


def test_shares_add_up_to_every_exchange_with_a_noise_only_column() -> None:
    # 100 matches (8 of them differed only in noise flagged on the spot), 12 differed: 5 in a finding, 7 only in
    # fields judged noise; 3 shadow errors, 20 skipped, 2 dropped.
    c = Counts.of({"match": 100, "diff": 12, "shadow_error": 3, "skipped": 20, "dropped": 2}, findings=5, noisy_match=8)
    shares = c.shares
    assert sum(v for v in shares.values() if v is not None) == pytest.approx(1.0)
    assert shares == pytest.approx(
        {"match": 92 / 137, "noise_only": 15 / 137, "finding": 5 / 137, "shadow_error": 3 / 137,
         "skipped": 20 / 137, "dropped": 2 / 137}
    )  # fmt: skip
    assert c.clean_match == 92 and c.noise_only == 15
    assert Counts().shares == dict.fromkeys(shares)


def test_stats_are_split_by_direction_and_the_current_one_is_the_headline() -> None:
    # V1 was primary (and V2 slower, with findings) before the promotion; since, V2 is primary and all is well.
    r = report(
        endpoints=[
            EndpointCounts("products", "GET /p/{id}", {"match": 150, "diff": 50}, 50, direction="v1>v2"),
            EndpointCounts("products", "GET /p/{id}", {"match": 120}, direction="v2>v1"),
        ],
        fields=[FieldSummary("GET /p/{id}", "root.price", 50, 0, Verdict.FINDING, direction="v1>v2")],
        histograms=[
            LatencyHistogram("products", "GET /p/{id}", "primary", histogram(*[20.0] * 200), "v1", "v1>v2"),
            LatencyHistogram("products", "GET /p/{id}", "shadow", histogram(*[80.0] * 200), "v2", "v1>v2"),
            LatencyHistogram("products", "GET /p/{id}", "primary", histogram(*[18.0] * 120), "v2", "v2>v1"),
            LatencyHistogram("products", "GET /p/{id}", "shadow", histogram(*[20.0] * 120), "v1", "v2>v1"),
        ],
        primaries={"products": "v2"},
        last_promotions={"products": NOW - timedelta(hours=1)},
    )
    products = r.service("products")  # type: ignore[attr-defined]
    assert products.direction == "v2>v1" and products.counts.samples == 120 and products.readiness.ready
    assert products.latency.ratio("p99") == pytest.approx(20.0 / 18.0, abs=0.01)  # V1 as the shadow now
    assert products.endpoints[0].fields == ()  # V1-primary findings are not pooled in
    assert [d.direction for d in products.directions] == ["v2>v1", "v1>v2"]
    before = products.directions[1]
    assert before.counts.findings == 50 and not before.readiness.ready
    assert [f.criterion for f in before.readiness.failures] == ["max_diff_rate", "max_p99_ratio"]
    assert products.last_promotion == NOW - timedelta(hours=1)


def test_v2_faster_is_stated_at_p50_and_at_p99() -> None:
    latency = build_latency(
        [
            LatencyHistogram("s", "E", "primary", histogram(*[10.0] * 99, 100.0), "v1"),
            LatencyHistogram("s", "E", "shadow", histogram(*[8.0] * 99, 150.0), "v2"),
        ]
    )
    assert latency.v2_speedup == pytest.approx(0.2) and latency.v2_speedup_p99 == pytest.approx(0.2)
    tail = build_latency(
        [
            LatencyHistogram("s", "E", "primary", histogram(*[10.0] * 98, 100.0, 100.0), "v1"),
            LatencyHistogram("s", "E", "shadow", histogram(*[8.0] * 98, 150.0, 150.0), "v2"),
        ]
    )
    assert report_formats.fmt_speedups(tail) == "V2 20% faster at p50, 50% slower at p99"
    assert report_formats.fmt_speedups(build_latency([])) == "–"


PROMOTED = NOW - timedelta(minutes=30)


@pytest.mark.parametrize(
    ("since", "expected", "start"),
    [
        (None, Window(since_promotion=True), PROMOTED),
        ("", Window(since_promotion=True), PROMOTED),
        ("all", Window(), None),
        ("1h", Window(since=NOW - timedelta(hours=1)), NOW - timedelta(hours=1)),  # asked for: exactly that
    ],
)
def test_the_default_window_starts_at_each_services_last_promotion(
    since: str | None, expected: Window, start: datetime | None
) -> None:
    assert window_of(since, NOW) == expected
    assert start_of(window_of(since, NOW), PROMOTED) == start
    assert start_of(window_of(since, NOW), None) == expected.since  # never promoted
