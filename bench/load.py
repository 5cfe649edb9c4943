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
from collections.abc import Coroutine
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
    return _summarise("python", concurrency, time.perf_counter() - start, latencies, errors)


async def run_paced(
    url: str, rate: float, seconds: float, *, connections: int = 16, timeout: float = 5.0
) -> LoadResult:
    """Open loop: `rate` requests a second on a fixed schedule over up to `connections` connections.

    Latency counts from when a request was due, not when it went out, so a stall that delays sending is measured
    (no coordinated omission). Requests due while all connections are busy wait for one, and that wait counts too.
    Requests still unsent `timeout` seconds after the schedule ends are given up and counted as errors.
    """
    import aiohttp

    total = max(1, int(rate * seconds))
    latencies: list[float] = []
    errors = 0
    slots = asyncio.Semaphore(connections)
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)

    async def one(session: aiohttp.ClientSession, due: float) -> None:
        nonlocal errors
        try:
            async with session.get(url) as response:
                await response.read()
                ok = response.status < 400
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        finally:
            slots.release()
        latencies.append((time.perf_counter() - due) * 1000)
        if not ok:
            errors += 1

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        start = time.perf_counter()
        give_up = start + seconds + timeout
        async with asyncio.TaskGroup() as group:
            for i in range(total):
                if time.perf_counter() > give_up:
                    errors += total - i
                    break
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                group.create_task(one(session, due))
        elapsed = time.perf_counter() - start
    return _summarise("python-paced", connections, elapsed, latencies, errors)


def _run_async(coroutine: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run on uvloop when installed: the Python generators need all the speed they can get."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def run_load(url: str, concurrency: int, seconds: float, *, tool: str) -> LoadResult:
    """Run one closed-loop measurement with `tool` ("wrk" or "python")."""
    if tool == "wrk":
        return run_wrk(url, concurrency, seconds)
    return _run_async(run_python(url, concurrency, seconds))


def run_paced_load(url: str, rate: float, seconds: float, *, connections: int = 16) -> LoadResult:
    """Run one open-loop measurement at a fixed rate."""
    return _run_async(run_paced(url, rate, seconds, connections=connections))


def _summarise(tool: str, concurrency: int, seconds: float, latencies: list[float], errors: int) -> LoadResult:
    """A Python load run's result from its latencies in milliseconds (sorted here)."""
    latencies.sort()
    return LoadResult(
        tool=tool,
        concurrency=concurrency,
        seconds=seconds,
        requests=len(latencies),
        errors=errors,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else 0.0,
    )
