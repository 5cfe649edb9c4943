"""The store behind PgBouncer in transaction mode (`database_pgbouncer = true`): no prepared-statement caches, unique
statement names, and a state feed that polls (LISTEN needs a session of its own). A private PostgreSQL and a
PgBouncer started for the test, both stopped afterwards."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_fixtures import comparison

from bench.private_postgres import PrivatePostgres, binaries, free_port
from diffs.report import Window
from diffs.storage import Store, queries
from diffs.storage.engine import Pool

pytestmark = pytest.mark.slow


def _pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def bouncer() -> Iterator[str]:
    program = _pgbouncer()
    if program is None or binaries() is None:
        pytest.skip("needs pgbouncer and PostgreSQL's server binaries")
    with PrivatePostgres() as cluster:
        port = free_port()
        workdir = cluster.base / "pgbouncer"  # where the postgres user may read and write
        workdir.mkdir()
        config = workdir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"postgres = host=127.0.0.1 port={cluster.port} dbname=postgres user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\nserver_reset_query = DISCARD ALL\n"
            "default_pool_size = 4\nmax_client_conn = 100\nignore_startup_parameters = extra_float_digits\n"
            f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
        )
        shutil.chown(workdir, "postgres")
        shutil.chown(config, "postgres")
        process = subprocess.Popen(["runuser", "-u", "postgres", "--", program, str(config)])
        try:
            deadline = time.monotonic() + 10
            while not _listening(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    log = workdir / "pgbouncer.log"
                    pytest.fail(f"pgbouncer did not start: {log.read_text()[-2000:] if log.exists() else ''}")
                time.sleep(0.1)
            yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
        finally:
            process.terminate()
            process.wait(10)


async def test_the_store_works_through_pgbouncer_in_transaction_mode(bouncer: str) -> None:
    pool = Pool(size=2, max_overflow=2, pgbouncer=True)
    writer, admin = await Store.open(bouncer, pool=pool), await Store.open(bouncer, pool=pool)
    try:
        assert writer.feed.mode == "poll"
        heard: list[str] = []
        await writer.follow("promotion", lambda event: heard.append(event.payload["to"]))
        for round_ in range(5):  # the same statements again and again, on whichever server connection
            await writer.write_batch([comparison(diffs=[("root.a", round_, -1)]) for _ in range(20)])
            found = await queries.totals(writer, Window())
            assert sum(sum(t.outcomes.values()) for t in found.values()) == 20 * (round_ + 1)
        await admin.record_promotion("orders", "v1", "v2", "through pgbouncer", "ada")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.05)
        assert heard == ["v2"] and await writer.get_primaries() == {"orders": "v2"}
        assert (await writer.compact()) is not None  # the advisory lock is taken and released in one session
    finally:
        await writer.close()
        await admin.close()
