"""`shadowdiff up`'s stack: children's logs in files, the end of a dead child's log shown, an 80-column banner, and
readiness checked without sending a request through the proxy."""

from __future__ import annotations

import asyncio
import io
import sys
import urllib.request
from pathlib import Path

import pytest

from proxy.runtime.stack import ChildSpec, Stack, StackError, _answers, banner, cli_name
from tests.servers import free_port


def test_a_child_with_a_log_file_writes_there_not_on_the_terminal(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "logs" / "v2.log"
    out = io.StringIO()
    server = (sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path))
    chatty = (sys.executable, "-c", "print('proxy says hello', flush=True); import time; time.sleep(30)")
    stack = Stack(
        [ChildSpec("v2", server, (f"http://127.0.0.1:{port}/",), log), ChildSpec("proxy", chatty, ())], out=out
    )
    try:
        stack.start()
        assert stack.wait_healthy(20)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/logs/", timeout=5) as response:
            assert response.status == 200
    finally:
        stack.stop()
    text = log.read_text()
    assert text.startswith("--- v2 starting at ") and '"GET /logs/ HTTP/1.1" 200' in text
    assert "GET /logs/" not in out.getvalue()  # the terminal keeps the banner, not request logs
    assert "proxy | proxy says hello" in out.getvalue()  # a child without a log file still prints here


def test_a_child_that_dies_shows_the_end_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "v1.log"
    dies = (sys.executable, "-c", "import sys; print('cannot open legacy.db: disk full'); sys.exit(3)")
    out = io.StringIO()
    stack = Stack([ChildSpec("v1", dies, ("http://127.0.0.1:9/health",), log)], out=out)
    try:
        stack.start()
        with pytest.raises(StackError, match=f"v1 exited with code 3 while starting \\(the end of {log} is above\\)"):
            stack.wait_healthy(20)
    finally:
        stack.stop()
    assert "v1 | cannot open legacy.db: disk full" in out.getvalue()


def test_the_banner_fits_80_columns_and_says_where_the_cli_and_logs_are() -> None:
    logs = {name: Path("logs") / f"{name}.log" for name in ("v1", "v2", "secondary")}
    text = banner(
        "http://127.0.0.1:13000",
        "http://127.0.0.1:13900",
        "http://127.0.0.1:13001",
        "http://127.0.0.1:13002",
        secondary_url="http://127.0.0.1:13003",
        logs=logs,
        cli=".venv/bin/shadowdiff",
    )
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "  V2         http://127.0.0.1:13002  new app, logs to logs/v2.log" in text
    assert "  .venv/bin/shadowdiff status" in text
    assert "`make shell` (or `source .venv/bin/activate`)" in text and "shadowdiff up --verbose" in text
    on_path = banner("http://a:1", "http://a:2", "http://a:3", "http://a:4", cli="shadowdiff")
    assert "make shell" not in on_path and "--verbose" not in on_path and "  shadowdiff report" in on_path


def test_cli_name_is_the_command_when_path_finds_this_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("shadowdiff")
    monkeypatch.setenv("PATH", str(script.parent))
    assert cli_name() == "shadowdiff"
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.chdir(tmp_path)
    assert cli_name() == str(script)  # not below the working directory: the whole path


async def test_a_tcp_health_check_connects_and_sends_nothing() -> None:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())  # until the checker closes its side
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await asyncio.to_thread(_answers, f"tcp://127.0.0.1:{port}")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
    finally:
        server.close()
        await server.wait_closed()
    assert received == [b""]  # connected, not a byte of HTTP: nothing to mirror, nothing to compare
    assert not await asyncio.to_thread(_answers, f"tcp://127.0.0.1:{free_port()}")
    assert not _answers("tcp://nowhere")
