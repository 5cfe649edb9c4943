"""Where replayed requests come from: a file or folder (format told by its content) or the store's exchanges.

`open_source("yesterday.har")` reads a shadowdiff capture (gzip'd or plain JSON Lines), a HAR 1.2 file, or a
GoReplay file (gzip'd or not), whatever its name; a folder is read file by file in name order (capture files sort
by time). `open_source("store")` reads the live exchanges the store kept. Each source yields `Recorded` requests
and `Bad` entries in order, and can be read more than once (once to count, once to replay).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, cast
from urllib.parse import quote

import orjson

from diffs.storage import Cursor, Store, StoredRequest, queries
from proxy.dataplane.capture import FORMAT, PART, VERSION
from proxy.errors import ShadowdiffError
from proxy.replay.formats import FormatError, gor_records, har_entries, looks_like_gor
from proxy.replay.requests import Bad, Recorded

STORE = "store"
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024
_BODYLESS = frozenset(("GET", "HEAD", "DELETE", "OPTIONS"))


class SourceError(ShadowdiffError):
    """The source as a whole cannot be read: missing, unreadable, or of no known format."""


@dataclass
class Source:
    """A named source of recorded requests; `notes` gathers what was left out on purpose (printed once)."""

    name: str
    kind: str
    notes: Counter[str] = field(default_factory=Counter)

    def items(self) -> AsyncIterator[Recorded | Bad]:
        raise NotImplementedError


def open_source(spec: str, *, store: Store | None = None, since: datetime | None = None) -> Source:
    """The source named on the command line; SourceError when it cannot be read at all."""
    if spec == STORE:
        if store is None:
            raise ValueError("the store source needs the store")
        return StoreSource(STORE, "the store's live exchanges", store=store, since=since)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(spec, "folder", path=path)
    if not path.exists():
        raise SourceError(f"{spec}: no such file or folder (give a capture, a HAR or a GoReplay file, or 'store')")
    return FileSource(spec, _detect(path), path=path)


# ---------------------------------------------------------------- files


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    return cast(IO[bytes], gzip.open(path, "rb")) if compressed else path.open("rb")


def _detect(path: Path) -> str:
    """The format from the first bytes of the (decompressed) content: capture, HAR or GoReplay."""
    try:
        with _open(path) as stream:
            head = stream.read(64 * 1024)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read it: {exc}") from None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0]
        try:
            header = orjson.loads(first)
        except orjson.JSONDecodeError:
            header = None
        if isinstance(header, dict) and header.get("format") == FORMAT:
            if not isinstance(header.get("version"), int) or header["version"] > VERSION:
                raise SourceError(f"{path}: a capture of version {header.get('version')}; this shadowdiff reads 1")
            return "shadowdiff capture"
        if b'"log"' in text[:4096]:
            return "HAR"
    if looks_like_gor(text):
        return "GoReplay"
    shown = head[:40].decode("latin-1").encode("unicode_escape").decode("ascii")
    raise SourceError(f"{path}: unknown format: not a shadowdiff capture, a HAR 1.2 or a GoReplay file ({shown!r}...)")


@dataclass
class FileSource(Source):
    path: Path = Path()

    async def items(self) -> AsyncIterator[Recorded | Bad]:
        for item in self._read():
            yield item

    def _read(self) -> Iterator[Recorded | Bad]:
        try:
            if self.kind == "HAR":
                with _open(self.path) as stream:
                    data = stream.read()
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError as exc:
                    raise SourceError(
                        f"{self.name}: a HAR file must be UTF-8 ({exc.reason} at byte {exc.start})"
                    ) from None
                yield from har_entries(text, self.notes)
            elif self.kind == "GoReplay":
                with _open(self.path) as stream:
                    yield from _guarded(gor_records(iter(lambda: stream.read(_CHUNK), b""), self.notes), "record")
            else:
                yield from _capture_lines(self.path)
        except FormatError as exc:
            raise SourceError(f"{self.name}: {exc}") from None
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot read it: {exc}") from None


def _guarded(items: Iterator[Recorded | Bad], unit: str) -> Iterator[Recorded | Bad]:
    """A compressed file cut short: what was read, then one `Bad` saying so."""
    seen = 0
    try:
        for item in items:
            seen += 1
            yield item
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        yield Bad(f"after {unit} {seen}", f"the compressed file ends early ({exc}): truncated?")


def _capture_lines(path: Path) -> Iterator[Recorded | Bad]:
    number = 0
    try:
        with _open(path) as stream:
            for number, line in enumerate(stream, 1):
                if number == 1 or not line.strip():
                    continue  # the header line, checked by _detect
                yield _capture_record(f"line {number}", line)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        yield Bad(f"after line {number}", f"the file ends early ({exc}): truncated, or still being written?")


def _capture_record(where: str, line: bytes) -> Recorded | Bad:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Bad(where, f"not JSON ({exc})")
    if not isinstance(record, dict):
        return Bad(where, "not a JSON object")
    method, target, headers = record.get("method"), record.get("target"), record.get("headers")
    if not isinstance(method, str) or not isinstance(target, str) or not isinstance(headers, list):
        return Bad(where, "lacks method, target or headers")
    if not all(isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers):
        return Bad(where, "headers are not [name, value] pairs")
    if isinstance(record.get("body_b64"), str):
        try:
            body = base64.b64decode(record["body_b64"], validate=True)
        except binascii.Error:
            return Bad(where, "body_b64 is not valid base64")
    else:
        body = str(record.get("body") or "").encode("utf-8")
    at = record.get("t")
    session = record.get("session")
    return Recorded(
        where,
        method,
        target,
        tuple((name, value) for name, value in headers),
        body,
        float(at) if isinstance(at, int | float) else None,
        session if isinstance(session, str) else None,
    )


@dataclass
class FolderSource(Source):
    """Every file of a folder, by name; `.part` files (a capture still being written) are left out and noted."""

    path: Path = Path()

    async def items(self) -> AsyncIterator[Recorded | Bad]:
        files = sorted(p for p in self.path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise SourceError(f"{self.name}: the folder has no files")
        for path in files:
            if path.name.endswith(PART):
                self.notes[f"files still being written ({PART}) not read"] += 1
                continue
            try:
                source = FileSource(path.name, _detect(path), path=path)
            except SourceError as exc:
                yield Bad(path.name, str(exc).removeprefix(f"{path}: "))
                continue
            async for item in source.items():
                if isinstance(item, Bad):
                    yield Bad(f"{path.name}: {item.where}", item.reason)
                else:
                    yield Recorded(f"{path.name}: {item.where}", *_fields(item))
            self.notes.update(source.notes)


def _fields(item: Recorded) -> tuple[str, str, tuple[tuple[str, str], ...], bytes, float | None, str | None]:
    return item.method, item.target, item.headers, item.body, item.at, item.session


# ---------------------------------------------------------------- the store


@dataclass
class StoreSource(Source):
    """The live exchanges the store kept: in full where retention kept their payload, else only what a summary has.

    A summary has no headers and no body: a GET, HEAD, DELETE or OPTIONS is replayed without its headers; a POST,
    PUT or PATCH without its body cannot be, nor can a request whose body was truncated. Both are counted in `notes`.
    """

    store: Store | None = None
    since: datetime | None = None

    async def items(self) -> AsyncIterator[Recorded | Bad]:
        assert self.store is not None
        after: Cursor | None = None
        self.notes.clear()
        while True:
            page = await queries.live_requests(self.store, since=self.since, after=after)
            if not page:
                return
            for request in page:
                recorded = self._recorded(request)
                if recorded is not None:
                    yield recorded
            after = Cursor(page[-1].started_at, page[-1].id)

    def _recorded(self, request: StoredRequest) -> Recorded | None:
        where = f"exchange {request.id}"
        target = quote(request.path, safe="/:@!$&'()*+,;=-._~")
        if request.query:
            target = f"{target}?{request.query}"
        if request.headers is None or request.body is None:
            if request.method.upper() not in _BODYLESS:
                self.notes[f"{request.method} exchanges kept only as summaries (no body): not replayable"] += 1
                return None
            self.notes["exchanges replayed without their headers (the store kept only their summary)"] += 1
            return Recorded(where, request.method, target, (), b"", request.started_at.timestamp())
        if request.body_truncated:
            self.notes["exchanges with a truncated body: not replayable"] += 1
            return None
        self.notes["exchanges replayed in full"] += 1
        return Recorded(where, request.method, target, request.headers, request.body, request.started_at.timestamp())
