"""What the rows mean: ratios measured in the same run, the issue's targets, and how noisy the machine was."""

from __future__ import annotations

from dataclasses import dataclass

from bench.runner import Outcome, Row, StallRow

MIB = 1024 * 1024
NOISY_PCT = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    """One goal from the issue and what this run measured against it."""

    name: str
    goal: str
    measured: str
    met: bool | None
    """None when the run did not measure it."""
    noisy: bool = False
    """Other work on the machine took more than NOISY_PCT of the CPU during the runs behind it: the verdict is weak."""


def _find(rows: list[Row], key: str, concurrency: int) -> Row | None:
    return next((r for r in rows if r.key == key and r.concurrency == concurrency), None)


def ratio(rows: list[Row], row: Row, against: str) -> float | None:
    """`row`'s throughput over `against`'s at the same concurrency, both from this run."""
    other = _find(rows, against, row.concurrency)
    return row.result.rps / other.result.rps if other and other.result.rps else None


def cpu_ratio(rows: list[Row], row: Row, *, box: bool = False) -> float | None:
    """nginx's CPU per request over `row`'s: the throughput ratio the two would reach if CPU-bound on a quiet machine.

    With `box`, the CPU of the whole benchmark (load generator and upstreams too, as on this shared 2-core box);
    without, the system's alone (as with cores of its own).
    """
    other = _find(rows, "nginx-mirror", row.concurrency)
    if other is None:
        return None
    mine, theirs = (
        (row.box_cpu_us_per_request, other.box_cpu_us_per_request)
        if box
        else (row.cpu_us_per_request, other.cpu_us_per_request)
    )
    return theirs / mine if mine and theirs else None


def contention(outcome: Outcome) -> tuple[float, float] | None:
    """Median and highest share of the machine that processes outside the benchmark used during measurements."""
    measured = [r.other_cpu_pct for r in outcome.rows] + [s.other_cpu_pct for s in outcome.stall]
    shares = sorted(x for x in measured if x is not None)
    return (shares[len(shares) // 2], shares[-1]) if shares else None


def added_p50(rows: list[Row], key: str) -> float | None:
    """p50 at concurrency 1 through `key` minus p50 going direct, in ms."""
    row, direct = _find(rows, key, 1), _find(rows, "direct", 1)
    return row.result.p50_ms - direct.result.p50_ms if row and direct else None


def targets(outcome: Outcome) -> list[Target]:
    """The issue's four goals, checked against this run."""
    found: list[Target] = []
    for c in (16, 64):
        row = _find(outcome.rows, "shadowdiff-2w", c)
        r = ratio(outcome.rows, row, "nginx-mirror") if row else None
        measured = f"{r:.2f}×" if r is not None else "not measured"
        by_cpu = cpu_ratio(outcome.rows, row) if row else None
        by_box = cpu_ratio(outcome.rows, row, box=True) if row else None
        if by_cpu is not None and by_box is not None:
            measured += f"; by CPU per request: {by_box:.2f}× whole box, {by_cpu:.2f}× proxy alone"
        goal = "mirroring on, 2 workers ≥ 0.4× nginx mirror"
        noisy = _noisy(row, _find(outcome.rows, "nginx-mirror", c))
        found.append(Target(f"throughput c={c}", goal, measured, _ge(r, 0.4), noisy))
    added = added_p50(outcome.rows, "shadowdiff-1w")
    measured = f"{added:+.3f} ms" if added is not None else "not measured"
    met = None if added is None else added < 1
    noisy = _noisy(_find(outcome.rows, "shadowdiff-1w", 1), _find(outcome.rows, "direct", 1))
    found.append(Target("added p50 c=1", "mirroring on < 1 ms over direct", measured, met, noisy))
    healthy = {s.load: s for s in outcome.stall if s.shadow == "healthy"}
    for stall in (s for s in outcome.stall if s.shadow != "healthy" and s.paced):
        base = healthy.get(stall.load)
        r = stall.result.p99_ms / base.result.p99_ms if base and base.result.p99_ms else None
        measured = f"{r:.2f}× ({stall.result.p99_ms:.2f} vs {base.result.p99_ms:.2f} ms)" if r and base else "—"
        goal = "primary p99 within 10% of healthy"
        noisy = _noisy(stall, base)
        found.append(Target(f"shadow {stall.shadow}, {stall.load}", goal, measured, _le(r, 1.10), noisy))
    every = outcome.all_stall or outcome.stall
    reference = _worst_growth(every, "healthy")
    for shadow in dict.fromkeys(s.shadow for s in every if s.shadow != "healthy"):
        sustained = _worst_sustained(every, shadow)
        ramp = _worst_growth(every, shadow)
        if sustained is not None:
            before, peak, growth = sustained
            measured = f"{before / MIB:.0f} → peak {peak / MIB:.0f} MiB ({growth:+.0%})"
            if ramp is not None:
                measured += f"; from idle through the ramp: {ramp[2]:+.0%}"
                if reference is not None:
                    measured += f" (healthy shadow: {reference[2]:+.0%})"
            goal = "flat while stalled (< 10% growth during the sustained run)"
            found.append(Target(f"proxy RSS, shadow {shadow}", goal, measured, growth < 0.10))
        elif ramp is not None:
            first, last, growth = ramp
            measured = f"{first / MIB:.0f} → {last / MIB:.0f} MiB ({growth:+.0%}) from idle through the ramp"
            found.append(Target(f"proxy RSS, shadow {shadow}", "flat (< 10% growth)", measured, growth < 0.10))
        versus = _worst_versus_healthy(every, shadow)
        if versus is not None:
            mine, theirs, extra = versus
            measured = f"{mine / MIB:.0f} vs {theirs / MIB:.0f} MiB ({extra:+.0%})"
            goal = "no more than healthy's + 10% after the same runs"
            found.append(Target(f"proxy RSS vs healthy, shadow {shadow}", goal, measured, extra < 0.10))
    return found


def _worst_growth(every: list[StallRow], shadow: str) -> tuple[int, int, float] | None:
    """RSS before the first and after the last run of one proxy process (one per shadow and round), worst round."""
    worst = None
    for round_ in sorted({s.round for s in every}):
        life = [s for s in every if s.shadow == shadow and s.round == round_]
        if life and life[0].rss_before:
            first, last = life[0].rss_before, life[-1].rss_after
            growth = (last - first) / first
            if worst is None or growth > worst[2]:
                worst = (first, last, growth)
    return worst


def _worst_sustained(every: list[StallRow], shadow: str) -> tuple[int, int, float] | None:
    """RSS before the sustained run and the peak during it, worst round: the growth the stall itself adds."""
    worst = None
    for one in every:
        if one.shadow == shadow and one.sustained and one.rss_before:
            peak = max(one.rss_peak, one.rss_after)
            growth = (peak - one.rss_before) / one.rss_before
            if worst is None or growth > worst[2]:
                worst = (one.rss_before, peak, growth)
    return worst


def _worst_versus_healthy(every: list[StallRow], shadow: str) -> tuple[int, int, float] | None:
    """RSS after the last run with `shadow` against the healthy shadow's in the same round, worst round."""
    worst = None
    for round_ in sorted({s.round for s in every}):
        mine = [s for s in every if s.shadow == shadow and s.round == round_]
        theirs = [s for s in every if s.shadow == "healthy" and s.round == round_]
        if mine and theirs and theirs[-1].rss_after:
            extra = mine[-1].rss_after / theirs[-1].rss_after - 1
            if worst is None or extra > worst[2]:
                worst = (mine[-1].rss_after, theirs[-1].rss_after, extra)
    return worst


def _noisy(*measured: Row | StallRow | None) -> bool:
    return any(m is not None and (m.other_cpu_pct or 0) > NOISY_PCT for m in measured)


def _ge(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _le(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound
