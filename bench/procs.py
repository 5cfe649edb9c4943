"""Child processes of the benchmark: each in its own session, waited for, measured from /proc, and always stopped."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Child:
    """A started process (the leader of its own process group) and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 20) -> str:
        """The last lines it printed, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ChildFailed(RuntimeError):
    """A child exited early or never became ready."""


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(child: Child, port: int, timeout: float = 20.0) -> None:
    """Block until `child` listens on `port`; raise with its output if it exits or takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise ChildFailed(f"{child.name} exited with {child.popen.returncode}:\n{child.log_tail()}")
        if port_open(port):
            return
        time.sleep(0.05)
    raise ChildFailed(f"{child.name} did not listen on :{port} within {timeout:.0f} s:\n{child.log_tail()}")


def stop(child: Child, grace: float = 10.0) -> None:
    """SIGTERM the child's process group, wait up to `grace`, then SIGKILL whatever is left of the group."""
    pgid = child.pid  # start_new_session made the child the leader of a group with its own pid
    if child.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            child.popen.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)  # workers that outlived their master, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.popen.wait(5)


@contextlib.contextmanager
def spawn(
    name: str,
    argv: Sequence[str],
    *,
    logdir: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    ready_timeout: float = 20.0,
) -> Iterator[Child]:
    """Start `argv` in a new session with output to `logdir/name.log`; wait for `port`; stop it when the block exits."""
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches only us; we stop the group ourselves
            env=None if env is None else dict(env),
        )
    child = Child(name, popen, log)
    try:
        if port is not None:
            wait_port(child, port, ready_timeout)
        yield child
    finally:
        stop(child)


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants, read from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split())
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants, summed."""
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE
    return total


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time of the `pids` and their live descendants, each process counted once."""
    ticks = 0
    for member in {m for pid in pids for m in tree(pid)}:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent in processes (user, nice, system) or lost to the hypervisor (steal), from /proc/stat.

    Interrupt time is left out: most of it is the benchmark's own loopback traffic, which no process is charged for.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + steal) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU time of this process and its reaped children (wrk), from getrusage."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
