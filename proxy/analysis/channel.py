"""The data plane's end of the analysis channel: each finished exchange goes to this worker's analysis process over a
Unix socket, bounded and counted; the process is restarted when it dies, and what it held is counted as lost.

`submit` never blocks and never copies a body: it encodes the metadata (~2 µs) and queues the bodies themselves for
the transport, which writes them as the socket drains (one `writelines` per loop turn, however many exchanges).

Bounds, per worker: at most `queue_size` exchanges and `max(queue_bytes, 4 × max_response_body)` of their bodies
are held from `submit` until the analysis process reports them *settled* (stored, or dropped and counted). Past a
bound the exchange is dropped: `submit` returns False (the mirror counts `dropped{queue_full}`) and a body-less drop
record goes instead, so that the report has its `dropped` row. Records (drops, id pairs) have their own bound,
`RECORDS`; a drop past it is counted as `dropped{unrecorded}` and has no row.

An analysis process that exits is replaced (after a back-off when it keeps exiting at once). The exchanges it had
been sent and not settled are counted as `dropped{analysis_lost}` and sent to its successor as drop records, so
they still get rows; records are sent again as they were. Exchanges submitted meanwhile wait within the bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import structlog

from diffs.exchange import Exchange
from diffs.id_pairs import IdPair
from proxy.analysis import wire
from proxy.analysis.metrics import AnalysisMetrics
from proxy.config import Settings
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.sink import body_bytes
from proxy.errors import ShadowdiffError

log = structlog.get_logger("shadowdiff.analysis")

RECORDS = 5_000
"""Drop records and id pairs waiting for the analysis process."""
START_SECONDS = 60.0
"""How long an analysis process may take to open the store and say it is ready."""
FAST_EXIT_SECONDS = 5.0
"""A process that exits sooner than this after its start is restarted after a growing back-off."""
MAX_BACKOFF_SECONDS = 10.0
EXIT_GRACE_SECONDS = 5.0
"""At shutdown, how long the analysis process gets beyond the drain timeout to write and exit before it is killed."""
COMMAND = (sys.executable, "-m", "proxy.analysis.process")

_EXCHANGE = 0
_RECORD = 1
Entry = tuple[int, Any, int]
"""(kind, the exchange or a record's frame parts, body bytes held)."""


class AnalysisUnavailable(ShadowdiffError):
    """The analysis process could not be started, or exited before it was ready."""


class _Link(asyncio.Protocol):
    """The socket to one analysis process: frames out (one write per loop turn), progress reports in."""

    def __init__(self, channel: AnalysisChannel, loop: asyncio.AbstractEventLoop) -> None:
        self.channel = channel
        self.loop = loop
        self.transport: Any = None
        """uvloop's Unix transport is no `asyncio.WriteTransport` subclass, though it has the same methods."""
        self.closed: asyncio.Future[None] = loop.create_future()
        self._buffer = bytearray()
        self._outbox: list[bytes] = []
        self._flush_due = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = wire.LENGTH.unpack_from(buffer)
            if len(buffer) < 4 + size:
                return
            kind, meta, _ = wire.split(bytes(buffer[4 : 4 + size]))
            del buffer[: 4 + size]
            if kind == wire.PROGRESS:
                self.channel._progress(self, meta)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, parts: list[bytes]) -> None:
        self._outbox.extend(parts)
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_due = False
        outbox, self._outbox = self._outbox, []
        transport = self.transport
        if outbox and transport is not None and not transport.is_closing():
            transport.writelines(outbox)

    def finish(self) -> None:
        """Everything is written: the analysis process will read to the end, store what it has and exit."""
        self.flush()
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AnalysisChannel:
    """An `ExchangeSink` that compares and stores in an analysis process of this worker (see the module doc)."""

    def __init__(self, settings: Settings, metrics: ProxyMetrics, *, command: Sequence[str] = COMMAND) -> None:
        self.settings = settings
        self.metrics = AnalysisMetrics(metrics)
        self.max_exchanges = settings.queue_size
        self.max_bytes = max(settings.queue_bytes, 4 * settings.max_response_body)
        self.max_records = RECORDS
        self._command = tuple(command)
        self._entries: deque[Entry] = deque()
        self._exchanges = 0
        self._bytes = 0
        self._records = 0
        self._link: _Link | None = None
        """Set while a ready process is connected; every entry before `_sent` has been written to it."""
        self._process: subprocess.Popen[bytes] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._sent = 0
        self._settled = 0
        self._handled = 0
        self._store_pending = 0
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self.pid: int | None = None
        """The analysis process's pid, as it reported it."""
        self.restarts = 0
        self.lost = 0
        self.dropped = 0
        self.unrecorded = 0

    # -- the hot path -------------------------------------------------------------------------------------------------

    def submit(self, exchange: Exchange) -> bool:
        """Hand on one exchange without blocking; False when it was dropped (the caller counts it)."""
        if self._closing:
            return False
        size = body_bytes(exchange)
        if self._exchanges >= self.max_exchanges or self._bytes + size > self.max_bytes:
            self.dropped += 1
            if self._record_room():  # a record that would not fit is not encoded (the serving loop's CPU)
                self._record(wire.dropped_parts(exchange, "queue_full"))
            return False
        self._exchanges += 1
        self._bytes += size
        self._entries.append((_EXCHANGE, exchange, size))
        link = self._link
        if link is not None:
            link.write(wire.exchange_parts(exchange))
            self._sent += 1
        return True

    def learned(self, pairs: Sequence[IdPair]) -> None:
        """Id pairs the data plane learned: the analysis process needs them before the exchanges that show them."""
        if pairs:
            self._record(wire.pairs_parts(pairs))

    def _record_room(self) -> bool:
        """Whether one more record fits; when not, the drop it was for is counted as `unrecorded`."""
        if self._records < self.max_records:
            return True
        self.unrecorded += 1
        self.metrics.dropped("unrecorded")
        return False

    def _record(self, parts: list[bytes]) -> None:
        if not self._record_room():
            return
        self._records += 1
        self._entries.append((_RECORD, parts, 0))
        link = self._link
        if link is not None:
            link.write(parts)
            self._sent += 1

    @property
    def pending(self) -> int:
        """Exchanges handed on and not yet settled."""
        return self._exchanges

    @property
    def held_bytes(self) -> int:
        return self._bytes

    @property
    def waiting(self) -> int:
        """Exchanges and records handed on and not yet settled."""
        return len(self._entries)

    # -- reports from the analysis process ----------------------------------------------------------------------------

    def _progress(self, link: _Link, report: dict[str, Any]) -> None:
        if link is not self._link and (self._ready is None or self._ready.done()):
            return  # a late report from a process already given up
        settled = report["settled"]
        while self._settled < settled and self._entries:
            kind, _, size = self._entries.popleft()
            if kind == _EXCHANGE:
                self._exchanges -= 1
                self._bytes -= size
            else:
                self._records -= 1
            self._settled += 1
            self._sent -= 1
        self._handled = report["handled"]
        self._store_pending = report["store"]
        self.pid = report.get("pid", self.pid)
        self.metrics.apply(report["outcomes"], report["field_diffs"], report["drops"])
        self.metrics.set_store_failing(report.get("failing_since"))
        self._update_backlog()
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _update_backlog(self) -> None:
        unhandled = len(self._entries) - max(0, self._handled - self._settled)
        self.metrics.set_backlog(unhandled, self._store_pending)

    # -- the analysis process -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the analysis process and wait until it is ready; AnalysisUnavailable when it cannot start."""
        link = await self._connect()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(link), name="shadowdiff-analysis")

    async def _connect(self) -> _Link:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = subprocess.Popen(
                [*self._command, str(child.fileno())], pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            parent.close()
            raise AnalysisUnavailable(f"cannot start the analysis process: {exc}") from None
        finally:
            child.close()
        self._process = process
        loop = asyncio.get_running_loop()
        _, link = await loop.create_unix_connection(lambda: _Link(self, loop), sock=parent)
        self._ready = ready = loop.create_future()
        self._settled = self._handled = 0
        link.write(wire.frame(wire.SETTINGS, b"", pickle.dumps(self.settings)))
        await asyncio.wait({ready, link.closed}, timeout=START_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            link.close()
            code = await _reap(process, 1.0)
            raise AnalysisUnavailable(
                f"the analysis process did not start (exit code {code}; see the log above)"
                if code is not None
                else f"the analysis process was not ready within {START_SECONDS:g} s"
            )
        self._link = link
        self._sent = 0
        for kind, item, _ in self._entries:  # what waited while there was no process, in order
            link.write(wire.exchange_parts(item) if kind == _EXCHANGE else item)
            self._sent += 1
        self._update_backlog()
        return link

    async def _supervise(self, link: _Link) -> None:
        backoff = 0.0
        while True:
            started = time.monotonic()
            await asyncio.wait({link.closed})  # not `await link.closed`: cancelling this task must not cancel it
            if self._closing:
                return
            self._link = None
            process = self._process
            code = None if process is None else await _reap(process, 1.0)
            self._lose(process, code)
            fast = time.monotonic() - started < FAST_EXIT_SECONDS
            backoff = min(MAX_BACKOFF_SECONDS, max(0.5, backoff * 2)) if fast else 0.0
            while True:
                await asyncio.sleep(backoff)
                try:
                    link = await self._connect()
                    break
                except (AnalysisUnavailable, OSError) as exc:  # keep trying: exchanges wait (bounded) meanwhile
                    log.error("cannot restart the analysis process", error=str(exc))
                    backoff = min(MAX_BACKOFF_SECONDS, max(0.5, backoff * 2))

    def _lose(self, process: subprocess.Popen[bytes] | None, code: int | None) -> None:
        """The process exited: what it was sent and had not settled is lost, and recorded as such."""
        held, self._sent = self._sent, 0
        entries, self._entries = self._entries, deque()
        self._exchanges = self._bytes = self._records = 0
        lost = 0
        for index, entry in enumerate(entries):
            kind, item, size = entry
            if index < held and kind == _EXCHANGE:
                lost += 1
                self._record(wire.dropped_parts(item, "analysis_lost"))
                continue
            if kind == _EXCHANGE:
                self._exchanges += 1
                self._bytes += size
            else:
                self._records += 1
            self._entries.append(entry)
        self.lost += lost
        self.restarts += 1
        self.metrics.restarts.inc()
        if lost:
            self.metrics.dropped("analysis_lost", lost)
        log.warning(
            "analysis process exited; starting another",
            pid=None if process is None else process.pid,
            exit_code=code,
            lost=lost,
        )
        self._update_backlog()

    async def aclose(self, timeout: float) -> None:
        """Stop accepting; let the analysis process compare and store what it holds within `timeout` seconds (and
        a grace to exit), then count whatever is left as `dropped{shutdown}`."""
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        link, process = self._link, self._process
        if link is not None and process is not None:
            link.finish()
            code = await _reap(process, timeout + EXIT_GRACE_SECONDS)
            if code is None:
                log.warning("analysis process did not exit in time; killed it", pid=process.pid)
            await asyncio.wait({link.closed}, timeout=1.0)  # its last report may still be in the socket
            link.close()
        elif process is not None:
            await _reap(process, 0)
        left = self._exchanges
        if left:
            self.metrics.dropped("shutdown", left)
            log.warning("exchanges not analysed by shutdown", count=left)
        self._link = None


async def _reap(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait up to `timeout` seconds for the process to exit (killing it then); its exit code, None if killed."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.to_thread(process.wait)
            return None
        await asyncio.sleep(0.02)
    return process.returncode
