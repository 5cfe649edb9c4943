"""`python -m bench.replay_bench`: replay throughput beside the live proxy's, against the same stand-in upstreams.

Live: `shadowdiff proxy` (1 worker, mirroring on) under the closed-loop load generator at `--concurrency`
connections. Replay: `shadowdiff replay` of a GoReplay file of `--requests` GETs spread over `4 × --concurrency`
sessions, at `--concurrency` sessions in flight, as fast as it goes, into its own SQLite store. Both compare
every exchange and store it. Reported: requests per second and CPU µs per request of the shadowdiff process (the
replay's includes its start-up and the pass that counts the file; its req/s is the one it prints, from the first
request to the last answer).
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import wrk_path
from bench.runner import Options, measure, warm_up
from bench.systems import (
    PATH,
    Upstreams,
    _clean_env,
    run_shadowdiff,
    run_upstream,
    shadowdiff_command,
    upstream_requests,
)

SEPARATOR = "\n🐵🙈🙉\n".encode()
_SUMMARY = re.compile(r"replayed (\d+) of (\d+) requests in ([\d.]+) s \(([\d,.]+) req/s\)")


def gor_file(path: Path, requests: int, sessions: int) -> Path:
    """GETs to the stand-in (`PATH` with varying ids), each session's requests 1 ms apart, as GoReplay writes them."""
    base = PATH.rsplit("/", 1)[0]
    with path.open("wb") as out:
        for i in range(requests):
            raw = (
                f"GET {base}/{i % 1000} HTTP/1.1\r\nHost: bench.test\r\nAccept: application/json\r\n"
                f"X-Session-ID: s{i % sessions}\r\n\r\n"
            ).encode()
            out.write(b"1 %024x %d 0\n" % (i, 1_790_000_000_000_000_000 + i * 1_000_000) + raw + SEPARATOR)
    return path


def replay_once(ups: Upstreams, workdir: Path, requests: int, concurrency: int) -> dict[str, float]:
    command = shadowdiff_command()
    if command is None:
        raise RuntimeError("the shadowdiff command is not available")
    source = gor_file(workdir / "traffic.gor", requests, 4 * concurrency)
    config = workdir / "replay.toml"
    config.write_text('[services.default]\nprefixes = ["/"]\nmirror = true\n')
    argv = [*command, "replay", str(source), "--v1", f"http://127.0.0.1:{ups.primary_port}"]
    argv += ["--v2", f"http://127.0.0.1:{ups.shadow_port}", "--config", str(config)]
    argv += ["--database-url", f"sqlite+aiosqlite:///{workdir / 'replay.db'}", "--concurrency", str(concurrency)]
    argv += ["--session-header", "x-session-id", "--progress-every", "3600"]
    shadow_before = upstream_requests(ups.shadow_port)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=_clean_env(), timeout=1800, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"replay exited {done.returncode}: {(done.stderr or done.stdout).strip()[-500:]}")
    found = _SUMMARY.search(done.stdout)
    if found is None:
        raise RuntimeError(f"no summary line in the replay's output: {done.stdout[-500:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "requests": int(found.group(1)),
        "rps": float(found.group(4).replace(",", "")),
        "wall": wall,
        "cpu_us": cpu / requests * 1e6,
        "mirrored": upstream_requests(ups.shadow_port) - shadow_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000, help="requests in the replayed file")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="connections (live) and sessions in flight (replay)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of live load")
    parser.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto", help="live load generator")
    args = parser.parse_args(argv)
    tool = args.tool if args.tool != "auto" else ("wrk" if wrk_path() else "python")
    workdir = Path(tempfile.mkdtemp(prefix="shadowdiff-replay-bench-"))
    opts = Options(seconds=args.seconds, warmup=1.0, tool=tool, workdir=workdir, progress=lambda line: None)
    with run_upstream("primary", workdir) as (primary, primary_port), run_upstream("shadow", workdir) as shadow:
        ups = Upstreams(primary, primary_port, shadow[0], shadow[1])
        with run_shadowdiff(
            "live", workdir, primary_port=primary_port, shadow_port=shadow[1], workers=1, mirror=True
        ) as (
            child,
            port,
        ):
            warm_up(port, opts)
            live = measure("live", "live proxy", port, child, ups, args.concurrency, opts)
        replayed = replay_once(ups, workdir, args.requests, args.concurrency)
    print(f"replay throughput against the stand-in upstreams (concurrency {args.concurrency}, load tool {tool})")
    print()
    print("| shadowdiff, 1 process, mirroring and comparison on | req/s | CPU µs / request |")
    print("|---|---:|---:|")
    print(f"| live proxy, {live.result.requests:,} requests in {args.seconds:g} s | {live.result.rps:,.0f} "
          f"| {live.cpu_us_per_request or 0:,.0f} |")  # fmt: skip
    print(f"| replay of {replayed['requests']:,} recorded requests ({replayed['wall']:.1f} s with start-up) "
          f"| {replayed['rps']:,.0f} | {replayed['cpu_us']:,.0f} |")  # fmt: skip
    print()
    print(f"replay: every request mirrored: {replayed['mirrored']:,} of {replayed['requests']:,} reached the shadow")
    ratio = replayed["rps"] / live.result.rps if live.result.rps else 0.0
    print(f"replay / live throughput: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
