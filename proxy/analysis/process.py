"""The analysis process: `python -m proxy.analysis.process FD`, started by its worker's `AnalysisChannel`.

It reads frames from the socket FD (settings first, then exchanges, drop records and id pairs), hands them to an
`Analyzer`, and reports progress back every `REPORT_SECONDS` while something changed. When the data plane closes its
end (shutdown, or it died) it writes what is queued within `drain_seconds` and exits. SIGINT and SIGTERM are left to
its worker: a process group stopped as a whole must not lose what this process holds before the worker has drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import sys
from typing import Any

import structlog

from diffs.errors import ShadowdiffError
from diffs.storage import Store
from proxy.analysis import wire
from proxy.analysis.analyzer import Analyzer
from proxy.config import Settings, configure_logging

log = structlog.get_logger("shadowdiff.analysis")

REPORT_SECONDS = 0.02
"""How often progress goes back to the data plane at most (its queue bound is released at this pace)."""
NICENESS = 10
"""Analysis is background work: when the cores are busy, the processes that answer clients get them first (and a
backlog here ends in counted drops, never in a slower client)."""


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, Any, memoryview] | None:
    """The next frame, or None at the end of the stream."""
    try:
        (size,) = wire.LENGTH.unpack(await reader.readexactly(4))
        return wire.split(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


class Reporter:
    """Sends the analyzer's progress while it changes; the first report says the process is ready."""

    def __init__(self, analyzer: Analyzer, writer: asyncio.StreamWriter) -> None:
        self.analyzer = analyzer
        self.writer = writer
        self._last: tuple[int, int, int, float | None] | None = None

    def send(self, *, force: bool = False) -> None:
        analyzer = self.analyzer
        state = (analyzer.settled, analyzer.handled, analyzer.writer.pending, analyzer.writer.failing_since)
        if state == self._last and not force and not (analyzer.outcomes or analyzer.drops):
            return
        self._last = state
        report = analyzer.progress()
        report["pid"] = os.getpid()
        if not self.writer.is_closing():
            self.writer.writelines(wire.progress_parts(report))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            self.send()


async def serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    first = await read_frame(reader)
    if first is None or first[0] != wire.SETTINGS:
        return  # the worker went away before it said anything
    settings: Settings = pickle.loads(first[2])
    configure_logging(settings)
    store = await Store.from_settings(settings)
    analyzer = Analyzer(settings, store)
    reporter = Reporter(analyzer, writer)
    try:
        await analyzer.start()
        reporter.send(force=True)
        reporting = asyncio.get_running_loop().create_task(reporter.run(), name="shadowdiff-progress")
        try:
            await consume(reader, analyzer)
        finally:
            reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporting
        await analyzer.aclose(settings.drain_seconds)
        reporter.send(force=True)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
    finally:
        writer.close()
        await store.close()


async def consume(reader: asyncio.StreamReader, analyzer: Analyzer) -> None:
    while (item := await read_frame(reader)) is not None:
        kind, meta, bodies = item
        if kind == wire.EXCHANGE:
            analyzer.exchange(wire.read_exchange(meta, bodies))
        elif kind == wire.DROPPED:
            analyzer.dropped(wire.read_exchange(meta, bodies))
        elif kind == wire.PAIRS:
            analyzer.learned(wire.read_pairs(meta))
        else:
            log.error("unknown frame kind from the data plane", kind=kind)
        # A backlog of frames is read without suspending: let the writer and the reporter run between two.
        await asyncio.sleep(0)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for sig in (signal.SIGINT, signal.SIGTERM):  # the worker decides, and closes the channel
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    sock = socket.socket(fileno=int(args[0]))
    factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            runner.run(serve(sock))
        except ShadowdiffError as exc:  # the store cannot be opened: one line; the worker counts and retries
            log.error("analysis process cannot start", error=str(exc))
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()
