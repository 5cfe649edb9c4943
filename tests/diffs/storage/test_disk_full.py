"""SQLite on a full disk: writes fail and are retried (counts kept, nothing lost silently), and resume as soon as a
little space is back, because the store checkpoints its log instead of letting it grow into the freed space.

Needs a small filesystem of its own: a tmpfs mounted for the test (root only, as CI runs), removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_fixtures import comparison, side

from diffs.report import Window
from diffs.storage import RetentionPolicy, Store, queries
from diffs.storage.engine import WAL_LIMIT_BYTES
from diffs.storage.writer import BatchWriter

pytestmark = pytest.mark.slow
FREED = 2 * WAL_LIMIT_BYTES
"""What the other tenant gives back: twice what the write-ahead log may hold between checkpoints, so that both the
log and the rows written after it (new rollup minutes, examples) fit; with exactly the log's bound (1 MiB) the
test failed now and then on a loaded machine, when a checkpoint came late."""


@contextlib.contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path, chunk: int = 64 * 1024) -> None:
    """Write `path` until the filesystem is full."""
    with path.open("ab") as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * chunk)
                out.flush()
                os.fsync(out.fileno())


async def _until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_sqlite_keeps_counting_and_recovers_when_a_little_space_is_freed(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", "16m") as disk:
        # Differing exchanges are all examples (large ones fill the disk fast); matches are only counted.
        policy = RetentionPolicy(examples_per_field=10**6, match_examples_per_endpoint=1)
        store = await Store.open(f"sqlite:///{disk / 'store.db'}", busy_timeout=0.05, retention=policy)
        writer = BatchWriter(store, max_delay=0.01, rollup_every=0.02, retry_for=1.0, max_backoff=0.05)
        writer.start()
        body = os.urandom(20_000).hex().encode()
        submitted = 0

        def traffic(n: int, *, differing: bool) -> None:
            nonlocal submitted
            for _ in range(n):
                if differing:
                    writer.submit(comparison(primary=side(body=body), diffs=[("root.a", submitted, -1)]))
                else:
                    writer.submit(comparison(endpoint=f"GET /api/e{submitted % 7}"))  # new rows now and then
                submitted += 1

        try:
            traffic(100, differing=True)
            await writer.flush()
            assert writer.failing_since is None
            fill(disk / "other-tenant")  # someone else fills the disk
            for _ in range(200):
                traffic(5, differing=True)
                await asyncio.sleep(0.01)
                if writer.failing_since is not None:
                    break
            assert writer.failing_since is not None, "the disk never filled up"
            # Free a little: two megabytes of a sixteen-megabyte disk.
            with (disk / "other-tenant").open("r+b") as other:
                other.truncate(max(0, other.seek(0, os.SEEK_END) - FREED))
            assert await _until(lambda: writer.failing_since is None, timeout=20), "writes never resumed"
            # Counting goes on: rollup rows are rewritten in place and the log is reused, not grown into the space.
            for _ in range(100):
                traffic(5, differing=False)
                await asyncio.sleep(0.02)
                assert writer.failing_since is None
            await asyncio.wait_for(writer.flush(), 20)
            assert writer.dropped_rows == 0
            found = await queries.totals(store, Window())
            assert sum(sum(t.outcomes.values()) for t in found.values()) == submitted  # every exchange counted
            assert (disk / "store.db-wal").stat().st_size <= 2 * 1024 * 1024
        finally:
            await writer.aclose(2)
            await store.close()
