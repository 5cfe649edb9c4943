"""The locustfile runs, headless and briefly, against the demo through the proxy, and its traffic is mixed."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from diffs.storage import Store
from tests.test_end_to_end import stack

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
pytestmark = pytest.mark.slow


async def test_the_locustfile_sends_mixed_traffic_through_the_proxy(tmp_path: Path) -> None:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent))
    assert locust is not None, "locust is installed with the project's test (and load) extras"
    async with stack(tmp_path) as demo:
        process = await asyncio.create_subprocess_exec(
            locust, "-f", str(LOCUSTFILE), "--host", demo.proxy, "--headless", "--users", "6", "--spawn-rate", "6",
            "--run-time", "4s", "--only-summary", "--loglevel", "WARNING",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, (out + err).decode()[-3000:]
        await asyncio.sleep(1)  # the last exchanges' comparisons reach the store
    store = await Store.open(demo.database_url)
    try:
        page = await store.list_exchanges(limit=500)
    finally:
        await store.close()
    services = {x.service for x in page.items}
    methods = {x.method for x in page.items}
    assert {"products", "orders"} <= services and {"GET", "POST"} <= methods
    assert len({x.endpoint for x in page.items}) >= 4
