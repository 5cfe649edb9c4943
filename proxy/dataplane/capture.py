"""Capture: client requests recorded in full to gzip'd JSON Lines, for `shadowdiff replay`, off the serving path.

The event loop only hands each request (the scope's headers and the body it already read) to a bounded queue; a
thread of its own redacts, encodes, compresses and writes. A full queue drops the request and counts it
(`shadowdiff_dropped_total{reason="capture_full"}`): recording never delays or fails a client's request.

Files: `capture-<UTC time>-<pid>.jsonl.gz` in the capture folder, written as `….jsonl.gz.part` and renamed when
closed (on rotation past `rotate_bytes`, and at shutdown). Past `max_bytes` in all, the oldest closed files are
deleted. Each file starts with a header line (`{"format": "shadowdiff-capture", "version": 1, ...}`), then one line
per request: `t` (epoch seconds), `id`, `service`, `session`, `method`, `target` (raw path and query), `headers`
(name/value pairs as sent), and `body` (text) or `body_b64`.

Secrets follow the store's rules (`diffs.redaction`): Authorization, Cookie and the other secret headers, JSON body
fields and query parameters named by `redact_fields` become "[REDACTED]" — except headers named in `keep_headers`,
which are written in clear. The session key is a hash of the session header's or cookie's value, never the value.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import os
import queue
import random
import threading
import time
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import structlog

from diffs.redaction import REDACTED, Redactor
from proxy.config import CaptureConfig
from proxy.dataplane.headers import Inbound
from proxy.dataplane.metrics import ProxyMetrics
from proxy.errors import ConfigError

log = structlog.get_logger("shadowdiff.capture")

FORMAT = "shadowdiff-capture"
VERSION = 1
SUFFIX = ".jsonl.gz"
PART = ".part"
QUEUE_BYTES = 32 * 1024 * 1024
"""Request bodies waiting for the writer thread, at most; past it requests are not recorded (counted)."""
FLUSH_SECONDS = 1.0
"""How often the open file is flushed, so a reader (or a crash) loses at most this much."""

_Item = tuple[float, str, str, str, str, list[tuple[bytes, bytes]], bytes]
"""(epoch seconds, request id, service, method, raw target, headers as ASGI has them, body)."""


def session_key(headers: Iterable[tuple[str, str]], header: str | None, cookie: str | None) -> str | None:
    """The session a request belongs to: a hash of its session header's value, else of its session cookie's."""
    wanted_header = header.lower() if header else None
    from_header = from_cookie = None
    for name, value in headers:
        lower = name.lower()
        if wanted_header is not None and lower == wanted_header and from_header is None:
            from_header = value.strip()
        elif cookie and lower == "cookie" and from_cookie is None:
            from_cookie = _cookie(value, cookie)
    key = from_header or from_cookie
    if not key:
        return None
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


class Capture:
    """Records requests into `config.dir` from a writer thread; `record` is the data plane's one call."""

    def __init__(
        self,
        config: CaptureConfig,
        *,
        redact_fields: Iterable[str],
        metrics: ProxyMetrics | None = None,
    ) -> None:
        if not config.dir:
            raise ValueError("capture needs a folder (capture.dir)")
        self.config = config
        self.directory = Path(config.dir)
        self._redactor = Redactor(tuple(redact_fields))
        self._keep = frozenset(config.keep_headers)
        self._rate = config.sample_rate
        self._metrics = metrics
        self._queue: queue.Queue[_Item | None] = queue.Queue(config.queue_size)
        self._lock = threading.Lock()
        self._held = 0
        self._thread: threading.Thread | None = None
        self.recorded = 0
        """Requests handed to the writer."""
        self.written = 0
        self.dropped = 0
        """Requests not recorded because the queue was full."""
        self.failed = 0
        """Requests that could not be encoded or written (logged)."""
        self.deleted_files = 0
        """Closed files deleted to stay under `max_bytes`."""

    # -- the event loop's side ------------------------------------------------------------------------------------

    def record(
        self, scope: MutableMapping[str, Any], body: bytes, started_at: datetime, inbound: Inbound, service: str
    ) -> None:
        """Hand one request to the writer thread; never blocks. A shadow's own request (marked) is not recorded."""
        if inbound.marked or (self._rate < 1.0 and random.random() >= self._rate):
            return
        size = len(body)
        with self._lock:
            if self._held + size > QUEUE_BYTES:
                self._drop()
                return
            self._held += size
        raw_path = scope.get("raw_path")
        target = raw_path.decode("latin-1") if raw_path else scope["path"]
        query = scope["query_string"]
        if query:
            target = f"{target}?{query.decode('latin-1')}"
        item = (started_at.timestamp(), inbound.request_id, service, scope["method"], target, scope["headers"], body)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._held -= size
            self._drop()
            return
        self.recorded += 1

    def _drop(self) -> None:
        self.dropped += 1
        if self._metrics is not None:
            self._metrics.drop("capture_full")

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the folder (0700: what it holds may be sensitive) and start the writer thread."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = self.directory / f".probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"Config 'capture.dir' has value {str(self.directory)!r}. Cannot write there: {exc.strerror or exc}."
            ) from None
        self._thread = threading.Thread(target=self._run, name="shadowdiff-capture", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to `timeout` seconds), close the open file and rename it to its final name."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("capture queue still full at shutdown; its last requests are not written")
        thread.join(timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.close, timeout)

    # -- the writer thread --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        files = _Files(self.directory, self.config, self._header())
        flushed = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=FLUSH_SECONDS)
                except queue.Empty:
                    files.flush()
                    flushed = time.monotonic()
                    continue
                if item is None:
                    return
                with self._lock:
                    self._held -= len(item[6])
                try:
                    files.write(self._encode(item))
                    self.written += 1
                except Exception as exc:
                    self.failed += 1
                    if self.failed & (self.failed - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure
                        log.warning("capture could not write a request", error=str(exc), failed=self.failed)
                if time.monotonic() - flushed >= FLUSH_SECONDS:
                    files.flush()
                    flushed = time.monotonic()
        finally:
            files.close()
            self.deleted_files = files.deleted

    def _header(self) -> bytes:
        config = self.config
        header = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.now(UTC).isoformat(),
            "redacted": {"fields": list(self._redactor.fields), "marker": REDACTED},
            "kept_headers": sorted(self._keep),
            "session": {"header": config.session_header, "cookie": config.session_cookie},
        }
        return orjson.dumps(header) + b"\n"

    def _encode(self, item: _Item) -> bytes:
        at, request_id, service, method, target, raw_headers, body = item
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw_headers]
        session = session_key(headers, self.config.session_header, self.config.session_cookie)
        redactor, keep = self._redactor, self._keep
        headers = [
            (name, value if name in keep or not redactor.is_secret_header(name) else REDACTED)
            for name, value in headers
        ]
        path, sep, query = target.partition("?")
        if sep:
            target = f"{path}?{redactor.redact_query(query)}"
        body = redactor.redact_body(body)
        record: dict[str, Any] = {
            "t": at,
            "id": request_id,
            "service": service,
            "session": session,
            "method": method,
            "target": target,
            "headers": headers,
        }
        try:
            record["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            record["body_b64"] = base64.b64encode(body).decode("ascii")
        return orjson.dumps(record) + b"\n"


class _Files:
    """The open capture file, its rotation by size and the bound on all files together (writer thread only)."""

    def __init__(self, directory: Path, config: CaptureConfig, header: bytes) -> None:
        self.directory = directory
        self.rotate_bytes = config.rotate_bytes
        self.max_bytes = config.max_bytes
        self.header = header
        self.deleted = 0
        self._raw: IO[bytes] | None = None
        self._gzip: gzip.GzipFile | None = None
        self._path: Path | None = None
        self._sequence = 0

    def write(self, line: bytes) -> None:
        if self._gzip is None:
            self._open()
        assert self._gzip is not None and self._raw is not None
        self._gzip.write(line)
        if self._raw.tell() >= self.rotate_bytes:
            self._finish()

    def flush(self) -> None:
        if self._gzip is not None:
            self._gzip.flush()  # a sync flush: everything so far can be read back from the .part file

    def close(self) -> None:
        self._finish()

    def _open(self) -> None:
        self._make_room()
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        path = self.directory / f"capture-{stamp}Z-{os.getpid()}-{self._sequence:04d}{SUFFIX}{PART}"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._raw = os.fdopen(descriptor, "wb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)
        self._path = path
        self._gzip.write(self.header)

    def _finish(self) -> None:
        gz, raw, path = self._gzip, self._raw, self._path
        self._gzip = self._raw = self._path = None
        if gz is None or raw is None or path is None:
            return
        try:
            gz.close()
        finally:
            raw.close()
        path.rename(path.with_name(path.name.removesuffix(PART)))

    def _make_room(self) -> None:
        """Delete the oldest closed files until they and a whole new file fit under `max_bytes`."""
        closed = []
        for path in self.directory.glob(f"capture-*{SUFFIX}"):
            try:
                closed.append((path.name, path, path.stat().st_size))
            except FileNotFoundError:  # another worker deleted it a moment ago
                continue
        closed.sort()
        total = sum(size for _, _, size in closed)
        for _, path, size in closed:
            if total + self.rotate_bytes <= self.max_bytes:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            total -= size
            self.deleted += 1
            log.info("capture: deleted the oldest file to stay under capture.max_bytes", file=path.name)
