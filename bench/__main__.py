"""`python -m bench`: run the scenarios, print the tables, write JSON and bench/RESULTS.md."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from bench import report
from bench.load import wrk_path
from bench.nginx import nginx_version
from bench.runner import SCENARIOS, Options, run
from bench.systems import REPO

RESULTS = REPO / "bench" / "RESULTS.md"


def machine(command: str, tool: str) -> dict[str, Any]:
    """Where and when this ran."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        mem = 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    wrk = subprocess.run([wrk_path() or "true", "-v"], capture_output=True, text=True) if wrk_path() else None
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx_version() or "not installed",
        "wrk": (wrk.stdout or wrk.stderr).split("[")[0].strip() if wrk else "not installed",
        "load_tool": tool,
        "commit": commit.stdout.strip() or "unknown",
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per measurement, 1 s warm-up (default 8 s, 2 s)")
    parser.add_argument("--seconds", type=float, help="seconds per measurement (overrides --quick)")
    parser.add_argument("--rounds", type=int, default=1, help="run everything N times, keep each one's best run")
    parser.add_argument("--only", choices=SCENARIOS, help="run one scenario")
    parser.add_argument("--stall-rate", type=float, default=300.0, help="paced rate of the stall scenario (req/s)")
    parser.add_argument(
        "--large-bodies",
        action="store_true",
        help="run only the large-bodies scenario: small requests' p99 beside large exchanges (bench/large_bodies.py)",
    )
    parser.add_argument("--large-kib", type=int, default=700, help="large-bodies: size of each large body")
    parser.add_argument("--large-inflight", type=int, default=20, help="large-bodies: large exchanges in flight")
    parser.add_argument("--small-rate", type=float, default=200.0, help="large-bodies: small requests a second")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto", help="load generator")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--results", type=Path, help=f"Markdown to update (default {RESULTS.relative_to(REPO)})")
    parser.add_argument("--no-results", action="store_true", help="do not touch any RESULTS.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory with every process's log")
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so every started process is stopped


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, report."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background, where it is ignored
    tool = args.tool if args.tool != "auto" else ("wrk" if wrk_path() else "python")
    if tool == "wrk" and not wrk_path():
        print("wrk is not installed; use --tool python (weaker) or apt-get install -y wrk", file=sys.stderr)
        return 2
    if tool == "python":
        print("load generator: Python/aiohttp, not wrk: it saturates well below wrk; ratios still hold within a run")
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    workdir = Path(tempfile.mkdtemp(prefix="shadowdiff-bench-"))
    large = ["--kib", str(args.large_kib), "--inflight", str(args.large_inflight), "--rate", str(args.small_rate)]
    large += ["--seconds", str(seconds), "--warmup", "1" if args.quick else "2"]
    opts = Options(
        seconds=seconds,
        warmup=1.0 if args.quick else 2.0,
        stall_rate=args.stall_rate,
        rounds=max(1, args.rounds),
        tool=tool,
        only="large-bodies" if args.large_bodies else args.only,
        workdir=workdir,
        section_args={"large-bodies": large, "rollup-reports": ["--private-postgres"]},
    )
    command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
    meta = {**machine(command, tool), "seconds": seconds, "rounds": opts.rounds}
    keep = True  # unless the run ends cleanly, the logs are what explains it
    try:
        outcome = run(opts)
        keep = args.keep_logs or bool(outcome.skipped)
    except KeyboardInterrupt:
        print(f"\ninterrupted; every started process was stopped. Logs: {workdir}", file=sys.stderr)
        return 130
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    failed = bool(outcome.skipped) and not (outcome.rows or outcome.stall or outcome.sections)
    report.print_console(outcome)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(outcome, meta), indent=2) + "\n")
        print(f"wrote {args.json}")
    target = args.results or (None if args.only else RESULTS)
    if target is not None and not args.no_results:
        report.write_results(target, outcome, meta)
        print(f"wrote {target}")
    if keep:
        print(f"logs: {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
