"""`python -m bench.outage_bench`: PostgreSQL stopped for 20 s under 100 req/s; nothing may go missing.

One `shadowdiff proxy --workers W` on a private PostgreSQL (started for the run), mirroring every request to a
stand-in shadow. A paced client sends `--rate` requests a second for `--seconds`; `--down-at` seconds in, the
database is stopped (`pg_ctl -m fast`: clients first see "the database system is shutting down", then refused
connections) and started again `--down-for` seconds later. Then the store's rollups are read until they account for
every request: counted in the store (every outcome, `dropped` rows included) plus the drops that leave no row, which
/metrics counts (`shadowdiff_dropped_total`). The verdicts: that sum equals the requests answered, and nothing was
dropped as `store_rejected` (a transient error taken for a permanent one).

    python -m bench.outage_bench [--rate 100] [--seconds 40] [--down-at 10] [--down-for 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import httpx

from bench.private_postgres import PrivatePostgres
from bench.procs import free_port, spawn
from bench.systems import _clean_env, metric_values, run_upstream, shadowdiff_command
from diffs.report import Window
from diffs.storage import Store, queries

NO_ROW = ("unrecorded", "store_buffer_full", "store_rejected", "store_shutdown")
"""Drop reasons whose exchanges have no row in the store (every other drop is also stored as a `dropped` row)."""


async def paced(port: int, rate: float, seconds: float, on_tick: object) -> tuple[int, int]:
    """Send `rate` requests a second for `seconds`; (answered 200, failed)."""
    answered = failed = 0
    interval = 1.0 / rate
    began = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

        async def one(n: int) -> None:
            nonlocal answered, failed
            try:
                response = await client.get(f"/api/orders/{n % 500}")
                answered += response.status_code == 200
                failed += response.status_code != 200
            except httpx.HTTPError:
                failed += 1

        n = 0
        while (elapsed := time.monotonic() - began) < seconds:
            on_tick(elapsed)  # type: ignore[operator]
            task = asyncio.get_running_loop().create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, began + n * interval - time.monotonic()))
        await asyncio.gather(*tasks)
    return answered, failed


async def counted(url: str) -> int:
    store = await Store.open(url)
    try:
        found = await queries.totals(store, Window())
    finally:
        await store.close()
    return sum(sum(t.outcomes.values()) for t in found.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--down-at", type=float, default=10.0)
    parser.add_argument("--down-for", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="shadowdiff-outage-bench-"))
    command = shadowdiff_command()
    if command is None:
        raise SystemExit("`shadowdiff proxy` is not available")
    with contextlib.ExitStack() as stack:
        cluster = PrivatePostgres()
        stack.callback(cluster.destroy)
        cluster.start()
        _, v1 = stack.enter_context(run_upstream("v1", workdir))
        _, v2 = stack.enter_context(run_upstream("v2", workdir))
        port, admin = free_port(), free_port()
        argv_ = [*command, "proxy", "--v1", f"http://127.0.0.1:{v1}", "--v2", f"http://127.0.0.1:{v2}"]
        argv_ += ["--port", str(port), "--admin-port", str(admin), "--workers", str(args.workers)]
        argv_ += ["--database-url", cluster.url]
        stack.enter_context(spawn("proxy", argv_, logdir=workdir, env=_clean_env(), port=port, ready_timeout=90))
        time.sleep(2)  # the workers' analysis processes connect
        state = {"down": False, "up": False}

        def on_tick(elapsed: float) -> None:
            if not state["down"] and elapsed >= args.down_at:
                state["down"] = True
                cluster.stop("fast")
                print(f"{elapsed:5.1f} s: PostgreSQL stopped")
            elif state["down"] and not state["up"] and elapsed >= args.down_at + args.down_for:
                state["up"] = True
                cluster.start()
                print(f"{elapsed:5.1f} s: PostgreSQL started")

        answered, failed = asyncio.run(paced(port, args.rate, args.seconds, on_tick))
        if state["down"] and not state["up"]:
            cluster.start()
        print(f"sent for {args.seconds:g} s at {args.rate:g} req/s: {answered} answered, {failed} failed")
        deadline = time.monotonic() + 120
        while True:
            drops = {k: v for k, v in metric_values(admin, "shadowdiff_dropped_total").items() if v}
            no_row = sum(v for k, v in drops.items() if any(f'"{reason}"' in k for reason in NO_ROW))
            stored = asyncio.run(counted(cluster.url))
            if stored + no_row >= answered or time.monotonic() > deadline:
                break
            time.sleep(1)
        rejected = sum(v for k, v in drops.items() if '"store_rejected"' in k)
        print(f"stored (counted in the rollups, dropped rows included): {stored}")
        print(f"drops by reason (/metrics): {drops or 'none'}")
        print(f"stored + drops without a row = {stored + no_row:.0f}; answered (mirrored) = {answered}")
        accounted = "every exchange accounted for" if stored + no_row == answered else "MISSING EXCHANGES"
        transient = "none" if rejected == 0 else "a transient error taken as permanent"
        print(f"verdict: {accounted}; dropped as rejected: {rejected:.0f} ({transient})")
        return 0 if stored + no_row == answered and rejected == 0 and failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
