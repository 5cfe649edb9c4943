"""`python -m bench.replica_bench`: a promotion made on one replica reaches every worker of every replica, and when.

Two `shadowdiff proxy --workers W` replicas share a private PostgreSQL (started for the run). V1 and V2 are two
stand-in upstreams whose bodies differ (`--big-seed`), and mirroring is off, so each response says which app was
primary for the worker that answered it. Each round promotes `default` to the other app through replica A's admin
API, then sends requests through both replicas (a few at a time, on fresh connections so that every worker is hit)
until every one of the last `--streak` rounds of them was answered by the new primary. The time from the admin
API's answer to the first request of that streak is how long the promotion took to reach every worker of every
replica (target: under 1 s).

Then id pairs across replicas: two orders services whose ids differ (V1 counts from 1, V2 from 100,000; V2 answers
its creates 50 ms late), mirroring on. Each of `--creates` rounds creates an order through replica A and reads it
through replica B at once (0 ms after the create's answer). A miss is a read V2 answered 404: it was sent V1's id.
Target: 0 misses, the first create of all included (B has heard nothing of the resource then).

    python -m bench.replica_bench [--rounds 10] [--workers 2] [--creates 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.private_postgres import PrivatePostgres
from bench.procs import free_port, spawn
from bench.systems import _clean_env, metric_values, run_upstream, shadowdiff_command
from bench.upstream import big_body

TOKEN = "bench-admin-token"
PATH = "/big/1"
TARGET_SECONDS = 1.0


def which(port: int, bodies: dict[bytes, str]) -> str:
    """The app whose body answered a fresh request through the proxy on `port`."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bodies.get(response.read(), "?")


def promote(admin_port: int, to: str) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{admin_port}/api/services/default/promote",
        data=json.dumps({"to": to, "reason": "bench"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["service"]["primary"] == to


@contextlib.contextmanager
def replica(
    name: str, workdir: Path, database: str, v1: int, v2: int, workers: int, *, mirror: bool = False
) -> Iterator[tuple[int, int]]:
    command = shadowdiff_command()
    if command is None:
        raise RuntimeError("`shadowdiff proxy` is not available")
    port, admin = free_port(), free_port()
    config = workdir / f"{name}.toml"
    config.write_text(f'[services.default]\nprefixes = ["/"]\nmirror = {"true" if mirror else "false"}\n')
    argv = [
        *command,
        "proxy",
        "--v1",
        f"http://127.0.0.1:{v1}",
        "--v2",
        f"http://127.0.0.1:{v2}",
        "--config",
        str(config),
    ]
    argv += ["--port", str(port), "--admin-port", str(admin), "--workers", str(workers), "--database-url", database]
    env = {**_clean_env(), "SHADOWDIFF_ADMIN_TOKEN": TOKEN}
    with spawn(name, argv, logdir=workdir, env=env, port=port, ready_timeout=90):
        deadline = time.monotonic() + 60
        while True:
            try:
                if not mirror:
                    which(port, {})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port, admin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-check", type=int, default=6, help="requests per replica per check")
    parser.add_argument("--streak", type=int, default=5, help="checks in a row all answered by the new primary")
    parser.add_argument("--creates", type=int, default=200, help="create-then-read rounds across the replicas")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="shadowdiff-replica-bench-"))
    bodies = {big_body(1, 1): "v1", big_body(1, 2): "v2"}
    took: list[float] = []
    with contextlib.ExitStack() as stack:
        cluster = PrivatePostgres()
        stack.callback(cluster.destroy)
        cluster.start()
        _, v1 = stack.enter_context(run_upstream("v1", workdir, "--big-kib", "1", "--big-seed", "1"))
        _, v2 = stack.enter_context(run_upstream("v2", workdir, "--big-kib", "1", "--big-seed", "2"))
        a = stack.enter_context(replica("replica-a", workdir, cluster.url, v1, v2, args.workers))
        b = stack.enter_context(replica("replica-b", workdir, cluster.url, v1, v2, args.workers))
        print(f"two replicas x {args.workers} workers on a private PostgreSQL; promotions through replica A")
        for n in range(args.rounds):
            to = "v2" if n % 2 == 0 else "v1"
            promote(a[1], to)
            done_at = time.monotonic()
            streak_started: float | None = None
            streak = 0
            while streak < args.streak:
                checked_at = time.monotonic()
                answers = [which(port, bodies) for port, _ in (a, b) for _ in range(args.per_check)]
                if all(x == to for x in answers):
                    streak_started = checked_at if streak == 0 else streak_started
                    streak += 1
                else:
                    streak, streak_started = 0, None
                if time.monotonic() - done_at > 30:
                    print(f"round {n + 1}: not every worker answered from {to} after 30 s", file=sys.stderr)
                    return 1
                time.sleep(0.01)
            assert streak_started is not None
            took.append(max(0.0, streak_started - done_at))
            print(f"round {n + 1}: {to} primary on every worker of both replicas after {took[-1] * 1000:.0f} ms")
    worst, median = max(took), statistics.median(took)
    verdict = "met" if worst < TARGET_SECONDS else "MISSED"
    print(f"\npromotion reached every replica: median {median * 1000:.0f} ms, worst {worst * 1000:.0f} ms", end="")
    print(f" (target < {TARGET_SECONDS * 1000:.0f} ms: {verdict})")
    misses = id_pairs(args, workdir) if args.creates else 0
    return 0 if worst < TARGET_SECONDS and misses == 0 else 1


def id_pairs(args: argparse.Namespace, workdir: Path) -> int:
    """Create through replica A, read through replica B at once; how many reads V2 was sent V1's id for."""
    with contextlib.ExitStack() as stack:
        cluster = PrivatePostgres()
        stack.callback(cluster.destroy)
        cluster.start()
        v1 = stack.enter_context(orders("orders-v1", workdir, first=1))
        v2 = stack.enter_context(orders("orders-v2", workdir, first=100_000, create_delay=0.05))
        a = stack.enter_context(replica("ids-a", workdir, cluster.url, v1, v2, args.workers, mirror=True))
        b = stack.enter_context(replica("ids-b", workdir, cluster.url, v1, v2, args.workers, mirror=True))
        create = urllib.request.Request(
            f"http://127.0.0.1:{a[0]}/api/orders", data=b'{"customer": 1}', method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        before = stats(v2)
        for _ in range(args.creates):
            with urllib.request.urlopen(create, timeout=10) as response:
                order = json.loads(response.read())["id"]
            with urllib.request.urlopen(f"http://127.0.0.1:{b[0]}/api/orders/{order}", timeout=10):
                pass
        deadline = time.monotonic() + 30
        while stats(v2)["found"] + stats(v2)["missing"] - before["found"] - before["missing"] < args.creates:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        after = stats(v2)
        for name, (_, admin) in (("A", a), ("B", b)):
            sharing = {k: int(v) for k, v in metric_values(admin, "shadowdiff_id_sharing_total").items() if v}
            print(f"replica {name}: shadowdiff_id_sharing_total {sharing}")
        skipped = metric_values(b[1], "shadowdiff_skipped_total")
        raced = int(sum(v for k, v in skipped.items() if 'reason="out_of_order"' in k))
    found, missing = after["found"] - before["found"], after["missing"] - before["missing"]
    print(
        f"id pairs across replicas: {args.creates} creates through A, each read through B at once: "
        f"{found} reads reached V2's own order, {missing} misses (target 0: {'met' if missing == 0 else 'MISSED'})"
    )
    false_findings = max(0, missing - raced)
    print(
        f"verdicts: {raced} reads sent past the causal bound were recorded as out_of_order, not compared; "
        f"misses compared as findings: {false_findings} (target 0: {'met' if false_findings == 0 else 'MISSED'})"
    )
    return missing


def stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=5) as response:
        data: dict[str, int] = json.loads(response.read())
        return data


@contextlib.contextmanager
def orders(name: str, workdir: Path, *, first: int, create_delay: float = 0.0) -> Iterator[int]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.orders_upstream", "--port", str(port), "--first", str(first)]
    argv += ["--create-delay", str(create_delay)]
    with spawn(name, argv, logdir=workdir, port=port):
        yield port


if __name__ == "__main__":
    raise SystemExit(main())
