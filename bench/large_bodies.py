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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.load import LoadResult, _run_async, run_paced_load, run_python
from bench.procs import spawn
from bench.systems import run_shadowdiff, run_upstream

VARIANTS = {"differ in every item": 2, "identical": 1}
"""The shadow's seed for each variant; the primary's is 1."""
P99_SLACK = 1.10
P99_SLACK_MS = 5.0


@dataclass
class Result:
    variant: str
    baseline: LoadResult
    beside_large: LoadResult
    large: LoadResult | None
    """The closed loop on /big during the measurement (None if it reported nothing)."""

    @property
    def allowed_p99_ms(self) -> float:
        return max(self.baseline.p99_ms * P99_SLACK, self.baseline.p99_ms + P99_SLACK_MS)

    @property
    def met(self) -> bool:
        return self.beside_large.p99_ms <= self.allowed_p99_ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "baseline": self.baseline.as_dict(),
            "beside_large": self.beside_large.as_dict(),
            "large": None if self.large is None else self.large.as_dict(),
            "allowed_p99_ms": round(self.allowed_p99_ms, 2),
            "met": self.met,
        }


def drive(url: str, concurrency: int, seconds: float) -> None:
    """The large-body load, in its own process so that reading big bodies never disturbs the small requests' timer."""
    result = _run_async(run_python(url, concurrency, seconds, timeout=60.0))
    print("LARGE_JSON " + json.dumps(asdict(result)), flush=True)


def measure(args: argparse.Namespace, workdir: Path) -> list[Result]:
    results = []
    with contextlib.ExitStack() as stack:
        primary, primary_port = stack.enter_context(
            run_upstream("primary", workdir, "--big-kib", str(args.kib), "--big-seed", "1")
        )
        for variant, seed in VARIANTS.items():
            name = "shadow-" + ("differ" if seed != 1 else "same")
            with (
                run_upstream(name, workdir, "--big-kib", str(args.kib), "--big-seed", str(seed)) as (_, shadow_port),
                run_shadowdiff(
                    f"proxy-{name}",
                    workdir,
                    primary_port=primary_port,
                    shadow_port=shadow_port,
                    workers=args.workers,
                    mirror=True,
                ) as (_, port),
            ):
                small = f"http://127.0.0.1:{port}/small"
                print(f"{variant}: baseline, {args.rate:g} req/s for {args.seconds:g} s", flush=True)
                baseline = run_paced_load(small, args.rate, args.seconds)
                print(f"{variant}: beside {args.inflight} exchanges of {args.kib} KiB in flight", flush=True)
                argv = [sys.executable, "-m", "bench.large_bodies", "--drive", f"http://127.0.0.1:{port}/big/1"]
                argv += ["--inflight", str(args.inflight), "--seconds", str(args.seconds + args.warmup + 2)]
                with spawn(f"large-{name}", argv, logdir=workdir) as driver:
                    time.sleep(args.warmup)  # the large exchanges are in flight before the small ones are timed
                    beside = run_paced_load(small, args.rate, args.seconds)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        driver.popen.wait(args.seconds + 30)
                    large = _large_result(driver.log)
                results.append(Result(variant, baseline, beside, large))
    return results


def _large_result(log: Path) -> LoadResult | None:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("LARGE_JSON "):
            return LoadResult(**json.loads(line.removeprefix("LARGE_JSON ")))
    return None


def table(results: list[Result]) -> str:
    lines = [
        "| bodies | small p99 alone | small p99 beside large | allowed | max beside | large req/s | met |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        large = "—" if r.large is None else f"{r.large.rps:,.1f}"
        lines.append(
            f"| {r.variant} | {r.baseline.p99_ms:.1f} ms | {r.beside_large.p99_ms:.1f} ms | {r.allowed_p99_ms:.1f} ms "
            f"| {r.beside_large.max_ms:.1f} ms | {large} | {'met' if r.met else 'NOT met'} |"
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
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--drive", metavar="URL", help=argparse.SUPPRESS)  # the large-body load process
    args = parser.parse_args(argv)
    if args.drive:
        drive(args.drive, args.inflight, args.seconds)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="shadowdiff-large-"))
    results = measure(args, workdir)
    print(f"\n{args.inflight} × {args.kib} KiB in flight, small requests at {args.rate:g}/s, {args.workers} worker(s)")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    print(f"logs: {workdir}")
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
