"""`python -m bench.large_bodies`: do large bodies delay small requests? (Rule 8: the serving loop does no analysis.)

Through `shadowdiff proxy` (mirroring, comparison and storage on), small requests go to /small at a fixed rate, their
latency counted from when each was due, first alone (the baseline), then beside `--inflight` exchanges of `--kib`
KiB bodies kept in flight on /big by a closed loop in another process. Two variants: primary and shadow bodies that
differ in every item (the comparison's worst case), and byte-identical ones (almost no diff work: what remains is
the cost of handling large bodies). Target: the small requests' p99 within 10% (or +5 ms) of the baseline.

    python -m bench.large_bodies [--kib 700] [--inflight 20] [--rate 200] [--seconds 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.load import LoadResult, _run_async, run_paced, run_paced_load, run_python
from bench.nginx import nginx_path, run_nginx
from bench.procs import free_port, spawn
from bench.systems import metric_values, run_shadowdiff, run_upstream

VARIANTS = {"differ in every item": 2, "identical": 1}
"""The shadow's seed for each variant; the primary's is 1."""
SYSTEMS = ("shadowdiff", "nginx")
"""shadowdiff as the target is about; nginx `proxy_pass` + `mirror` (2 workers) on the same upstreams and load, to
show what the machine allows a proxy that relays and mirrors the same bytes but compares nothing."""
CLOSED = "closed"
DEFAULT_LOADS = "closed,100"
"""The large load: a closed loop (as fast as the box relays them) and a paced one the box sustains."""
P99_SLACK = 1.10
P99_SLACK_MS = 5.0


@dataclass
class Result:
    system: str
    variant: str
    load: str
    """How the large exchanges were sent: "closed" (each connection sends its next as soon as one is in: the box
    saturates) or "N/s" (paced at N a second over the same connections)."""
    baseline: LoadResult
    beside_large: LoadResult
    large: LoadResult | None
    """The large load on /big during the measurement (None if it reported nothing)."""
    dropped: float | None = None
    """Exchanges the proxy dropped from analysis (any reason) while the large load ran; None for nginx."""

    @property
    def analysed_share(self) -> float | None:
        """Of the exchanges answered while the large load ran, the share compared and stored (not dropped)."""
        if self.dropped is None or self.large is None:
            return None
        answered = self.large.requests + self.beside_large.requests
        return max(0.0, 1.0 - self.dropped / answered) if answered else None

    @property
    def allowed_p99_ms(self) -> float:
        return max(self.baseline.p99_ms * P99_SLACK, self.baseline.p99_ms + P99_SLACK_MS)

    @property
    def met(self) -> bool:
        return self.beside_large.p99_ms <= self.allowed_p99_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "variant": self.variant,
            "load": self.load,
            "baseline": self.baseline.as_dict(),
            "beside_large": self.beside_large.as_dict(),
            "large": None if self.large is None else self.large.as_dict(),
            "allowed_p99_ms": round(self.allowed_p99_ms, 2),
            "dropped": self.dropped,
            "met": self.met,
        }


def drive(url: str, concurrency: int, seconds: float, rate: float | None) -> None:
    """The large-body load, in its own process so that reading big bodies never disturbs the small requests' timer."""
    if rate is None:
        result = _run_async(run_python(url, concurrency, seconds, timeout=60.0))
    else:
        result = _run_async(run_paced(url, rate, seconds, connections=concurrency, timeout=60.0))
    print("LARGE_JSON " + json.dumps(asdict(result)), flush=True)


def measure(args: argparse.Namespace, workdir: Path) -> list[Result]:
    results = []
    with contextlib.ExitStack() as stack:
        primary, primary_port = stack.enter_context(
            run_upstream("primary", workdir, "--big-kib", str(args.kib), "--big-seed", "1")
        )
        for system in args.systems:
            for variant, seed in VARIANTS.items():
                name = "shadow-" + ("differ" if seed != 1 else "same")
                with (
                    run_upstream(name, workdir, "--big-kib", str(args.kib), "--big-seed", str(seed)) as (_, shadow),
                    _run_system(system, name, workdir, args, primary_port, shadow) as (port, admin),
                ):
                    results.extend(_measure(system, variant, port, admin, args, workdir))
    return results


@contextlib.contextmanager
def _run_system(
    system: str, name: str, workdir: Path, args: argparse.Namespace, primary_port: int, shadow_port: int
) -> Iterator[tuple[int, int | None]]:
    """The system's port, and its admin port (shadowdiff's /metrics; None for nginx)."""
    ports = {"primary_port": primary_port, "shadow_port": shadow_port}
    if system == "nginx":
        port = free_port()
        with run_nginx(workdir / f"nginx-{name}", port=port, logdir=workdir, **ports):
            yield port, None
        return
    admin = free_port()
    with run_shadowdiff(f"proxy-{name}", workdir, workers=args.workers, mirror=True, admin_port=admin, **ports) as (
        _,
        port,
    ):
        yield port, admin


def _dropped(admin: int | None) -> float | None:
    return None if admin is None else sum(metric_values(admin, "shadowdiff_dropped_total").values())


def _measure(
    system: str, variant: str, port: int, admin: int | None, args: argparse.Namespace, workdir: Path
) -> list[Result]:
    """The small requests alone, then beside each large load in turn."""
    small = f"http://127.0.0.1:{port}/small"
    print(f"{system}, {variant}: baseline, {args.rate:g} req/s for {args.seconds:g} s", flush=True)
    baseline = run_paced_load(small, args.rate, args.seconds)
    results = []
    for load in args.large_loads:
        print(f"{system}, {variant}: beside {args.inflight} exchanges of {args.kib} KiB in flight, {load}", flush=True)
        argv = [sys.executable, "-m", "bench.large_bodies", "--drive", f"http://127.0.0.1:{port}/big/1"]
        argv += ["--inflight", str(args.inflight), "--seconds", str(args.seconds + args.warmup + 2)]
        if load != CLOSED:
            argv += ["--drive-rate", load.removesuffix("/s")]
        dropped_before = _dropped(admin)
        with spawn(f"large-{system}-{variant.split()[0]}-{load.replace('/', '')}", argv, logdir=workdir) as driver:
            time.sleep(args.warmup)  # the large exchanges are in flight before the small ones are timed
            beside = run_paced_load(small, args.rate, args.seconds)
            with contextlib.suppress(subprocess.TimeoutExpired):
                driver.popen.wait(args.seconds + 30)
            large = _large_result(driver.log)
        time.sleep(1)  # what was in the channel settles before the drops are read
        dropped_after = _dropped(admin)
        dropped = None if dropped_after is None or dropped_before is None else dropped_after - dropped_before
        results.append(Result(system, variant, load, baseline, beside, large, dropped))
    return results


def _large_loads(text: str) -> list[str]:
    loads = []
    for item in (part.strip() for part in text.split(",")):
        if item == CLOSED:
            loads.append(item)
            continue
        try:
            rate = float(item.removesuffix("/s"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: expected {CLOSED!r} or a rate such as 100") from None
        if rate <= 0:
            raise argparse.ArgumentTypeError(f"{item!r}: a rate must be above 0")
        loads.append(f"{rate:g}/s")
    return loads


def _large_result(log: Path) -> LoadResult | None:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("LARGE_JSON "):
            return LoadResult(**json.loads(line.removeprefix("LARGE_JSON ")))
    return None


def table(results: list[Result]) -> str:
    lines = [
        "| system | bodies | large load | small p99 alone | small p99 beside large | allowed | max beside "
        "| large req/s | analysed | met |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        large = "—" if r.large is None else f"{r.large.rps:,.1f}"
        analysed = "—" if r.analysed_share is None else f"{r.analysed_share:.0%}"
        lines.append(
            f"| {r.system} | {r.variant} | {r.load} | {r.baseline.p99_ms:.1f} ms | {r.beside_large.p99_ms:.1f} ms "
            f"| {r.allowed_p99_ms:.1f} ms "
            f"| {r.beside_large.max_ms:.1f} ms | {large} | {analysed} | {'met' if r.met else 'NOT met'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large_bodies", description=__doc__.splitlines()[0])
    parser.add_argument("--kib", type=int, default=700, help="size of each large body")
    parser.add_argument("--inflight", type=int, default=20, help="large exchanges kept in flight")
    parser.add_argument("--rate", type=float, default=200.0, help="small requests a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="each measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="large load before the small ones are timed")
    parser.add_argument("--workers", type=int, default=1, help="shadowdiff proxy --workers")
    parser.add_argument(
        "--large-loads",
        type=_large_loads,
        default=_large_loads(DEFAULT_LOADS),
        help=f"comma-separated: {CLOSED!r} and/or large requests a second (default: {DEFAULT_LOADS})",
    )
    parser.add_argument(
        "--systems",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=[name for name in SYSTEMS if name != "nginx" or nginx_path() is not None],
        help="comma-separated, from: " + ", ".join(SYSTEMS) + " (default: both, nginx when installed)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--drive", metavar="URL", help=argparse.SUPPRESS)  # the large-body load process
    parser.add_argument("--drive-rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s): {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    if args.drive:
        drive(args.drive, args.inflight, args.seconds, args.drive_rate)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="shadowdiff-large-"))
    results = measure(args, workdir)
    print(f"\n{args.inflight} × {args.kib} KiB in flight, small requests at {args.rate:g}/s, {args.workers} worker(s)")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    print(f"logs: {workdir}")
    return 0 if all(r.met for r in results if r.system == "shadowdiff") else 1


if __name__ == "__main__":
    sys.exit(main())
