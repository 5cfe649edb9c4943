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
from collections.abc import Callable
from typing import Any

import structlog

from diffs.errors import ShadowdiffError
from diffs.storage import Store
from diffs.tasks import cancel_and_wait
from proxy.analysis import wire
from proxy.analysis.analyzer import Analyzer
from proxy.config import Settings, configure_logging

log = structlog.get_logger("shadowdiff.analysis")

REPORT_SECONDS = 0.02
"""How often progress goes back to the data plane at most (its queue bound is released at this pace)."""


READ = 64 * 1024
"""Bytes read per wakeup beyond the frame being completed: about the frames handled before other tasks (the
writer, the reporter) get a turn (~60 frames of 1 KiB bodies, a few ms)."""
BUFFER = 256 * 1024


class Inbound(asyncio.BufferedProtocol):
    """Frames from the data plane, read by the transport straight into one buffer and handed on as they complete,
    all those of a wakeup in one go. A frame's payload is a view of the buffer, valid during the handler's call
    only (`wire.read_exchange` copies the bodies out: the one copy a body costs here).

    The StreamReader this replaces copied a frame three times (into its buffer, a slice, `bytes`) and, a 64 KiB
    limit ahead, paused and resumed the socket many times per large frame: ~1 ms of CPU for a 700 KiB frame."""

    def __init__(self) -> None:
        self._buffer = bytearray(BUFFER)
        self._view = memoryview(self._buffer)
        self._start = 0
        """The first byte not handed on yet."""
        self._end = 0
        """The end of what was read."""
        self._handler: Callable[[int, Any, memoryview], None] | None = None
        self._first: asyncio.Future[tuple[int, Any, bytes] | None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done at the end of the stream; failed with what a handler raised."""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    async def first(self) -> tuple[int, Any, bytes] | None:
        """The first frame (the settings), its bodies copied; reading waits until `handle` says who takes the next."""
        return await self._first

    def handle(self, handler: Callable[[int, Any, memoryview], None]) -> None:
        """Hand every further frame to `handler` (kind, metadata, a view of its bodies), starting with those read."""
        self._handler = handler
        self.transport.resume_reading()
        self._frames()

    def get_buffer(self, sizehint: int) -> memoryview:
        start, end = self._start, self._end
        held = end - start
        wanted = held + READ
        if held >= 4:  # the frame's length is known: room for all of it (large frames are read in one piece)
            wanted = max(wanted, 4 + wire.LENGTH.unpack_from(self._buffer, start)[0])
        if start + wanted > len(self._buffer):
            if wanted <= len(self._buffer):
                self._view[:held] = bytes(self._view[start:end])  # a partial frame, moved to the front
            else:
                buffer = bytearray(max(wanted, BUFFER))
                buffer[:held] = self._view[start:end]
                self._buffer, self._view = buffer, memoryview(buffer)
            self._start, self._end = 0, held
            start, end = 0, held
        return self._view[end : start + wanted]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self._frames()

    def _frames(self) -> None:
        view, start, end = self._view, self._start, self._end
        try:
            while end - start >= 4:
                (size,) = wire.LENGTH.unpack_from(view, start)
                if end - start < 4 + size:
                    break
                payload = view[start + 4 : start + 4 + size]
                start += 4 + size
                self._start = start
                handler = self._handler
                if handler is None:  # the settings: the analyzer that takes what follows is not there yet
                    kind, meta, bodies = wire.split(payload)
                    self._first.set_result((kind, meta, bytes(bodies)))
                    self.transport.pause_reading()
                    break
                handler(*wire.split(payload))
        except Exception as exc:  # a frame that cannot be read or handled: the process ends, as it did before
            if not self.done.done():
                self.done.set_exception(exc)
            self.transport.close()
            return
        if self._start == self._end:
            self._start = self._end = 0

    def eof_received(self) -> bool:
        self._finish()
        return True  # keep our half open: the last progress report still goes out

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._first.done():
            self._first.set_result(None)
        if not self.done.done():
            self.done.set_result(None)


async def connect(sock: socket.socket) -> Inbound:
    """The data plane's socket, read by an `Inbound` (whose transport also carries progress back)."""
    _, inbound = await asyncio.get_running_loop().create_unix_connection(Inbound, sock=sock)
    return inbound


class Reporter:
    """Sends the analyzer's progress while it changes; the first report says the process is ready."""

    def __init__(self, analyzer: Analyzer, transport: asyncio.WriteTransport) -> None:
        self.analyzer = analyzer
        self.transport = transport
        self._last: tuple[int, int, int, float | None] | None = None

    def send(self, *, force: bool = False) -> None:
        analyzer = self.analyzer
        state = (analyzer.settled, analyzer.handled, analyzer.writer.pending, analyzer.writer.failing_since)
        if state == self._last and not force and not (analyzer.outcomes or analyzer.drops):
            return
        self._last = state
        report = analyzer.progress()
        report["pid"] = os.getpid()
        if not self.transport.is_closing():
            self.transport.writelines(wire.progress_parts(report))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            self.send()

    async def flush(self, timeout: float = 1.0) -> None:
        """Until what was sent is in the socket (or `timeout` seconds passed)."""
        deadline = asyncio.get_running_loop().time() + timeout
        transport = self.transport
        while not transport.is_closing() and transport.get_write_buffer_size():
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.005)


async def serve(sock: socket.socket) -> None:
    inbound = await connect(sock)
    try:
        first = await inbound.first()
        if first is None or first[0] != wire.SETTINGS:
            return  # the worker went away before it said anything
        settings: Settings = pickle.loads(first[2])
        with contextlib.suppress(OSError):
            os.nice(settings.analysis_niceness)  # background work: when the cores are busy, serving gets them first
        configure_logging(settings)
        store = await Store.from_settings(settings)
        try:
            analyzer = Analyzer(settings, store)
            reporter = Reporter(analyzer, inbound.transport)
            await analyzer.start()
            reporter.send(force=True)
            reporting = asyncio.get_running_loop().create_task(reporter.run(), name="shadowdiff-progress")
            try:
                await consume(inbound, analyzer)
            finally:
                await cancel_and_wait(reporting)
            await analyzer.aclose(settings.drain_seconds)
            reporter.send(force=True)
            await reporter.flush()
        finally:
            await store.close()
    finally:
        inbound.transport.close()


async def consume(inbound: Inbound, analyzer: Analyzer) -> None:
    """Hand every frame to `analyzer` until the data plane closes its end."""

    def handle(kind: int, meta: Any, bodies: memoryview) -> None:
        if kind == wire.EXCHANGE:
            analyzer.exchange(wire.read_exchange(meta, bodies))
        elif kind == wire.DROPPED:
            analyzer.dropped(wire.read_exchange(meta, bodies))
        elif kind == wire.PAIRS:
            analyzer.learned(wire.read_pairs(meta))
        else:
            log.error("unknown frame kind from the data plane", kind=kind)

    inbound.handle(handle)
    await inbound.done


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for sig in (signal.SIGINT, signal.SIGTERM):  # the worker decides, and closes the channel
        signal.signal(sig, signal.SIG_IGN)
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
