"""Rollups: what reports read instead of exchanges, per (service, endpoint, direction, minute, run) (pure).

A `Cell` holds, for one key, the exchanges by outcome, a latency histogram per side (log buckets 1% wide, with the
sum of each bucket's latencies so a bucket's mean is exact when its latencies are equal), the field diffs by path and
kind (raw and noise), the status pairs, and the diff signatures (which non-noise paths each differing exchange had),
from which the findings of any set of finding fields are counted exactly. Cells merge by addition, so one written
per minute, hour and day (`GRAINS`) lets a report over any window read a few hundred rows (`cover`), whatever the
traffic.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import compress, islice
from operator import add

from diffs.exchange import Comparison, Outcome
from diffs.percentiles import LATENCY_BUCKETS_PER_E, HistogramBucket, latency_bucket

GRAINS = (60, 3600, 86400)
"""Seconds per rollup row: a minute, an hour and a day. Each exchange is added to one row of each."""
LIVE_RUN = ""
"""The `run` of live traffic in rollup keys (replays carry their run id)."""
OUTCOMES = ("match", "diff", "shadow_error", "skipped", "dropped")
MAX_SIGNATURES = 256
"""Distinct diff signatures kept per cell; beyond, exchanges are counted under `OTHER_SIGNATURE`."""
OTHER_SIGNATURE = "\x00other"
"""Exchanges whose signature did not fit: counted as findings when the endpoint has any finding field."""
NO_SHADOW = "-"

# Latency buckets kept: 1 µs to one hour (beyond, clamped into the end buckets).
FIRST_BUCKET = latency_bucket(0.001)
LAST_BUCKET = latency_bucket(3_600_000.0)
SPAN = LAST_BUCKET - FIRST_BUCKET + 1
_DENSE, _SPARSE = 0, 1
_HEADER = struct.Struct("<Bii")
_SWAP = sys.byteorder != "little"


def direction_of(primary_app: str, shadow_app: str | None) -> str:
    """ "v1>v2": the primary's app, then the shadow's (the other app when the exchange was not mirrored)."""
    if shadow_app is None:
        shadow_app = "v2" if primary_app == "v1" else "v1"
    return f"{primary_app}>{shadow_app}"


def split_direction(direction: str) -> tuple[str, str]:
    primary, _, shadow = direction.partition(">")
    return primary, shadow


def floor_time(at: datetime, grain: int) -> datetime:
    """The start of the `grain`-second period holding `at` (UTC)."""
    seconds = math.floor(at.timestamp())
    return datetime.fromtimestamp(seconds - seconds % grain, UTC)


def ceil_time(at: datetime, grain: int) -> datetime:
    floored = floor_time(at, grain)
    return floored if floored == at else floored + timedelta(seconds=grain)


# ---------------------------------------------------------------- latency histograms


class Histogram:
    """Counts and latency sums per log bucket; encodes to a few bytes a bucket and merges by adding."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[int, list[float]] = {}

    def __bool__(self) -> bool:
        return bool(self._buckets)

    def add(self, latency_ms: float, count: int = 1) -> None:
        bucket = min(max(latency_bucket(latency_ms), FIRST_BUCKET), LAST_BUCKET)
        entry = self._buckets.get(bucket)
        if entry is None:
            self._buckets[bucket] = [count, latency_ms * count]
        else:
            entry[0] += count
            entry[1] += latency_ms * count

    def merge(self, other: Histogram) -> None:
        for bucket, (count, total) in other._buckets.items():
            entry = self._buckets.get(bucket)
            if entry is None:
                self._buckets[bucket] = [count, total]
            else:
                entry[0] += count
                entry[1] += total

    @property
    def count(self) -> int:
        return int(sum(c for c, _ in self._buckets.values()))

    def buckets(self) -> tuple[HistogramBucket, ...]:
        return tuple(HistogramBucket(b, int(c), t / c) for b, (c, t) in sorted(self._buckets.items()) if c)

    def encode(self) -> bytes:
        """Dense from the first to the last bucket when that is compact, else (bucket, count, sum) triples."""
        if not self._buckets:
            return b""
        keys = sorted(self._buckets)
        low, high = keys[0], keys[-1]
        width = high - low + 1
        if width <= 2 * len(keys):
            counts = array("q", [0]) * width
            sums = array("d", [0.0]) * width
            for b in keys:
                c, t = self._buckets[b]
                counts[b - low], sums[b - low] = int(c), t
            return _HEADER.pack(_DENSE, low, width) + _bytes(counts) + _bytes(sums)
        counts = array("q", (int(self._buckets[b][0]) for b in keys))
        sums = array("d", (self._buckets[b][1] for b in keys))
        return _HEADER.pack(_SPARSE, low, len(keys)) + _bytes(array("i", keys)) + _bytes(counts) + _bytes(sums)

    @classmethod
    def decode(cls, data: bytes | None) -> Histogram:
        histogram = cls()
        if data:
            for bucket, count, total in _entries(data):
                histogram._buckets[bucket] = [count, total]
        return histogram


def _bytes(values: array) -> bytes:  # type: ignore[type-arg]
    if _SWAP:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _array(typecode: str, data: bytes) -> array:  # type: ignore[type-arg]
    values = array(typecode)
    values.frombytes(data)
    if _SWAP:
        values.byteswap()
    return values


def _entries(data: bytes) -> Iterator[tuple[int, int, float]]:
    kind, low, n = _HEADER.unpack_from(data)
    at = _HEADER.size
    if kind == _DENSE:
        counts, sums = _array("q", data[at : at + 8 * n]), _array("d", data[at + 8 * n : at + 16 * n])
        for i in range(n):
            if counts[i]:
                yield low + i, counts[i], sums[i]
        return
    keys = _array("i", data[at : at + 4 * n])
    counts = _array("q", data[at + 4 * n : at + 12 * n])
    sums = _array("d", data[at + 12 * n : at + 20 * n])
    yield from zip(keys, counts, sums, strict=True)


class Accumulator:
    """Many encoded histograms added up fast: dense ones a slice at a time in C.

    A dense row's counts are added to every bucket at once as one integer (64 bits a bucket, from `FIRST_BUCKET`):
    the stored little-endian int64 array read by `int.from_bytes` and shifted into place. Counts are never negative
    and a bucket's total stays far below 2**64, so no lane carries into the next: the sums are exact. Latency sums are
    floats and are added a bucket at a time in row order (`map(add, ...)`), so they are what adding them one by one
    gives, to the bit.
    """

    __slots__ = ("_lanes", "_sparse", "sums")

    def __init__(self) -> None:
        self._lanes = 0
        self._sparse = [0] * SPAN
        self.sums = [0.0] * SPAN

    @property
    def counts(self) -> list[int]:
        """Count per bucket from `FIRST_BUCKET`."""
        dense = _array("q", self._lanes.to_bytes(8 * SPAN, "little"))
        return list(map(add, dense, self._sparse))

    def add_encoded(self, data: bytes | None) -> None:
        if not data:
            return
        kind, low, n = _HEADER.unpack_from(data)
        at = _HEADER.size
        if kind == _DENSE:
            start = low - FIRST_BUCKET
            end = start + n
            self._lanes += int.from_bytes(data[at : at + 8 * n], "little") << (64 * start)
            self.sums[start:end] = map(add, self.sums[start:end], _array("d", data[at + 8 * n : at + 16 * n]))
            return
        counts, sums = self._sparse, self.sums
        for bucket, count, total in _entries(data):
            counts[bucket - FIRST_BUCKET] += count
            sums[bucket - FIRST_BUCKET] += total

    def add(self, other: Accumulator) -> None:
        self._lanes += other._lanes
        self._sparse[:] = map(add, self._sparse, other._sparse)
        self.sums[:] = map(add, self.sums, other.sums)

    def buckets(self) -> tuple[HistogramBucket, ...]:
        counts, sums = self.counts, self.sums
        used = compress(range(SPAN), counts)  # the few hundred non-empty buckets of ~2,200, skipped in C
        return tuple(HistogramBucket(FIRST_BUCKET + i, counts[i], sums[i] / counts[i]) for i in used)


# ---------------------------------------------------------------- cells


FieldKey = tuple[str, str]
"""(field path, diff kind)."""


_COMPARED = frozenset({Outcome.MATCH.value, Outcome.DIFF.value})
_SHADOW_ERROR = Outcome.SHADOW_ERROR.value
_STATUS_PAIRS: dict[tuple[int | None, int | None], str] = {}


def _status_pair(primary: int | None, shadow: int | None) -> str:
    """ "200 200": a cell's status key (memoised: a few dozen pairs in practice, bounded all the same)."""
    found = _STATUS_PAIRS.get((primary, shadow))
    if found is None:
        found = f"{NO_SHADOW if primary is None else primary} {NO_SHADOW if shadow is None else shadow}"
        if len(_STATUS_PAIRS) < 4096:
            _STATUS_PAIRS[(primary, shadow)] = found
    return found


@dataclass(slots=True)
class Cell:
    """Everything a report needs about the exchanges of one key, added up."""

    outcomes: Counter[str] = field(default_factory=Counter)
    noisy_match: int = 0
    """Matching exchanges that still had diffs, every one flagged noise on the spot."""
    primary: Histogram = field(default_factory=Histogram)
    """Latencies of exchanges both sides answered (match or diff), primary side."""
    shadow: Histogram = field(default_factory=Histogram)
    statuses: Counter[str] = field(default_factory=Counter)
    """ "200 200" (primary status, shadow status or "-") per compared or shadow-error exchange."""
    fields: dict[FieldKey, list[int]] = field(default_factory=dict)
    """(path, kind) → [raw, noise]: diffs found, and how many of those were noise."""
    signatures: Counter[str] = field(default_factory=Counter)
    """Differing exchanges by the sorted non-noise paths they differ in, joined by newlines."""

    @property
    def exchanges(self) -> int:
        return sum(self.outcomes.values())

    def fold(self, comparison: Comparison) -> None:
        """Count one comparison."""
        exchange = comparison.exchange
        shadow = exchange.shadow
        self.add(
            outcome=comparison.outcome.value,
            primary_ms=exchange.primary.latency_ms,
            shadow_ms=None if shadow is None else shadow.latency_ms,
            primary_status=exchange.primary.status,
            shadow_status=None if shadow is None else shadow.status,
            diffs=((d.path, d.kind.value, d.noise) for d in comparison.diffs),
        )

    def add(
        self,
        *,
        outcome: str,
        primary_ms: float | None,
        shadow_ms: float | None,
        primary_status: int | None,
        shadow_status: int | None,
        diffs: Iterable[tuple[str, str, bool]] = (),
    ) -> None:
        """Count one exchange given as plain values (what `fold` takes from a comparison, or a stored row)."""
        self.outcomes[outcome] += 1
        compared = outcome in _COMPARED
        if compared and primary_ms is not None and shadow_ms is not None:
            self.primary.add(primary_ms)
            self.shadow.add(shadow_ms)
        if compared or outcome == _SHADOW_ERROR:
            self.statuses[_status_pair(primary_status, shadow_status)] += 1
        paths: set[str] = set()
        any_diff = False
        for path, kind, noise in diffs:
            any_diff = True
            entry = self.fields.get((path, kind))
            if entry is None:
                entry = self.fields[(path, kind)] = [0, 0]
            entry[0] += 1
            if noise:
                entry[1] += 1
            else:
                paths.add(path)
        if outcome == Outcome.MATCH and any_diff:
            self.noisy_match += 1
        if outcome == Outcome.DIFF:
            self._sign("\n".join(sorted(paths)), 1)

    def _sign(self, signature: str, count: int) -> None:
        if signature in self.signatures or len(self.signatures) < MAX_SIGNATURES:
            self.signatures[signature] += count
        else:
            self.signatures[OTHER_SIGNATURE] += count

    def merge(self, other: Cell) -> None:
        self.outcomes.update(other.outcomes)
        self.noisy_match += other.noisy_match
        self.primary.merge(other.primary)
        self.shadow.merge(other.shadow)
        self.statuses.update(other.statuses)
        for key, (raw, noise) in other.fields.items():
            entry = self.fields.get(key)
            if entry is None:
                self.fields[key] = [raw, noise]
            else:
                entry[0] += raw
                entry[1] += noise
        for signature, count in other.signatures.items():
            self._sign(signature, count)


def findings(signatures: Mapping[str, int], finding_paths: Iterable[str]) -> int:
    """Exchanges whose signature names at least one of `finding_paths`: the exchanges with a finding."""
    wanted = set(finding_paths)
    if not wanted:
        return 0
    total = 0
    for signature, count in signatures.items():
        if signature == OTHER_SIGNATURE or any(p in wanted for p in signature.split("\n")):
            total += count
    return total


# ---------------------------------------------------------------- keys and the buffer


@dataclass(frozen=True, slots=True, order=True)
class RollupKey:
    grain: int
    start: datetime
    service: str
    endpoint: str
    direction: str
    run: str

    def at(self, grain: int) -> RollupKey:
        """The key of the coarser row this one adds into."""
        return RollupKey(grain, floor_time(self.start, grain), self.service, self.endpoint, self.direction, self.run)


_MINUTES: dict[int, datetime] = {}
"""Minute starts by their epoch second: `key_of` runs per exchange, and most exchanges fall in the minute before."""


def _minute(at: datetime) -> datetime:
    seconds = math.floor(at.timestamp())
    seconds -= seconds % GRAINS[0]
    start = _MINUTES.get(seconds)
    if start is None:
        if len(_MINUTES) >= 64:
            _MINUTES.clear()
        start = _MINUTES[seconds] = datetime.fromtimestamp(seconds, UTC)
    return start


def key_of(comparison: Comparison, *, clip: int = 512) -> RollupKey:
    """The minute row one comparison belongs to."""
    exchange = comparison.exchange
    shadow = exchange.shadow
    return RollupKey(
        GRAINS[0],
        _minute(exchange.started_at),
        exchange.service[:64],
        comparison.endpoint[:clip],
        direction_of(exchange.primary.app, None if shadow is None else shadow.app),
        LIVE_RUN if exchange.run is None else exchange.run[:64],
    )


class RollupBuffer:
    """Minute cells not yet written, bounded by `max_keys`: a comparison for a new key past it is refused."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._cells: dict[RollupKey, Cell] = {}
        self._exchanges = 0

    def __len__(self) -> int:
        return len(self._cells)

    @property
    def exchanges(self) -> int:
        """Exchanges counted in the buffer, not yet written."""
        return self._exchanges

    def add(self, comparison: Comparison) -> bool:
        """Count one comparison; False when it needed a new key and the buffer is full."""
        key = key_of(comparison)
        cell = self._cells.get(key)
        if cell is None:
            if len(self._cells) >= self.max_keys:
                return False
            cell = self._cells[key] = Cell()
        cell.fold(comparison)
        self._exchanges += 1
        return True

    def take(self) -> dict[RollupKey, Cell]:
        """Everything buffered; the buffer is empty afterwards (`restore` puts it back after a failed write)."""
        cells, self._cells, self._exchanges = self._cells, {}, 0
        return cells

    def restore(self, cells: Mapping[RollupKey, Cell]) -> None:
        """Merge cells back (a write failed); keys past `max_keys` are still kept: they were counted once."""
        for key, cell in cells.items():
            mine = self._cells.get(key)
            if mine is None:
                self._cells[key] = cell
            else:
                mine.merge(cell)
            self._exchanges += cell.exchanges


def fold_all(comparisons: Iterable[Comparison]) -> dict[RollupKey, Cell]:
    """Minute cells of a batch of comparisons."""
    cells: dict[RollupKey, Cell] = {}
    for comparison in comparisons:
        key = key_of(comparison)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell()
        cell.fold(comparison)
    return cells


def every_grain(minutes: Mapping[RollupKey, Cell]) -> dict[RollupKey, Cell]:
    """Minute cells with the hour and day cells they add into: what one write stores."""
    out: dict[RollupKey, Cell] = {}
    for key, cell in minutes.items():
        for grain in GRAINS:
            target = key if grain == key.grain else key.at(grain)
            mine = out.get(target)
            if mine is None:
                mine = out[target] = Cell()
            mine.merge(cell)
    return out


# ---------------------------------------------------------------- windows


def cover(since: datetime | None, until: datetime) -> list[tuple[int, datetime | None, datetime]]:
    """(grain, from, to) ranges of row starts that add up to exactly [since, until), fewest rows first.

    Both ends are rounded to the minute (since down, until up): rollups are per minute. `since` None is the
    beginning of the store.
    """
    lo = None if since is None else floor_time(since, GRAINS[0])
    hi = ceil_time(until, GRAINS[0])
    out: list[tuple[int, datetime | None, datetime]] = []
    for grain, coarser in zip(GRAINS, GRAINS[1:], strict=False):
        if lo is not None and ceil_time(lo, coarser) >= floor_time(hi, coarser):
            if lo < hi:
                out.append((grain, lo, hi))
            return out
        if lo is not None:
            head_end = ceil_time(lo, coarser)
            if head_end > lo:
                out.append((grain, lo, head_end))
            lo = head_end
        tail_start = floor_time(hi, coarser)
        if tail_start < hi:
            out.append((grain, tail_start, hi))
        hi = tail_start
    if lo is None or lo < hi:
        out.append((GRAINS[-1], lo, hi))
    return out


Ranges = list[tuple[int, datetime | None, datetime]]


def around_pending(ranges: Ranges, pending: Iterable[tuple[int, datetime]]) -> Ranges:
    """`ranges` with every pending hour or day (not compacted since last written) read from its finer rows instead,
    recursively: a pending day from its hours, and a pending hour among them from its minutes."""
    marked = sorted(set(pending))
    out: Ranges = []
    for grain, low, high in ranges:
        if grain == GRAINS[0]:
            out.append((grain, low, high))
            continue
        finer = GRAINS[GRAINS.index(grain) - 1]
        cursor = low
        for g, start in marked:
            if g != grain or start >= high or (low is not None and start < low):
                continue
            if cursor is None or start > cursor:
                out.append((grain, cursor, start))
            out.extend(around_pending([(finer, start, start + timedelta(seconds=grain))], marked))
            cursor = start + timedelta(seconds=grain)
        if cursor is None or cursor < high:
            out.append((grain, cursor, high))
    return out


def chunks(items: Iterable[RollupKey], size: int) -> Iterator[list[RollupKey]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


__all__ = [
    "GRAINS",
    "LATENCY_BUCKETS_PER_E",
    "LIVE_RUN",
    "Accumulator",
    "Cell",
    "Histogram",
    "RollupBuffer",
    "RollupKey",
    "cover",
    "direction_of",
    "every_grain",
    "findings",
    "fold_all",
    "key_of",
]
