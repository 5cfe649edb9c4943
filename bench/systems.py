"""The systems under test, as processes: stand-in upstreams, `shadowdiff proxy` in each mode, nginx."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.nginx import run_nginx
from bench.procs import Child, free_port, spawn

REPO = Path(__file__).resolve().parent.parent
PATH = "/bench/orders/42"  # falls in the "default" service
SHADOWDIFF_MODES = {"shadowdiff-off": (1, False), "shadowdiff-1w": (1, True), "shadowdiff-2w": (2, True)}
"""Workers and whether mirroring is on."""


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


def metric_values(admin_port: int, name: str) -> dict[str, float]:
    """label text -> value of one metric family from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name) :]] = out.get(labels[len(name) :], 0.0) + float(value)
    return out


@contextlib.contextmanager
def run_upstream(name: str, logdir: Path, *extra: str) -> Iterator[tuple[Child, int]]:
    """A stand-in upstream subprocess on a fresh port."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), *extra]
    with spawn(name, argv, logdir=logdir, port=port) as child:
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


def _fresh(workdir: Path, name: str) -> str:
    """`name`, or `name-2`, `name-3`... so that no earlier run's files are reused."""
    candidate, n = name, 1
    while (workdir / f"{candidate}.toml").exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


@contextlib.contextmanager
def run_shadowdiff(
    name: str,
    workdir: Path,
    *,
    primary_port: int,
    shadow_port: int,
    workers: int,
    mirror: bool,
    admin_port: int | None = None,
) -> Iterator[tuple[Child, int]]:
    """`shadowdiff proxy` with V1 as primary, V2 as shadow, its own SQLite store and a one-service config."""
    command = shadowdiff_command()
    if command is None:
        raise RuntimeError("`shadowdiff proxy` is not available yet (proxy/cli.py has no proxy command)")
    port, admin_port = free_port(), admin_port or free_port()
    name = _fresh(workdir, name)  # a new store (and log) for every start, also across rounds
    config = workdir / f"{name}.toml"
    config.write_text(f'[services.default]\nprefixes = ["/"]\nmirror = {"true" if mirror else "false"}\n')
    argv = [*command, "proxy", "--v1", f"http://127.0.0.1:{primary_port}", "--v2", f"http://127.0.0.1:{shadow_port}"]
    argv += ["--port", str(port), "--admin-port", str(admin_port), "--workers", str(workers)]
    argv += ["--database-url", f"sqlite+aiosqlite:///{workdir / name}.db", "--config", str(config)]
    with spawn(name, argv, logdir=workdir, env=_clean_env(), port=port, ready_timeout=60) as child:
        _wait_proxied(f"http://127.0.0.1:{port}{PATH}", child)
        yield child, port


@contextlib.contextmanager
def start_system(
    key: str, ups: Upstreams, workdir: Path, *, admin_port: int | None = None
) -> Iterator[tuple[Child, int]]:
    """The system under test for `key`: the primary itself, shadowdiff in some mode (its admin listener on
    `admin_port` when given), or nginx."""
    if key == "direct":
        yield ups.primary, ups.primary_port
    elif key == "nginx-mirror":
        port = free_port()
        ports = {"primary_port": ups.primary_port, "shadow_port": ups.shadow_port}
        with run_nginx(workdir / "nginx", port=port, logdir=workdir, **ports) as child:
            yield child, port
    else:
        workers, mirror = SHADOWDIFF_MODES[key]
        ports = {"primary_port": ups.primary_port, "shadow_port": ups.shadow_port}
        with run_shadowdiff(key, workdir, workers=workers, mirror=mirror, admin_port=admin_port, **ports) as started:
            yield started
