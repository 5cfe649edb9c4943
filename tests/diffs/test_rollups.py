"""Rollups: histograms within 1% of exact percentiles, cells that add up, windows covered exactly (pure)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from diffs import rollups
from diffs.exchange import Comparison, Outcome
from diffs.percentiles import percentiles
from diffs.rollups import (
    GRAINS,
    OTHER_SIGNATURE,
    Accumulator,
    Cell,
    Histogram,
    RollupBuffer,
    cover,
    every_grain,
    findings,
    floor_time,
    fold_all,
)
from tests import factories as f

RECORDED = json.loads((Path(__file__).parents[1] / "fixtures" / "recorded_latencies.json").read_text())
"""Latencies of 3,000 real requests to the demo V1 and V2 (`shadowdiff up`), timed by one client."""


def exact(values: list[float], q: float) -> float:
    """Nearest rank, as `diffs.percentiles` ranks."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _lognormal(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(3.0, 1.2) for _ in range(n)]


@pytest.mark.parametrize(
    "values",
    [RECORDED["v1"], RECORDED["v2"], _lognormal(20_000, 1), [0.2] * 50 + [4000.0] * 3],
    ids=["recorded-v1", "recorded-v2", "lognormal-tail", "two-spikes"],
)
def test_percentiles_from_merged_minute_histograms_are_within_1_percent_of_exact(values: list[float]) -> None:
    # Split over minutes as the writer would, encoded, then merged as a report merges rows.
    minutes = [Histogram() for _ in range(7)]
    for i, ms in enumerate(values):
        minutes[i % 7].add(ms)
    merged = Accumulator()
    for h in minutes:
        merged.add_encoded(Histogram.decode(h.encode()).encode())
    got = percentiles(merged.buckets())
    assert got.count == len(values)
    for q, name in ((0.50, "p50"), (0.90, "p90"), (0.99, "p99")):
        assert getattr(got, name) == pytest.approx(exact(values, q), rel=0.01, abs=0.0015), name


def test_equal_latencies_come_back_exactly() -> None:
    h = Histogram()
    for _ in range(10):
        h.add(22.0)
    assert percentiles(h.buckets()).p50 == 22.0


@pytest.mark.parametrize("values", [[1.0, 1.01, 1.02, 1.03], [0.5, 3000.0], [0.0001, 1e9]])
def test_encoding_round_trips_dense_and_sparse(values: list[float]) -> None:
    h = Histogram()
    for v in values:
        h.add(v)
    back = Histogram.decode(h.encode())
    assert back.buckets() == h.buckets()
    accumulated = Accumulator()
    accumulated.add_encoded(h.encode())
    assert [(b.bucket, b.count) for b in accumulated.buckets()] == [(b.bucket, b.count) for b in h.buckets()]
    assert Histogram.decode(b"").count == 0 and Histogram().encode() == b""


def test_a_cell_counts_outcomes_noise_fields_statuses_and_signatures() -> None:
    cell = Cell()
    cell.add(outcome="match", primary_ms=10, shadow_ms=12, primary_status=200, shadow_status=200)
    cell.add(
        outcome="match",
        primary_ms=10,
        shadow_ms=11,
        primary_status=200,
        shadow_status=200,
        diffs=[("root.created_at", "changed", True)],
    )
    cell.add(
        outcome="diff",
        primary_ms=10,
        shadow_ms=30,
        primary_status=200,
        shadow_status=200,
        diffs=[("root.total", "changed", False), ("root.items[*].x", "removed", False), ("root.t", "changed", True)],
    )
    cell.add(outcome="shadow_error", primary_ms=10, shadow_ms=5000, primary_status=200, shadow_status=None)
    cell.add(outcome="skipped", primary_ms=3, shadow_ms=None, primary_status=200, shadow_status=None)
    assert cell.outcomes == {"match": 2, "diff": 1, "shadow_error": 1, "skipped": 1} and cell.noisy_match == 1
    assert cell.primary.count == cell.shadow.count == 3  # compared exchanges only
    assert cell.statuses == {"200 200": 3, "200 -": 1}
    assert cell.fields == {
        ("root.created_at", "changed"): [1, 1],
        ("root.total", "changed"): [1, 0],
        ("root.items[*].x", "removed"): [1, 0],
        ("root.t", "changed"): [1, 1],
    }
    assert cell.signatures == {"root.items[*].x\nroot.total": 1}


def test_findings_count_exchanges_with_any_finding_path_once() -> None:
    signatures = {"a\nb": 3, "b": 2, "c": 5, "": 1}
    assert findings(signatures, ["b"]) == 5
    assert findings(signatures, ["a", "b"]) == 5  # an exchange with both counts once
    assert findings(signatures, ["c", "a"]) == 8
    assert findings(signatures, []) == 0
    assert findings({OTHER_SIGNATURE: 4, "c": 1}, ["z"]) == 4  # overflow: counted when anything is a finding


def test_signatures_past_the_bound_go_to_other() -> None:
    cell = Cell()
    for n in range(rollups.MAX_SIGNATURES + 10):
        cell.add(
            outcome="diff",
            primary_ms=1,
            shadow_ms=1,
            primary_status=200,
            shadow_status=200,
            diffs=[(f"root.f{n}", "changed", False)],
        )
    assert len(cell.signatures) == rollups.MAX_SIGNATURES + 1 and cell.signatures[OTHER_SIGNATURE] == 10


def test_merging_cells_is_adding_them() -> None:
    t0 = datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC)
    comparisons = []
    for n in range(40):
        body = f.order_body(total="1.00" if n % 3 else "2.00")
        x = f.exchange(primary=f.primary(f.order_body(), latency_ms=5 + n), shadow=f.shadow(body, latency_ms=7 + n))
        comparisons.append(_compare(replace(x, started_at=t0 + timedelta(seconds=17 * n))))
    minutes = fold_all(comparisons)
    assert len({k.start for k in minutes}) == 12  # 40 exchanges over ~11 minutes
    whole = every_grain(minutes)
    hour = next(cell for key, cell in whole.items() if key.grain == 3600)
    day = next(cell for key, cell in whole.items() if key.grain == 86400)
    assert hour.outcomes == day.outcomes == sum((c.outcomes for c in minutes.values()), type(hour.outcomes)())
    assert hour.primary.buckets() == day.primary.buckets()
    assert hour.exchanges == 40 and sum(hour.signatures.values()) == hour.outcomes[Outcome.DIFF]


def _compare(x):  # type: ignore[no-untyped-def]
    from diffs.comparer import Comparer
    from proxy.config import load_settings

    return Comparer(load_settings(environ={}).services).compare(x)


def test_the_buffer_refuses_new_keys_past_its_bound_and_restores_what_failed() -> None:
    buffer = RollupBuffer(max_keys=1)
    first = _compare(f.exchange(path="/api/orders/1"))
    assert buffer.add(first) and buffer.add(first)
    assert not buffer.add(_compare(f.exchange(path="/api/products/1", service="products")))
    taken = buffer.take()
    assert len(buffer) == 0 and buffer.exchanges == 0 and sum(c.exchanges for c in taken.values()) == 2
    assert buffer.add(first)  # a write failed meanwhile: what it took goes back and adds up with the new
    buffer.restore(taken)
    assert buffer.exchanges == 3 and len(buffer) == 1
    (cell,) = buffer.take().values()
    assert cell.outcomes == {"match": 3}


T = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (T + timedelta(minutes=7), T + timedelta(minutes=9)),
        (T + timedelta(minutes=7), T + timedelta(hours=3, minutes=2)),
        (T + timedelta(hours=5, minutes=59), T + timedelta(days=8, hours=1, minutes=1)),
        (T, T + timedelta(days=2)),
        (None, T + timedelta(days=3, hours=4, minutes=5)),
        (T + timedelta(seconds=30), T + timedelta(minutes=1, seconds=1)),
    ],
)
def test_cover_adds_up_to_every_minute_of_the_window_exactly_once(since: datetime | None, until: datetime) -> None:
    ranges = cover(since, until)
    low = floor_time(since, 60) if since is not None else T - timedelta(days=10)
    high = until if floor_time(until, 60) == until else floor_time(until, 60) + timedelta(minutes=1)
    covered: list[datetime] = []
    for grain, start, end in ranges:
        assert start is None or floor_time(start, grain) == start
        assert floor_time(end, grain) == end
        at = start if start is not None else floor_time(T - timedelta(days=10), grain)
        while at < end:
            covered += [at + timedelta(minutes=m) for m in range(grain // 60)]
            at += timedelta(seconds=grain)
    expected = []
    at = low
    while at < high:
        expected.append(at)
        at += timedelta(minutes=1)
    assert sorted(c for c in covered if c >= low) == expected
    assert len(ranges) <= 5 and {g for g, _, _ in ranges} <= set(GRAINS)


def test_a_week_is_read_from_few_rows() -> None:
    ranges = cover(T + timedelta(hours=13, minutes=17), T + timedelta(days=7, hours=13, minutes=17))
    rows = sum((end - start).total_seconds() / grain for grain, start, end in ranges if start is not None)
    assert rows == 43 + 10 + 6 + 13 + 17  # minutes, hours, days, hours, minutes


def test_accumulated_counts_and_sums_are_those_added_one_by_one() -> None:
    """The accumulator adds dense rows' counts as one integer: every count and every latency sum must be exactly
    what adding bucket by bucket, row after row, gives (dense and sparse rows mixed, buckets at both ends)."""
    rng = random.Random(11)
    rows = []
    for n in range(60):
        h = Histogram()
        for _ in range(rng.randrange(1, 300)):
            h.add(rng.lognormvariate(3.0, 0.4 if n % 3 else 3.0), count=rng.choice([1, 1, 2, 10**12]))
        if n % 7 == 0:
            h.add(0.0000001)
            h.add(1e12)
        rows.append(h.encode())
    counts = [0] * rollups.SPAN
    sums = [0.0] * rollups.SPAN
    for data in rows:
        for bucket, (count, total) in Histogram.decode(data)._buckets.items():
            counts[bucket - rollups.FIRST_BUCKET] += count
            sums[bucket - rollups.FIRST_BUCKET] = sums[bucket - rollups.FIRST_BUCKET] + total
    merged, halves = Accumulator(), [Accumulator(), Accumulator()]
    for i, data in enumerate(rows):
        merged.add_encoded(data)
        halves[i % 2].add_encoded(data)
    assert merged.counts == counts and merged.sums == sums
    halves[0].add(halves[1])
    assert halves[0].counts == counts


def test_outcomes_given_as_members_or_strings_count_alike() -> None:
    # `fold` passes strings, stored rows may pass `Outcome` members: both are compared, latencies and statuses kept.
    one, other = Cell(), Cell()
    for outcome in (Outcome.MATCH, Outcome.DIFF, Outcome.SHADOW_ERROR, Outcome.SKIPPED):
        one.add(outcome=outcome, primary_ms=5, shadow_ms=6, primary_status=None, shadow_status=502)
        other.add(outcome=outcome.value, primary_ms=5, shadow_ms=6, primary_status=None, shadow_status=502)
    assert one.statuses == other.statuses == {"- 502": 3}
    assert one.primary.count == other.primary.count == 2


def test_minute_keys_are_the_floor_of_each_exchange_time_across_many_minutes() -> None:
    # key_of remembers minute starts: exchanges back and forth over hundreds of minutes (past what it remembers)
    # must each land in their own minute.
    rng = random.Random(3)
    start = datetime(2026, 11, 30, 23, 58, 30, tzinfo=UTC)
    for _ in range(2000):
        at = start + timedelta(seconds=rng.uniform(-20_000, 20_000))
        key = rollups.key_of(Comparison(f.exchange(started_at=at), "GET /x", Outcome.MATCH))
        assert key.start == floor_time(at, GRAINS[0]) and key.start.tzinfo is UTC
