"""Load generation: wrk when installed, else a bounded aiohttp loop (weaker: it tops out far below wrk on 2 cores).

Both are closed-loop: N connections, each sending its next request when the previous answer is in.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# wrk's done() hook: one JSON line, latencies in microseconds. No response() hook: it would make wrk parse bodies.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""
PYTHON_MAX_REQUESTS = 500_000


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load run measured; latencies in milliseconds."""

    tool: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    """Connect/read/write errors, timeouts and non-2xx/3xx answers."""
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1)}


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (the smallest value with at least `pct`% at or below it)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def wrk_path() -> str | None:
    """The wrk binary, if installed."""
    return shutil.which("wrk")


def run_wrk(url: str, concurrency: int, seconds: float, *, threads: int = 2, timeout: float = 5.0) -> LoadResult:
    """`wrk -tT -cN -dS --latency` with a done() hook that reports percentiles as JSON."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed")
    threads = max(1, min(threads, concurrency))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "report.lua"
        script.write_text(WRK_SCRIPT)
        argv = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
        argv += [f"--timeout={timeout:g}s", "--latency", "-s", str(script), url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout + 30, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line.removeprefix("WRK_JSON "))
            return LoadResult(
                tool="wrk",
                concurrency=concurrency,
                seconds=data["duration_us"] / 1e6,
                requests=data["requests"],
                errors=data["errors"],
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")


async def run_python(
    url: str, concurrency: int, seconds: float, *, max_requests: int = PYTHON_MAX_REQUESTS, timeout: float = 5.0
) -> LoadResult:
    """A closed loop of `concurrency` aiohttp workers; stops at `seconds` or after `max_requests`, whichever first."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, sent
        while sent < max_requests and time.perf_counter() < deadline:
            sent += 1
            began = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status < 400
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies.append((time.perf_counter() - began) * 1000)
            if not ok:
                errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(
        tool="python",
        concurrency=concurrency,
        seconds=elapsed,
        requests=len(latencies),
        errors=errors,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else 0.0,
    )


def run_load(url: str, concurrency: int, seconds: float, *, tool: str) -> LoadResult:
    """Run one measurement with `tool` ("wrk" or "python")."""
    if tool == "wrk":
        return run_wrk(url, concurrency, seconds)
    return asyncio.run(run_python(url, concurrency, seconds))
