"""`python -m bench.drop_bench`: under closed-loop load, which share of mirrored exchanges the analysis drops.

`shadowdiff proxy --workers W` on SQLite in a temporary directory, both stand-ins, wrk at `--concurrency` for
`--seconds` on one path (`/bench/orders/42`, or `/big/...` with `--big-kib`, answered with ~N KiB of JSON). Then
/metrics: exchanges dropped by reason (`shadowdiff_dropped_total`) over the requests answered, and the analysis
processes' CPU per item they handled (exchanges compared, and drop records: every answer but those counted as
`unrecorded`). Wall-clock and shared cores make the drops noisy: compare runs back to back.

    python -m bench.drop_bench [--workers 2] [--concurrency 1,4,16] [--seconds 5] [--big-kib 0]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from bench.load import run_wrk
from bench.procs import CLOCK_TICKS, free_port, spawn, tree
from bench.systems import PATH, _clean_env, metric_values, run_upstream, shadowdiff_command


def analysis_cpu(root: int) -> float:
    """CPU seconds of the analysis processes under `root` (user + system)."""
    ticks = 0
    for pid in tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if b"proxy.analysis.process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drop_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--concurrency", default="1,4,16", help="closed-loop clients; a comma list runs each in turn on one stand"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--big-kib", type=int, default=0)
    args = parser.parse_args(argv)
    command = shadowdiff_command()
    if command is None:
        raise SystemExit("`shadowdiff proxy` is not available")
    extra = ("--big-kib", str(args.big_kib)) if args.big_kib else ()
    path = "/big/orders/42" if args.big_kib else PATH
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        workdir = Path(directory)
        _, v1 = stack.enter_context(run_upstream("v1", workdir, *extra))
        _, v2 = stack.enter_context(run_upstream("v2", workdir, *extra))
        port, admin = free_port(), free_port()
        config = workdir / "shadowdiff.toml"
        config.write_text('[services.default]\nprefixes = ["/"]\nmirror = true\n')
        argv_ = [*command, "proxy", "--v1", f"http://127.0.0.1:{v1}", "--v2", f"http://127.0.0.1:{v2}"]
        argv_ += ["--port", str(port), "--admin-port", str(admin), "--workers", str(args.workers)]
        argv_ += ["--database-url", f"sqlite+aiosqlite:///{workdir / 'store.db'}", "--config", str(config)]
        proxy = stack.enter_context(
            spawn("proxy", argv_, logdir=workdir, env=_clean_env(), port=port, ready_timeout=90)
        )
        time.sleep(2)  # the workers' analysis processes connect
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            measure(admin, proxy.popen.pid, f"http://127.0.0.1:{port}{path}", concurrency, args.seconds)


def measure(admin: int, root: int, url: str, concurrency: int, seconds: float) -> None:
    """One closed-loop run after a 1 s warm-up: requests answered, drops by reason, the analysis processes' CPU."""
    run_wrk(url, concurrency, 1.0)
    time.sleep(1)  # the warm-up's exchanges settle before the counts are read
    before = {k: v for k, v in metric_values(admin, "shadowdiff_dropped_total").items() if v}
    cpu_before = analysis_cpu(root)
    result = run_wrk(url, concurrency, seconds)
    time.sleep(1)
    cpu = analysis_cpu(root) - cpu_before
    after = {k: v for k, v in metric_values(admin, "shadowdiff_dropped_total").items() if v}
    answered = result.requests
    drops = {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}
    dropped = sum(drops.values())
    print(f"{answered} answered in {seconds:g} s ({answered / seconds:,.0f} req/s), c={concurrency}")
    print(f"dropped: {dropped:.0f} ({dropped / max(answered, 1):.0%}) {drops or ''}")
    handled = answered - sum(v for k, v in drops.items() if '"unrecorded"' in k)
    print(f"analysis processes: {cpu:.2f} s CPU, {cpu / max(handled, 1) * 1e6:,.0f} µs per item handled")


if __name__ == "__main__":
    main()
