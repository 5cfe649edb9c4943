"""The scenarios: start what each needs, warm up, drive load at each concurrency, collect rows, stop everything."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadResult, run_load, run_paced_load
from bench.nginx import nginx_path
from bench.procs import Child, cpu_seconds, free_port, machine_busy_seconds, own_cpu_seconds, rss_bytes
from bench.systems import (
    PATH,
    REPO,
    SHADOWDIFF_MODES,
    Upstreams,
    metric_values,
    run_shadowdiff,
    run_upstream,
    start_system,
    upstream_requests,
)

CONCURRENCY = (1, 16, 64)
SYSTEMS = ("direct", "shadowdiff-off", "shadowdiff-1w", "shadowdiff-2w", "nginx-mirror")
SECTIONS = {
    "compare": "bench.compare_bench",
    "store": "bench.store_bench",
    "handoff": "bench.handoff_bench",
    "analysis": "bench.analysis_bench",
    "drops": "bench.drop_bench",
    "large-bodies": "bench.large_bodies",
    "replay": "bench.replay_bench",
    "rollup-reports": "bench.rollup_bench",
    "replicas": "bench.replica_bench",
    "outage": "bench.outage_bench",
}
BODY_SYSTEMS = ("direct", "shadowdiff-2w", "nginx-mirror")
BODY_WORKLOADS = {"700 KiB body": "/bench/big", "streamed, 8 × 1 KiB": "/bench/stream"}
"""The body rows: path on the stand-in upstreams (bench.upstream) per kind of response."""
BODY_CONCURRENCY = 16
SCENARIOS = (*SYSTEMS, "stall", "bodies", *SECTIONS)
STALL_SHADOWS = {"healthy": [], "slow 2 s": ["--delay", "2"], "never answers": ["--stall"]}
SUSTAINED = "c=64 sustained"
"""The last stall run: the same closed loop as c=64 again, SUSTAIN_FACTOR times as long, RSS sampled throughout.
After the ramp (idle → paced → c=16 → c=64) the proxy is at its working size for that load; what this run adds is
what the stall itself keeps adding, which is what "memory stays flat while the shadow is stalled" is about."""
SUSTAIN_FACTOR = 3
RSS_SAMPLE_SECONDS = 0.25


@dataclass
class Options:
    """How long and what to run."""

    seconds: float = 8.0
    warmup: float = 2.0
    rounds: int = 1
    stall_rate: float = 300.0
    tool: str = "wrk"
    only: str | None = None
    workdir: Path = Path("/tmp")
    section_args: dict[str, list[str]] = field(default_factory=dict)
    """Extra arguments for a section's module, by section name."""
    progress: Callable[[str], None] = print


@dataclass
class Row:
    """One system at one concurrency."""

    key: str
    label: str
    concurrency: int
    result: LoadResult
    cpu_us_per_request: float | None = None
    box_cpu_us_per_request: float | None = None
    """CPU of everything the benchmark runs (system, upstreams, load generator) per request: what bounds req/s when
    they all share the cores of a quiet machine."""
    """CPU time of the system under test (proxy / nginx / upstream for direct), all its processes, per request."""
    upstream_cpu_pct: float | None = None
    """How busy the primary stand-in was: near 100% would mean it, not the system, was the bottleneck."""
    mirrored: float | None = None
    """Requests the shadow received / requests the primary received, during the run."""
    analysed: float | None = None
    """shadowdiff with mirroring on: the share of the requests answered during the run that were not dropped from
    analysis (compared and stored, or still queued), from its /metrics (`shadowdiff_dropped_total`)."""
    other_cpu_pct: float | None = None
    """Machine CPU used by processes that are not part of the benchmark (other work on a shared box), % of all cores."""
    round: int = 0
    workload: str = "1 KB JSON"
    """What the upstream answers: the 1 KB JSON body, or one of BODY_WORKLOADS."""


@dataclass
class StallRow:
    """shadowdiff (mirroring on, 1 worker) with a healthy, slow or dead shadow."""

    shadow: str
    load: str
    """"N req/s paced" (open loop) or "c=N" (closed loop)."""
    result: LoadResult
    rss_before: int
    rss_after: int
    other_cpu_pct: float | None = None
    round: int = 0
    rss_peak: int = 0
    """The highest RSS sampled during the run (every RSS_SAMPLE_SECONDS), 0 when not sampled."""

    @property
    def paced(self) -> bool:
        return self.load.endswith("paced")

    @property
    def sustained(self) -> bool:
        return self.load == SUSTAINED


@dataclass
class Outcome:
    """Everything one run measured."""

    rows: list[Row] = field(default_factory=list)
    stall: list[StallRow] = field(default_factory=list)
    all_rows: list[Row] = field(default_factory=list)
    """With several rounds, every run; `rows` keeps the best of each."""
    all_stall: list[StallRow] = field(default_factory=list)
    bodies: list[Row] = field(default_factory=list)
    """Large and streamed responses (BODY_WORKLOADS) through each of BODY_SYSTEMS."""
    all_bodies: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Counters read around a load run."""

    at: float
    system_cpu: float
    primary_cpu: float
    ours_cpu: float
    """Everything the benchmark runs: system, upstreams, this process and wrk."""
    machine_busy: float

    @classmethod
    def take(cls, system: Child, primary: Child, shadow: Child) -> _Snapshot:
        return cls(
            at=time.monotonic(),
            system_cpu=cpu_seconds(system.pid),
            primary_cpu=cpu_seconds(primary.pid),
            ours_cpu=cpu_seconds(system.pid, primary.pid, shadow.pid) + own_cpu_seconds(),
            machine_busy=machine_busy_seconds(),
        )

    def other_cpu_pct(self, later: _Snapshot) -> float:
        """Share of all cores that processes outside the benchmark used between the two snapshots."""
        foreign = (later.machine_busy - self.machine_busy) - (later.ours_cpu - self.ours_cpu)
        return max(0.0, foreign / max(later.at - self.at, 1e-9) / (os.cpu_count() or 1) * 100)


def _per_request(cpu_seconds: float, result: LoadResult) -> float | None:
    return cpu_seconds / result.requests * 1e6 if result.requests else None


def measure(
    key: str,
    label: str,
    port: int,
    system: Child,
    ups: Upstreams,
    concurrency: int,
    opts: Options,
    path: str = PATH,
    workload: str = "1 KB JSON",
    admin: int | None = None,
) -> Row:
    """One load run against 127.0.0.1:`port`, with CPU times and the upstreams' request counts around it (and, with
    `admin`, shadowdiff's drops from analysis)."""
    dropped_before = _dropped(admin)
    primary_before, shadow_before = upstream_requests(ups.primary_port), upstream_requests(ups.shadow_port)
    before = _Snapshot.take(system, ups.primary, ups.shadow)
    result = run_load(f"http://127.0.0.1:{port}{path}", concurrency, opts.seconds, tool=opts.tool)
    after = _Snapshot.take(system, ups.primary, ups.shadow)
    time.sleep(0.2)  # let the last mirrored requests land before counting them
    primary = upstream_requests(ups.primary_port) - primary_before
    shadow = upstream_requests(ups.shadow_port) - shadow_before
    dropped_after = _dropped(admin)
    analysed = None
    if dropped_before is not None and dropped_after is not None and result.requests:
        analysed = max(0.0, 1.0 - (dropped_after - dropped_before) / result.requests)
    wall = after.at - before.at
    row = Row(
        key=key,
        label=label,
        concurrency=concurrency,
        result=result,
        cpu_us_per_request=_per_request(after.system_cpu - before.system_cpu, result),
        box_cpu_us_per_request=_per_request(after.ours_cpu - before.ours_cpu, result),
        upstream_cpu_pct=(after.primary_cpu - before.primary_cpu) / wall * 100,
        mirrored=shadow / primary if primary and key != "direct" else None,
        analysed=analysed,
        other_cpu_pct=before.other_cpu_pct(after),
        workload=workload,
    )
    opts.progress(
        f"  {label:<38} {workload:<20} c={concurrency:<3} {result.rps:>8,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
        f"  p99 {result.p99_ms:6.2f} ms  (other processes: {row.other_cpu_pct:.0f}% CPU)"
    )
    return row


def _dropped(admin: int | None) -> float | None:
    """shadowdiff's exchanges dropped from analysis so far (every reason), None without an admin port."""
    return None if admin is None else sum(metric_values(admin, "shadowdiff_dropped_total").values())


def _admin_port(key: str) -> int | None:
    """An admin port for the shadowdiff systems that mirror (their drops are read from /metrics)."""
    return free_port() if key in SHADOWDIFF_MODES and SHADOWDIFF_MODES[key][1] else None


def warm_up(port: int, opts: Options, path: str = PATH) -> None:
    """Open connections, fill pools and caches; the numbers are thrown away."""
    if opts.warmup > 0:
        run_load(f"http://127.0.0.1:{port}{path}", 16, opts.warmup, tool=opts.tool)


LABELS = {
    "direct": "direct to the upstream",
    "shadowdiff-off": "shadowdiff, mirroring off (1 worker)",
    "shadowdiff-1w": "shadowdiff, mirroring on (1 worker)",
    "shadowdiff-2w": "shadowdiff, mirroring on (2 workers)",
    "nginx-mirror": "nginx proxy_pass + mirror (2 workers)",
}


def run_system(key: str, ups: Upstreams, opts: Options, outcome: Outcome) -> None:
    """Start one system, warm it up, measure it at every concurrency."""
    if key == "nginx-mirror" and nginx_path() is None:
        outcome.skipped[key] = "nginx is not installed (apt-get install -y nginx-light)"
        return
    opts.progress(f"{LABELS[key]}:")
    admin = _admin_port(key)
    with start_system(key, ups, opts.workdir, admin_port=admin) as (child, port):
        warm_up(port, opts)
        for concurrency in CONCURRENCY:
            outcome.rows.append(measure(key, LABELS[key], port, child, ups, concurrency, opts, admin=admin))


def run_bodies(ups: Upstreams, opts: Options, outcome: Outcome) -> None:
    """700 KiB bodies and streamed bodies through direct, shadowdiff (2 workers, mirroring on) and nginx mirror.

    shadowdiff reads a 700 KiB body whole (under max_response_body) and mirrors and compares it; the streamed one
    (chunked, one part per upstream loop turn) goes to the client part by part while a copy is kept.
    """
    opts.progress(f"large and streamed responses (c={BODY_CONCURRENCY}):")
    for key in BODY_SYSTEMS:
        if key == "nginx-mirror" and nginx_path() is None:
            outcome.skipped["bodies: nginx-mirror"] = "nginx is not installed (apt-get install -y nginx-light)"
            continue
        admin = _admin_port(key)
        with start_system(key, ups, opts.workdir, admin_port=admin) as (child, port):
            for workload, path in BODY_WORKLOADS.items():
                warm_up(port, opts, path)
                row = measure(key, LABELS[key], port, child, ups, BODY_CONCURRENCY, opts, path, workload, admin)
                outcome.bodies.append(row)


def run_stall(ups: Upstreams, opts: Options, outcome: Outcome) -> None:
    """Primary latency and proxy memory through shadowdiff when the shadow is healthy, slow (2 s) or never answers.

    The p99 that the target is about comes from a paced run (a fixed rate well below capacity): at saturation a
    closed loop's p99 is mostly queueing and scheduler noise. The closed-loop runs show throughput and memory under
    pressure.
    """
    sustained = opts.seconds * SUSTAIN_FACTOR
    opts.progress(
        f"shadow stall (shadowdiff, mirroring on, 1 worker; paced at {opts.stall_rate:g} req/s, c=16, c=64, "
        f"then c=64 for {sustained:g} s):"
    )
    for shadow, extra in STALL_SHADOWS.items():
        with contextlib.ExitStack() as stack:
            shadow_child, shadow_port = ups.shadow, ups.shadow_port
            if extra:
                shadow_child, shadow_port = stack.enter_context(
                    run_upstream(f"shadow-{extra[0][2:]}", opts.workdir, *extra)
                )
            ports = {"primary_port": ups.primary_port, "shadow_port": shadow_port}
            name = f"stall-{shadow.split()[0]}"
            proxy, port = stack.enter_context(run_shadowdiff(name, opts.workdir, workers=1, mirror=True, **ports))
            warm_up(port, opts)
            for load in (f"{opts.stall_rate:g} req/s paced", "c=16", "c=64", SUSTAINED):
                row = _stall_run(shadow, load, port, (proxy, ups.primary, shadow_child), opts)
                outcome.stall.append(row)


def _stall_run(shadow: str, load: str, port: int, processes: tuple[Child, Child, Child], opts: Options) -> StallRow:
    """One paced or closed-loop run through the proxy (the first of `processes`), with its RSS around and during it."""
    url = f"http://127.0.0.1:{port}{PATH}"
    proxy = processes[0]
    rss_before, cpu_before = rss_bytes(proxy.pid), _Snapshot.take(*processes)
    with _RssSampler(proxy.pid) as sampler:
        if load.endswith("paced"):
            result = run_paced_load(url, opts.stall_rate, opts.seconds)
        else:
            concurrency = int(load.removeprefix("c=").split()[0])
            seconds = opts.seconds * (SUSTAIN_FACTOR if load == SUSTAINED else 1)
            result = run_load(url, concurrency, seconds, tool=opts.tool)
    rss_after, other = rss_bytes(proxy.pid), cpu_before.other_cpu_pct(_Snapshot.take(*processes))
    peak = max(sampler.peak, rss_after)
    opts.progress(
        f"  shadow {shadow:<14} {load:<18} {result.rps:>7,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
        f"  p99 {result.p99_ms:7.2f} ms  RSS {rss_before / 2**20:.0f} → {rss_after / 2**20:.0f} MiB"
        f" (peak {peak / 2**20:.0f})  (other processes: {other:.0f}% CPU)"
    )
    return StallRow(shadow, load, result, rss_before, rss_after, other, rss_peak=peak)


class _RssSampler:
    """The highest RSS of a process tree, read every RSS_SAMPLE_SECONDS in a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            if self._stop.wait(RSS_SAMPLE_SECONDS):
                return


def run_section(name: str, opts: Options, outcome: Outcome) -> None:
    """Another engineer's bench module, run as it is, its output kept verbatim."""
    module = SECTIONS[name]
    if not (REPO / (module.replace(".", "/") + ".py")).exists():
        outcome.skipped[name] = f"{module} does not exist yet"
        return
    opts.progress(f"section {module}:")
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", module, *opts.section_args.get(name, [])],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=REPO,
            check=False,
        )
    except subprocess.TimeoutExpired:
        outcome.skipped[name] = f"{module} did not finish within 900 s"
        return
    output = (done.stdout + ("\n" + done.stderr if done.returncode else "")).strip()
    outcome.sections[name] = {
        "module": module,
        "returncode": done.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "output": output,
    }


def run(opts: Options) -> Outcome:
    """Every scenario (or just `opts.only`), upstreams started once and everything stopped at the end.

    With several rounds, each round runs the measured scenarios again, in reverse order every other round so that a
    drift in background load does not always favour the same system; the best run of each is kept (see `best`).
    """
    outcome = Outcome()
    wanted = [opts.only] if opts.only else list(SCENARIOS)
    measured = [name for name in wanted if name in (*SYSTEMS, "stall", "bodies")]
    with contextlib.ExitStack() as stack:
        ups = None
        if measured:
            primary, primary_port = stack.enter_context(run_upstream("primary", opts.workdir))
            shadow, shadow_port = stack.enter_context(run_upstream("shadow", opts.workdir))
            ups = Upstreams(primary, primary_port, shadow, shadow_port)
        for round_ in range(opts.rounds):
            if opts.rounds > 1:
                opts.progress(f"round {round_ + 1} of {opts.rounds}")
            for name in measured if round_ % 2 == 0 else measured[::-1]:
                assert ups is not None
                if name not in outcome.skipped:
                    _attempt(name, outcome, functools.partial(_measure_one, name, ups, opts, outcome, round_), opts)
        for section in (n for n in wanted if n in SECTIONS):
            _attempt(section, outcome, functools.partial(run_section, section, opts, outcome), opts)
    outcome.all_rows, outcome.all_stall, outcome.all_bodies = outcome.rows, outcome.stall, outcome.bodies
    outcome.rows, outcome.stall = best(outcome.all_rows, outcome.all_stall)
    outcome.bodies = best_bodies(outcome.all_bodies)
    return outcome


def _measure_one(name: str, ups: Upstreams, opts: Options, outcome: Outcome, round_: int) -> None:
    before_rows, before_stall, before_bodies = len(outcome.rows), len(outcome.stall), len(outcome.bodies)
    if name == "stall":
        run_stall(ups, opts, outcome)
    elif name == "bodies":
        run_bodies(ups, opts, outcome)
    else:
        run_system(name, ups, opts, outcome)
    for row in outcome.rows[before_rows:] + outcome.bodies[before_bodies:]:
        row.round = round_
    for stall in outcome.stall[before_stall:]:
        stall.round = round_


def _attempt(name: str, outcome: Outcome, action: Callable[[], None], opts: Options) -> None:
    """Run one scenario; a failure is recorded as skipped (with its first line) and the run goes on."""
    try:
        action()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        outcome.skipped[name] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        opts.progress(f"  {name} failed: {exc}")


def best(rows: list[Row], stall: list[StallRow]) -> tuple[list[Row], list[StallRow]]:
    """Per system and concurrency the run with the most req/s; per shadow and load the paced run with the lowest p99
    (the closed-loop one with the most req/s). On a shared machine the best run is the least disturbed one."""
    chosen: dict[tuple[str, int], Row] = {}
    for row in rows:
        key = (row.key, row.concurrency)
        if key not in chosen or row.result.rps > chosen[key].result.rps:
            chosen[key] = row
    picked: dict[tuple[str, str], StallRow] = {}
    for one in stall:
        seen = picked.get((one.shadow, one.load))
        if seen is None or (one.result.p99_ms < seen.result.p99_ms if one.paced else one.result.rps > seen.result.rps):
            picked[(one.shadow, one.load)] = one
    systems = {key: i for i, key in enumerate(SYSTEMS)}
    shadows = {name: i for i, name in enumerate(STALL_SHADOWS)}
    return (
        sorted(chosen.values(), key=lambda r: (systems[r.key], r.concurrency)),
        sorted(picked.values(), key=lambda r: (shadows[r.shadow], not r.paced, r.result.concurrency, r.sustained)),
    )


def best_bodies(rows: list[Row]) -> list[Row]:
    """Per system and workload, the run with the most req/s, in BODY_SYSTEMS then BODY_WORKLOADS order."""
    chosen: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (row.key, row.workload)
        if key not in chosen or row.result.rps > chosen[key].result.rps:
            chosen[key] = row
    workloads = {name: i for i, name in enumerate(BODY_WORKLOADS)}
    systems = {key: i for i, key in enumerate(BODY_SYSTEMS)}
    return sorted(chosen.values(), key=lambda r: (workloads.get(r.workload, 99), systems.get(r.key, 99)))
