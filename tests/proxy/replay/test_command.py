"""`shadowdiff replay` on the command line: the CI gate, progress off a terminal, every bad input, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from diffs.report import Window
from diffs.storage import Store, queries
from proxy.cli import app
from tests.proxy.replay.support import Shop, gor_file, har_file, served

JSON = {"content-type": "application/json"}
YESTERDAY = [
    ("GET", "/api/products/1", {}, None),
    ("GET", "/api/products/2", {}, None),
    ("GET", "/api/products/3", {}, None),
    ("POST", "/api/orders", JSON, b'{"sku": "A"}'),
    ("GET", "/api/orders/1", {}, None),
]
LENIENT = ("--min-samples", "1", "--max-p99-ratio", "1000")
"""Two local stand-ins answer in a millisecond or two: their p99 ratio says nothing, only differences count here."""


def replay(tmp_path: Path, v1: str, v2: str, *args: str) -> Result:
    database = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    argv = ["replay", *args, "--v1", v1, "--v2", v2, "--database-url", database, "--run-id", "ci"]
    env = {"SHADOWDIFF_DATABASE_URL": None, "SHADOWDIFF_CONFIG": None}
    return CliRunner().invoke(app, argv, env=env, prog_name="shadowdiff")


def errors(result: Result) -> list[str]:
    assert "Traceback" not in result.output + result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("shadowdiff:")]


def stored(tmp_path: Path, run: str = "ci") -> list[str]:
    async def read() -> list[str]:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            page = await store.list_exchanges(limit=500, run=run)
            return sorted(f"{x.method} {x.path}" for x in page.items)
        finally:
            await store.close()

    return asyncio.run(read())


# ---------------------------------------------------------------- the CI gate


def test_check_passes_on_a_v2_that_answers_every_recorded_request_as_v1_did(tmp_path: Path) -> None:
    source = har_file(tmp_path / "yesterday.har", YESTERDAY)
    with served(Shop("v1"), Shop("v2", first=1001)) as (v1, v2):
        result = replay(tmp_path, v1, v2, str(source), "--check", *LENIENT)
    assert result.exit_code == 0, result.output + result.stderr
    assert "replayed 5 of 5 requests" in result.stdout and "5 match · 0 findings · 0 errors" in result.stdout
    assert "ready: orders (2 samples" in result.stdout and "products (3 samples" in result.stdout


def test_check_fails_on_a_v2_that_breaks_a_recorded_request(tmp_path: Path) -> None:
    source = har_file(tmp_path / "yesterday.har", YESTERDAY)
    with served(Shop("v1"), Shop("v2", first=1001, broken=frozenset({3}))) as (v1, v2):
        result = replay(tmp_path, v1, v2, str(source), "--check", *LENIENT)
    assert result.exit_code == 1, result.output + result.stderr
    assert "not ready: products: diff rate 33.33% > 1.00%" in result.stdout
    assert "not ready: orders" not in result.stdout  # only the broken service fails
    assert errors(result) == []


def test_without_check_a_replay_with_differences_exits_0(tmp_path: Path) -> None:
    source = har_file(tmp_path / "yesterday.har", YESTERDAY)
    with served(Shop("v1"), Shop("v2", first=1001, broken=frozenset({3}))) as (v1, v2):
        result = replay(tmp_path, v1, v2, str(source))
    assert result.exit_code == 0
    assert "run ci: shadowdiff report --run ci" in result.stdout
    assert stored(tmp_path) == sorted(f"{m} {p}" for m, p, _, _ in YESTERDAY)


# ---------------------------------------------------------------- progress off a terminal


def test_progress_is_plain_periodic_lines_on_stderr_when_not_a_terminal(tmp_path: Path) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(0.05)
        await v1_app(scope, receive, send)

    v1_app = Shop("v1")
    source = har_file(tmp_path / "yesterday.har", [("GET", f"/api/products/{n}", {}, None) for n in range(1, 21)])
    with served(slow, Shop("v2")) as (v1, v2):
        result = replay(tmp_path, v1, v2, str(source), "--progress-every", "0.2", "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"replaying 20 requests from {source} (HAR)"
    progress = [line for line in lines if line.startswith("replay: ")]
    assert len(progress) >= 3 and "\r" not in result.stderr and "\x1b[" not in result.stderr  # no redrawn bar
    assert progress[-1].startswith("replay: 20/20 (100%) · ") and progress[-1].endswith(
        "20 match · 0 findings · 0 errors"
    )
    done = [int(line.split()[1].split("/")[0]) for line in progress]
    assert done == sorted(done) and done[0] < 20
    assert " req/s · ETA " in progress[0]


# ---------------------------------------------------------------- bad input: one line each, exit 2, the rest kept


def test_a_truncated_har_replays_its_whole_entries_and_exits_2(tmp_path: Path) -> None:
    whole = har_file(tmp_path / "whole.har", YESTERDAY).read_text()
    cut = tmp_path / "yesterday.har"
    cut.write_text(whole[: whole.index('"http://shop.test/api/products/3"') + 10])
    with served(Shop("v1"), Shop("v2")) as (v1, v2):
        result = replay(tmp_path, v1, v2, str(cut), "--check", *LENIENT)
    assert result.exit_code == 2
    first, last = errors(result)
    assert first.startswith(f"shadowdiff: {cut}: entry 3: the file ends inside it (line 1 column ")
    assert last == f"shadowdiff: 1 entries of {cut} could not be replayed (see above); the others were"
    assert "replayed 2 of 2 requests" in result.stdout and "1 entries could not be replayed" in result.stdout
    assert stored(tmp_path) == ["GET /api/products/1", "GET /api/products/2"]


def test_requests_the_http_layer_refuses_are_named_by_position(tmp_path: Path) -> None:
    source = har_file(
        tmp_path / "yesterday.har",
        [
            ("GET", "/api/products/1", {}, None),
            ("GET", "/api/products/2", {"x-note": "a\r\nX-Injected: 1"}, None),
            ("GET", "/api/products/3", {"bad name": "x"}, None),
            ("GET", "/api/products/4", {"upgrade": "websocket"}, None),
        ],
    )
    with served(Shop("v1"), Shop("v2")) as (v1, v2):
        result = replay(tmp_path, v1, v2, str(source))
    assert result.exit_code == 2
    assert errors(result) == [
        f"shadowdiff: {source}: entry 2: header x-note has a control character in its value",
        f"shadowdiff: {source}: entry 3: header name 'bad name' is not an HTTP token",
        f"shadowdiff: {source}: entry 4: an upgrade to 'websocket' (WebSocket) is not replayed",
        f"shadowdiff: 3 entries of {source} could not be replayed (see above); the others were",
    ]
    assert stored(tmp_path) == ["GET /api/products/1"]


def test_a_truncated_gor_file_names_the_record(tmp_path: Path) -> None:
    good = b"GET /api/products/1 HTTP/1.1\r\nHost: shop.test\r\n\r\n"
    source = gor_file(tmp_path / "requests.gor", [good])
    source.write_bytes(source.read_bytes() + b"1 ff 1790000000100000000 0\nPOST /api/orders HTTP/1.1\r\nContent-Le")
    with served(Shop("v1"), Shop("v2")) as (v1, v2):
        result = replay(tmp_path, v1, v2, str(source))
    assert result.exit_code == 2
    assert errors(result)[0].startswith(f"shadowdiff: {source}: record 2 (byte ")
    assert errors(result)[0].endswith("the file ends before its separator: truncated?")
    assert stored(tmp_path) == ["GET /api/products/1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04 a zip file", "unknown format: not a shadowdiff capture, a HAR 1.2 or a GoReplay file"),
        (b'{"not": "a har"}', "unknown format"),
        (b'{"log": {"entries": 7}}', "not a HAR file: it has no log.entries list"),
        (b'{"log": {"version": "1.2", "entries": []}}', "nothing to replay"),
    ],
)
def test_unusable_files_are_one_line_and_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    source = tmp_path / "yesterday.har"
    source.write_bytes(content)
    result = replay(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", str(source))
    assert result.exit_code == 2
    [line] = errors(result)
    assert message in line and str(source) in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.har"], "missing.har: no such file or folder"),
        (["x.har", "--rate", "5", "--speed", "2"], "--rate and --speed do not go together"),
        (["x.har", "--set-header", "no colon"], "--set-header 'no colon' is not 'Name: value'"),
        (["store", "--since", "yesterday"], "yesterday"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.har").write_text(json.dumps({"log": {"entries": []}}))
    result = replay(
        tmp_path,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        *[str(tmp_path / a) if a.endswith(".har") else a for a in args],
    )
    assert result.exit_code == 2
    [line] = errors(result)
    assert message in line


# ---------------------------------------------------------------- Ctrl-C


async def test_ctrl_c_stops_cleanly_and_what_was_replayed_stays_valid(tmp_path: Path) -> None:
    from tests.servers import run_server

    v1_app = Shop("v1")

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(0.1)
        await v1_app(scope, receive, send)

    source = har_file(tmp_path / "yesterday.har", [("GET", f"/api/products/{n}", {}, None) for n in range(1, 101)])
    database = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    async with run_server(slow) as v1, run_server(Shop("v2")) as v2:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", "replay", str(source), "--v1", v1, "--v2", v2,
            "--database-url", database, "--run-id", "ci", "--concurrency", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        while len(v1_app.hits) < 5:
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, err.decode()
    assert "Traceback" not in err.decode()
    assert "stopping: finishing the requests in flight" in err.decode()
    answered = len(v1_app.hits)
    assert 5 <= answered < 100
    assert f"interrupted after {answered} of 100 requests" in out.decode()
    store = await Store.open(database)
    try:
        found = await queries.totals(store, Window(run="ci"))
        page = await store.list_exchanges(limit=500, run="ci")
    finally:
        await store.close()
    outcomes = sum((t.outcomes for t in found.values()), Counter[str]())
    assert outcomes == {"match": answered}  # every request sent was answered, compared and counted; none half-written
    assert page.items and all(x.outcome.value == "match" and x.shadow_status == 200 for x in page.items)
