"""The scenarios: start what each needs, warm up, drive load at each concurrency, collect rows, stop everything."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadResult, run_load, run_paced_load
from bench.nginx import nginx_path, run_nginx
from bench.procs import Child, cpu_seconds, free_port, machine_busy_seconds, own_cpu_seconds, rss_bytes, spawn

REPO = Path(__file__).resolve().parent.parent
PATH = "/bench/orders/42"  # falls in the "default" service
CONCURRENCY = (1, 16, 64)
SYSTEMS = ("direct", "shadowdiff-off", "shadowdiff-1w", "shadowdiff-2w", "nginx-mirror")
SECTIONS = {"compare": "bench.compare_bench", "store": "bench.store_bench"}
SCENARIOS = (*SYSTEMS, "stall", *SECTIONS)
STALL_SHADOWS = {"healthy": [], "slow 2 s": ["--delay", "2"], "never answers": ["--stall"]}


@dataclass
class Options:
    """How long and what to run."""

    seconds: float = 8.0
    warmup: float = 2.0
    stall_rate: float = 300.0
    tool: str = "wrk"
    only: str | None = None
    workdir: Path = Path("/tmp")
    progress: Callable[[str], None] = print


@dataclass
class Row:
    """One system at one concurrency."""

    key: str
    label: str
    concurrency: int
    result: LoadResult
    cpu_us_per_request: float | None = None
    """CPU time of the system under test (proxy / nginx / upstream for direct), all its processes, per request."""
    upstream_cpu_pct: float | None = None
    """How busy the primary stand-in was: near 100% would mean it, not the system, was the bottleneck."""
    mirrored: float | None = None
    """Requests the shadow received / requests the primary received, during the run."""
    other_cpu_pct: float | None = None
    """Machine CPU used by processes that are not part of the benchmark (other work on a shared box), % of all cores."""


@dataclass
class StallRow:
    """shadowdiff (mirroring on, 1 worker) with a healthy, slow or dead shadow."""

    shadow: str
    load: str
    """"N req/s paced" (open loop) or "c=N" (closed loop)."""
    result: LoadResult
    rss_before: int
    rss_after: int

    @property
    def paced(self) -> bool:
        return self.load.endswith("paced")


@dataclass
class Outcome:
    """Everything one run measured."""

    rows: list[Row] = field(default_factory=list)
    stall: list[StallRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Upstreams:
    """The primary and shadow stand-ins every scenario shares."""

    primary: Child
    primary_port: int
    shadow: Child
    shadow_port: int


def upstream_requests(port: int) -> int:
    """How many requests the stand-in on `port` has served."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=5) as response:
        count: int = json.loads(response.read())["requests"]
        return count


@contextlib.contextmanager
def run_upstream(name: str, opts: Options, *extra: str) -> Iterator[tuple[Child, int]]:
    """A stand-in upstream subprocess on a fresh port."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), *extra]
    with spawn(name, argv, logdir=opts.workdir, port=port) as child:
        yield child, port


def shadowdiff_command() -> list[str] | None:
    """How to start `shadowdiff proxy`, or None while the CLI has no such command."""
    script = Path(sys.executable).with_name("shadowdiff")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from proxy.cli import main; main()"]
    try:
        done = subprocess.run([*command, "proxy", "--help"], capture_output=True, timeout=60, check=False, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return command if done.returncode == 0 else None


def _clean_env() -> dict[str, str]:
    """Our environment without the caller's SHADOWDIFF_* / USE_V2_* settings; logging at warning, as nginx's is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOWDIFF_", "USE_V2_"))}
    return {**env, "SHADOWDIFF_LOG_LEVEL": "warning"}


def _wait_proxied(url: str, child: Child, timeout: float = 30.0) -> None:
    """Until a request through the proxy comes back 200 (workers may start after the port is bound)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode}:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"status {response.status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} did not proxy {url} within {timeout:.0f} s ({last}):\n{child.log_tail()}")


@contextlib.contextmanager
def run_shadowdiff(
    name: str, opts: Options, *, primary_port: int, shadow_port: int, workers: int, mirror: bool
) -> Iterator[tuple[Child, int]]:
    """`shadowdiff proxy` with V1 as primary, V2 as shadow, its own SQLite store and a one-service config."""
    command = shadowdiff_command()
    if command is None:
        raise RuntimeError("`shadowdiff proxy` is not available yet (proxy/cli.py has no proxy command)")
    port, admin_port = free_port(), free_port()
    config = opts.workdir / f"{name}.toml"
    config.write_text(f'[services.default]\nprefixes = ["/"]\nmirror = {"true" if mirror else "false"}\n')
    argv = [*command, "proxy", "--v1", f"http://127.0.0.1:{primary_port}", "--v2", f"http://127.0.0.1:{shadow_port}"]
    argv += ["--port", str(port), "--admin-port", str(admin_port), "--workers", str(workers)]
    argv += ["--database-url", f"sqlite+aiosqlite:///{opts.workdir / name}.db", "--config", str(config)]
    with spawn(name, argv, logdir=opts.workdir, env=_clean_env(), port=port, ready_timeout=60) as child:
        _wait_proxied(f"http://127.0.0.1:{port}{PATH}", child)
        yield child, port


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Counters read around a load run."""

    at: float
    system_cpu: float
    primary_cpu: float
    ours_cpu: float
    machine_busy: float

    @classmethod
    def take(cls, system: Child, ups: Upstreams) -> _Snapshot:
        return cls(
            at=time.monotonic(),
            system_cpu=cpu_seconds(system.pid),
            primary_cpu=cpu_seconds(ups.primary.pid),
            ours_cpu=cpu_seconds(system.pid, ups.primary.pid, ups.shadow.pid) + own_cpu_seconds(),
            machine_busy=machine_busy_seconds(),
        )


def measure(key: str, label: str, port: int, system: Child, ups: Upstreams, concurrency: int, opts: Options) -> Row:
    """One load run against 127.0.0.1:`port`, with CPU times and the upstreams' request counts around it."""
    primary_before, shadow_before = upstream_requests(ups.primary_port), upstream_requests(ups.shadow_port)
    before = _Snapshot.take(system, ups)
    result = run_load(f"http://127.0.0.1:{port}{PATH}", concurrency, opts.seconds, tool=opts.tool)
    after = _Snapshot.take(system, ups)
    time.sleep(0.2)  # let the last mirrored requests land before counting them
    primary = upstream_requests(ups.primary_port) - primary_before
    shadow = upstream_requests(ups.shadow_port) - shadow_before
    wall = after.at - before.at
    foreign = (after.machine_busy - before.machine_busy) - (after.ours_cpu - before.ours_cpu)
    row = Row(
        key=key,
        label=label,
        concurrency=concurrency,
        result=result,
        cpu_us_per_request=(after.system_cpu - before.system_cpu) / result.requests * 1e6 if result.requests else None,
        upstream_cpu_pct=(after.primary_cpu - before.primary_cpu) / wall * 100,
        mirrored=shadow / primary if primary and key != "direct" else None,
        other_cpu_pct=max(0.0, foreign / wall / (os.cpu_count() or 1) * 100),
    )
    opts.progress(
        f"  {label:<38} c={concurrency:<3} {result.rps:>8,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
        f"  p99 {result.p99_ms:6.2f} ms  (other processes: {row.other_cpu_pct:.0f}% CPU)"
    )
    return row


def warm_up(port: int, opts: Options) -> None:
    """Open connections, fill pools and caches; the numbers are thrown away."""
    if opts.warmup > 0:
        run_load(f"http://127.0.0.1:{port}{PATH}", 16, opts.warmup, tool=opts.tool)


@contextlib.contextmanager
def start_system(key: str, ups: Upstreams, opts: Options) -> Iterator[tuple[Child, int]]:
    """The system under test for `key`: the primary itself, shadowdiff in some mode, or nginx."""
    if key == "direct":
        yield ups.primary, ups.primary_port
    elif key == "nginx-mirror":
        port = free_port()
        ports = {"primary_port": ups.primary_port, "shadow_port": ups.shadow_port}
        with run_nginx(opts.workdir / "nginx", port=port, logdir=opts.workdir, **ports) as child:
            yield child, port
    else:
        workers, mirror = {"shadowdiff-off": (1, False), "shadowdiff-1w": (1, True), "shadowdiff-2w": (2, True)}[key]
        ports = {"primary_port": ups.primary_port, "shadow_port": ups.shadow_port}
        with run_shadowdiff(key, opts, workers=workers, mirror=mirror, **ports) as started:
            yield started


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
    with start_system(key, ups, opts) as (child, port):
        warm_up(port, opts)
        for concurrency in CONCURRENCY:
            outcome.rows.append(measure(key, LABELS[key], port, child, ups, concurrency, opts))


def run_stall(ups: Upstreams, opts: Options, outcome: Outcome) -> None:
    """Primary latency and proxy memory through shadowdiff when the shadow is healthy, slow (2 s) or never answers.

    The p99 that the target is about comes from a paced run (a fixed rate well below capacity): at saturation a
    closed loop's p99 is mostly queueing and scheduler noise. The closed-loop runs show throughput and memory under
    pressure.
    """
    opts.progress(f"shadow stall (shadowdiff, mirroring on, 1 worker; paced at {opts.stall_rate:g} req/s, c=16, c=64):")
    url = f"http://127.0.0.1:{{port}}{PATH}"
    for shadow, extra in STALL_SHADOWS.items():
        with contextlib.ExitStack() as stack:
            shadow_port = ups.shadow_port
            if extra:
                _, shadow_port = stack.enter_context(run_upstream(f"shadow-{extra[0][2:]}", opts, *extra))
            ports = {"primary_port": ups.primary_port, "shadow_port": shadow_port}
            name = f"stall-{shadow.split()[0]}"
            child, port = stack.enter_context(run_shadowdiff(name, opts, workers=1, mirror=True, **ports))
            warm_up(port, opts)
            for load in (f"{opts.stall_rate:g} req/s paced", "c=16", "c=64"):
                before = rss_bytes(child.pid)
                if load.endswith("paced"):
                    result = run_paced_load(url.format(port=port), opts.stall_rate, opts.seconds)
                else:
                    result = run_load(url.format(port=port), int(load[2:]), opts.seconds, tool=opts.tool)
                after = rss_bytes(child.pid)
                outcome.stall.append(StallRow(shadow, load, result, before, after))
                opts.progress(
                    f"  shadow {shadow:<14} {load:<18} {result.rps:>7,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                    f"  p99 {result.p99_ms:7.2f} ms  RSS {before / 2**20:.0f} → {after / 2**20:.0f} MiB"
                )


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
            [sys.executable, "-m", module], capture_output=True, text=True, timeout=900, cwd=REPO, check=False
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
    """Every scenario (or just `opts.only`), upstreams started once and everything stopped at the end."""
    outcome = Outcome()
    wanted = [opts.only] if opts.only else list(SCENARIOS)
    needs_upstreams = any(name in (*SYSTEMS, "stall") for name in wanted)
    with contextlib.ExitStack() as stack:
        ups = None
        if needs_upstreams:
            primary, primary_port = stack.enter_context(run_upstream("primary", opts))
            shadow, shadow_port = stack.enter_context(run_upstream("shadow", opts))
            ups = Upstreams(primary, primary_port, shadow, shadow_port)
        for name in wanted:
            try:
                if name in SYSTEMS:
                    assert ups is not None
                    run_system(name, ups, opts, outcome)
                elif name == "stall":
                    assert ups is not None
                    run_stall(ups, opts, outcome)
                else:
                    run_section(name, opts, outcome)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                outcome.skipped[name] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                opts.progress(f"  {name} failed: {exc}")
    return outcome
