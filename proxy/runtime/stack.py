"""`shadowdiff up`: seed the demo databases, then child processes started together, watched until healthy,
stopped together, no orphans.

Each child runs in its own session, so Ctrl-C reaches only us and we stop the children in order (proxy first, then
the apps it fronts); on Linux each child also gets SIGTERM if we die without cleaning up (PR_SET_PDEATHSIG).
A child with a log file writes there (V1 and V2 log every request; the banner must stay on screen); the others'
output is prefixed with their name, as foreman does. When a child with a log file dies, the end of its log is shown.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from proxy.errors import ShadowdiffError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_SECONDS = 10.0
"""How long a child gets between SIGTERM and SIGKILL."""
TAIL_LINES = 15
"""Lines of a dead child's log file shown on the terminal."""


class StackError(ShadowdiffError):
    """A child failed to start, did not become healthy, or exited while the stack was up."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    argv: tuple[str, ...]
    health_urls: tuple[str, ...]
    """Polled until each answers: `http://...` with 200, `tcp://host:port` by accepting a connection. The stack is
    ready when every child's do."""
    log_file: Path | None = None
    """Where its output goes (appended); None: the terminal, each line prefixed with the name."""


def cli_argv(*args: str) -> tuple[str, ...]:
    """Run a `shadowdiff` subcommand with this interpreter: its console script when installed beside it."""
    script = Path(sys.executable).with_name("shadowdiff")
    if script.exists():
        return (str(script), *args)
    return (sys.executable, "-c", "from proxy.cli import main; main()", *args)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. PR_SET_PDEATHSIG = 1: SIGTERM us when the parent dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Stack:
    """Children of one `up`; `start`, `wait_healthy`, `wait`, `stop` (idempotent)."""

    def __init__(self, children: Sequence[ChildSpec], *, out: IO[str] | None = None) -> None:
        self.children = tuple(children)
        self._out = out if out is not None else sys.stdout
        self._lock = threading.Lock()
        self._popens: dict[str, subprocess.Popen[str]] = {}
        self._threads: list[threading.Thread] = []
        self._width = max((len(c.name) for c in children if c.log_file is None), default=0)

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # their output is a pipe: without this it arrives in blocks
        for child in self.children:
            out: IO[str] | int = subprocess.PIPE
            if child.log_file is not None:
                child.log_file.parent.mkdir(parents=True, exist_ok=True)
                out = child.log_file.open("a", encoding="utf-8")
                out.write(f"--- {child.name} starting at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
                out.flush()
            try:
                popen = subprocess.Popen(
                    child.argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    bufsize=1,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
            finally:
                if not isinstance(out, int):
                    out.close()  # the child has its own copy
            self._popens[child.name] = popen
            if popen.stdout is not None:
                thread = threading.Thread(target=self._pump, args=(child.name, popen), daemon=True)
                thread.start()
                self._threads.append(thread)

    def say(self, text: str) -> None:
        with self._lock:
            print(text, file=self._out, flush=True)

    def _pump(self, name: str, popen: subprocess.Popen[str]) -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            self.say(f"{name:<{self._width}} | {line.rstrip()}")

    def show_log_tail(self, name: str) -> str:
        """Print the end of a child's log file (when it has one); returns a hint naming the file."""
        child = next((c for c in self.children if c.name == name), None)
        if child is None or child.log_file is None:
            return "see its output above"
        try:
            lines = child.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        except OSError:
            return f"see {child.log_file}"
        for line in lines:
            self.say(f"{name:<{self._width}} | {line}")
        return f"the end of {child.log_file} is above"

    def exited(self) -> tuple[str, int] | None:
        """The first child that has exited, with its exit code."""
        for name, popen in self._popens.items():
            code = popen.poll()
            if code is not None:
                return name, code
        return None

    def wait_healthy(self, timeout: float, *, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Until every child's health URL answers 200: True; False if `should_stop()`; StackError otherwise.

        URLs are checked in order, each only once those before it answer. Nothing is sent through the proxy: a
        request there would be mirrored and compared, a `default` service with a diff before any user traffic.
        """
        deadline = time.monotonic() + timeout
        waiting = [(child.name, url) for child in self.children for url in child.health_urls]
        while waiting:
            if should_stop():
                return False
            gone = self.exited()
            if gone is not None:
                hint = self.show_log_tail(gone[0])
                raise StackError(f"{gone[0]} exited with code {gone[1]} while starting ({hint})")
            while waiting and _answers(waiting[0][1]):
                waiting.pop(0)
            if time.monotonic() > deadline:
                raise StackError(f"not healthy after {timeout:.0f}s: {', '.join(url for _, url in waiting)}")
            if waiting:
                time.sleep(0.2)
        return True

    def wait(self, should_stop: Callable[[], bool]) -> tuple[str, int] | None:
        """Until `should_stop()` (None) or a child exits (its name and code)."""
        while not should_stop():
            gone = self.exited()
            if gone is not None:
                return gone
            time.sleep(0.2)
        return None

    def run(self, *, ready_timeout: float, banner: str) -> None:
        """Start; once healthy print `banner`; on SIGINT/SIGTERM or a child's exit, stop everything.

        StackError when a child fails to start or dies while the stack is up (after stopping the others).
        """
        stopping: list[int] = []
        previous = {sig: signal.signal(sig, lambda sig, _frame: stopping.append(sig)) for sig in STOP_SIGNALS}
        try:
            self.start()
            if self.wait_healthy(ready_timeout, should_stop=lambda: bool(stopping)):
                self.say(banner)
                gone = self.wait(lambda: bool(stopping))
                if gone is not None:
                    hint = self.show_log_tail(gone[0])
                    raise StackError(f"{gone[0]} exited with code {gone[1]}; stopped the others ({hint})")
        finally:
            self.say("stopping…")
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM each child, last started first (the proxy before the apps it fronts); SIGKILL stragglers."""
        for name in reversed(self._popens):
            popen = self._popens[name]
            if popen.poll() is None:
                popen.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout)
            if popen.poll() is None:
                self.say(f"{name} did not stop within {timeout:.0f}s; killing it")
                popen.kill()
                popen.wait()
        for thread in self._threads:
            thread.join(timeout=2)
        for popen in self._popens.values():
            if popen.stdout is not None:
                popen.stdout.close()


def _answers(url: str) -> bool:
    if url.startswith("tcp://"):
        host, _, port = url.removeprefix("tcp://").rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                return True  # listening; closed at once, without a request
        except (OSError, ValueError):
            return False
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def sqlite_path(database_url: str) -> Path:
    """The file behind a `sqlite:///path` or `sqlite+aiosqlite:///path` URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        raise StackError(f"{database_url!r} is not a database URL") from None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        raise StackError(f"{database_url!r} is not a SQLite file URL")
    return Path(str(url.database))


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (safe with WAL files around), replacing `target`."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def seed_both(legacy_database_url: str, v2_database_url: str) -> list[str]:
    """Seed V1 and V2 with the same catalogue; one line per database saying what was loaded."""
    from sqlalchemy.exc import SQLAlchemyError

    import legacy_app.seed
    import v2_app.seed
    from proxy.runtime.demo import demo_catalogue

    catalogue = demo_catalogue()
    lines = []
    for name, seeder, url in (
        ("V1", legacy_app.seed.seed_database, legacy_database_url),
        ("V2", v2_app.seed.seed_database, v2_database_url),
    ):
        try:
            loaded = seeder(url, catalogue)
        except (SQLAlchemyError, OSError) as exc:
            raise ShadowdiffError(f"cannot seed {name} at {url}: {str(exc).splitlines()[0]}") from None
        if loaded:
            lines.append(f"{name}: loaded {loaded} products and {len(catalogue['customers'])} customers into {url}")
        else:
            lines.append(f"{name}: {url} already has products; nothing loaded")
    return lines


def cli_name() -> str:
    """How to type the `shadowdiff` command from here: its name when PATH finds this one, else its path."""
    script = Path(sys.executable).with_name("shadowdiff")
    found = shutil.which("shadowdiff")
    if found is not None and Path(found).resolve() == script.resolve():
        return "shadowdiff"
    with contextlib.suppress(ValueError):
        return str(script.absolute().relative_to(Path.cwd()))
    return str(script)


def banner(
    proxy_url: str,
    admin_url: str,
    v1_url: str,
    v2_url: str,
    *,
    secondary_url: str | None = None,
    logs: dict[str, Path] | None = None,
    cli: str = "shadowdiff",
    status_args: str = "",
    report_args: str = "",
) -> str:
    """What `up` prints once everything is healthy: where to go, what to try; lines fit 80 columns."""
    logs = logs or {}
    rows = [
        ("proxy", proxy_url, "send traffic here"),
        ("admin", admin_url, "web report, JSON API, /metrics"),
        ("V1", v1_url, "legacy app"),
        ("V2", v2_url, "new app"),
    ]
    if secondary_url is not None:
        rows.append(("secondary", secondary_url, "second V1"))
    names = {"V1": "v1", "V2": "v2", "secondary": "secondary"}
    lines = ["", "shadowdiff is up:"]
    for name, url, what in rows:
        log = logs.get(names.get(name, ""))
        lines.append(f"  {name:<11}{url:<24}{what}" + (f", logs to {log}" if log else ""))
    lines += [
        "",
        "try:",
        f"  curl {proxy_url}/api/products/1",
        f"  {cli} status{status_args}",
        f"  {cli} report{report_args}",
    ]
    if cli != "shadowdiff":
        lines += ["", f"The CLI is {cli}; `make shell` (or `source {Path(cli).parent}/activate`)", "puts it on PATH."]
    if logs:
        lines.append("To see the apps' logs here instead of in files: `shadowdiff up --verbose`.")
    lines += ["", "ready (Ctrl-C stops everything)"]
    return "\n".join(lines)
