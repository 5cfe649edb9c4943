"""Smoke test of the benchmark's parts: the stand-in upstream, the Python load generator, percentiles, reports."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench.analysis import targets
from bench.large_bodies import Result as LargeBodiesResult
from bench.load import LoadResult, percentile, run_python
from bench.nginx import render_config
from bench.procs import free_port
from bench.report import BEGIN, END, bodies_table, markdown_table, write_results
from bench.runner import SUSTAINED, Outcome, Row, StallRow, best, best_bodies
from bench.upstream import BIG_BODY, BODY, STREAM_CHUNK, STREAM_CHUNKS, big_body, serve

pytestmark = pytest.mark.timeout(30)


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP/1.1 response framed by Content-Length: status line, lower-cased headers, body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head.decode().split("\r\n")[:-2]
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    return status.encode(), headers, body


def get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *extra, "", ""]).encode()


async def test_upstream_answers_many_requests_on_one_keep_alive_connection() -> None:
    async with serve() as upstream:
        reader, writer = await asyncio.open_connection("127.0.0.1", upstream.port)
        try:
            for _ in range(3):  # one at a time, as wrk and connection pools do
                writer.write(get("/api/orders/42"))
                status, headers, body = await read_response(reader)
                assert status == b"HTTP/1.1 200 OK"
                assert headers["content-type"] == "application/json"
                assert headers["connection"] == "keep-alive"
                assert body == BODY
            writer.write(get("/a") + get("/b"))  # pipelined: answered in order, both counted
            assert (await read_response(reader))[2] == BODY
            assert (await read_response(reader))[2] == BODY
            body = b'{"name": "x"}'
            writer.write(b"POST /c HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body) + get("/d"))
            assert (await read_response(reader))[2] == BODY
            assert (await read_response(reader))[2] == BODY  # the POST body was consumed, not parsed as a request
            writer.write(get("/__stats"))
            assert json.loads((await read_response(reader))[2]) == {"requests": 7}
            writer.write(get("/e", "Connection: close"))
            status, headers, _ = await read_response(reader)
            assert headers["connection"] == "close"
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed it
        finally:
            writer.close()
            await writer.wait_closed()
    assert 900 <= len(BODY) <= 1200
    assert json.loads(BODY)["id"] == 42


async def test_stalled_upstream_counts_but_never_answers() -> None:
    async with serve(stall=True) as upstream:
        reader, writer = await asyncio.open_connection("127.0.0.1", upstream.port)
        try:
            writer.write(get("/x"))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(1), 0.3)
            assert upstream.state.requests == 1
        finally:
            writer.close()
            await writer.wait_closed()


async def test_python_load_generator_counts_every_request() -> None:
    async with serve() as upstream:
        result = await run_python(f"{upstream.url}/x", concurrency=4, seconds=10, max_requests=300)
        assert result.requests == 300 == upstream.state.requests
        assert result.errors == 0
        assert result.tool == "python"
        assert result.concurrency == 4
        assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
        assert result.rps == pytest.approx(300 / result.seconds)


async def test_python_load_generator_counts_refused_connections_as_errors() -> None:
    result = await run_python(f"http://127.0.0.1:{free_port()}/x", concurrency=2, seconds=5, max_requests=10)
    assert result.requests == result.errors == 10


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        (list(range(1, 101)), 50, 50),
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 100, 100),
        (list(range(1, 1001)), 99, 990),
        ([1.0, 2.0], 50, 1.0),
        ([1.0, 2.0], 51, 2.0),
        ([7.0], 99, 7.0),
        ([], 50, 0.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert percentile([float(v) for v in values], pct) == expected


def test_nginx_config_mirrors_every_request_to_the_shadow(tmp_path: Path) -> None:
    conf = render_config(tmp_path, port=9000, primary_port=9001, shadow_port=9002)
    assert "worker_processes 2;" in conf
    assert "access_log off;" in conf
    assert "mirror /mirror;" in conf
    assert "proxy_pass http://shadow$request_uri;" in conf
    assert "server 127.0.0.1:9001; keepalive" in conf
    plain = render_config(tmp_path, port=9000, primary_port=9001, shadow_port=9002, mirror=False)
    assert "mirror /mirror;" not in plain


def _row(key: str, rps: float) -> Row:
    result = LoadResult("wrk", 16, 1.0, int(rps), 0, 1.0, 2.0, 3.0)
    return Row(key=key, label=key, concurrency=16, result=result)


def test_results_file_keeps_hand_written_text_around_the_measured_block(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Results\n\nintro\n\n{BEGIN}\nold numbers\n{END}\n\n## Reading\n\nkept\n")
    outcome = Outcome(rows=[_row("nginx-mirror", 1000), _row("shadowdiff-2w", 450)])
    meta = {
        "date": "d",
        "command": "c",
        "commit": "x",
        "cpu": "cpu",
        "memory_mib": 1,
        "kernel": "k",
        "python": "3.11",
        "nginx": "nginx/1",
        "wrk": "wrk",
        "load_tool": "wrk",
        "loadavg_at_start": ["0", "0", "0"],
    }
    write_results(path, outcome, meta)
    text = path.read_text()
    assert text.startswith("# Results\n\nintro\n")
    assert text.endswith("## Reading\n\nkept\n")
    assert "old numbers" not in text
    assert "| shadowdiff-2w | 16 | 450 |" in text
    assert "0.45×" in text  # the ratio against nginx from the same run
    assert "| throughput c=16 | mirroring on, 2 workers ≥ 0.4× nginx mirror | 0.45× | met |" in text


def test_markdown_table_right_aligns_numbers() -> None:
    table = markdown_table(["name", "req/s"], [["a", "1,234"], ["b", "—"]])
    assert table.splitlines()[1] == "|---|---:|"


def test_best_keeps_the_least_disturbed_run_of_each() -> None:
    slow, fast = _row("nginx-mirror", 800), _row("nginx-mirror", 1000)
    quiet = StallRow("healthy", "300 req/s paced", LoadResult("python-paced", 16, 1.0, 300, 0, 1.0, 5.0, 9.0), 1, 1)
    noisy = StallRow("healthy", "300 req/s paced", LoadResult("python-paced", 16, 1.0, 300, 0, 1.0, 50.0, 90.0), 1, 1)
    rows, stall = best([slow, fast, _row("direct", 5000)], [noisy, quiet])
    assert rows == [_row("direct", 5000), fast]  # in the order of SYSTEMS, the most req/s kept
    assert stall == [quiet]  # paced: the lowest p99 kept


def _stall(shadow: str, load: str, before_mib: int, after_mib: int, peak_mib: int = 0) -> StallRow:
    result = LoadResult("wrk", 64, 1.0, 1000, 0, 1.0, 5.0, 9.0)
    mib = 1024 * 1024
    return StallRow(shadow, load, result, before_mib * mib, after_mib * mib, 0.0, rss_peak=peak_mib * mib)


def test_flat_memory_is_judged_on_the_sustained_stall_and_its_peak() -> None:
    ramp = [_stall("never answers", "300 req/s paced", 100, 101), _stall("never answers", "c=64", 101, 118)]
    healthy = [_stall("healthy", "300 req/s paced", 100, 101), _stall("healthy", "c=64", 101, 121)]
    flat = Outcome(stall=[*healthy, *ramp, _stall("never answers", SUSTAINED, 118, 120, 124)])
    growing = Outcome(stall=[*healthy, *ramp, _stall("never answers", SUSTAINED, 118, 119, 140)])
    [judged] = [t for t in targets(flat) if t.name == "proxy RSS, shadow never answers"]
    assert judged.met is True  # +5% at its peak during the sustained run; the ramp's +20% is reported, not judged
    assert "118 → peak 124 MiB (+5%)" in judged.measured and "ramp: +20%" in judged.measured
    [judged] = [t for t in targets(growing) if t.name == "proxy RSS, shadow never answers"]
    assert judged.met is False  # a peak of +19% during the run fails even though it ended lower


async def test_big_bodies_differ_in_every_item_by_seed_and_not_otherwise() -> None:
    first, other, same = big_body(64, 1), big_body(64, 2), big_body(64, 1)
    assert 64 * 1024 <= len(first) < 66 * 1024 and first == same
    items, changed = json.loads(first)["items"], json.loads(other)["items"]
    assert len(items) == len(changed) and all(a != b for a, b in zip(items, changed, strict=True))
    async with serve(big=first) as upstream:
        reader, writer = await asyncio.open_connection("127.0.0.1", upstream.port)
        try:
            writer.write(get("/big/1") + get("/small"))
            assert (await read_response(reader))[2] == first
            assert (await read_response(reader))[2] == BODY  # other paths keep the small body
        finally:
            writer.close()
            await writer.wait_closed()


async def test_upstream_answers_a_big_body_and_a_stream_on_their_paths() -> None:
    async with serve() as upstream:
        reader, writer = await asyncio.open_connection("127.0.0.1", upstream.port)
        try:
            writer.write(get("/bench/big"))
            status, headers, body = await read_response(reader)
            assert status == b"HTTP/1.1 200 OK" and body == BIG_BODY and len(body) == 700 * 1024
            writer.write(get("/bench/stream"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"Transfer-Encoding: chunked" in head and b"text/event-stream" in head
            streamed = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
            assert streamed == STREAM_CHUNK * STREAM_CHUNKS + b"0\r\n\r\n"
            writer.write(get("/after"))  # the connection is still good for the next request
            assert (await read_response(reader))[2] == BODY
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize(("base", "beside", "met"), [(10.0, 14.9, True), (10.0, 15.1, False), (100.0, 109.0, True)])
def test_large_bodies_target_is_10_percent_or_5_ms(base: float, beside: float, met: bool) -> None:
    def result(p99: float) -> LoadResult:
        return LoadResult("python-paced", 16, 1.0, 100, 0, 1.0, p99, p99)

    assert LargeBodiesResult("shadowdiff", "identical", "100/s", result(base), result(beside), None).met is met


def test_large_bodies_analysed_share_counts_drops_over_every_request_answered_beside() -> None:
    small = LoadResult("python-paced", 16, 1.0, 200, 0, 1.0, 2.0, 2.0)
    large = LoadResult("python-paced", 20, 1.0, 800, 0, 1.0, 9.0, 9.0)
    row = LargeBodiesResult("shadowdiff", "identical", "closed", small, small, large, dropped=250)
    assert row.analysed_share == 0.75
    assert LargeBodiesResult("nginx", "identical", "closed", small, small, large).analysed_share is None


def test_body_rows_are_compared_with_nginx_on_the_same_response(tmp_path: Path) -> None:
    def row(key: str, workload: str, rps: float) -> Row:
        return Row(key, key, 16, LoadResult("wrk", 16, 1.0, int(rps), 0, 1.0, 2.0, 3.0), workload=workload)

    every = [
        row("shadowdiff-2w", "700 KiB body", 40),
        row("shadowdiff-2w", "700 KiB body", 50),
        row("nginx-mirror", "700 KiB body", 100),
        row("nginx-mirror", "streamed, 8 × 1 KiB", 1000),
        row("shadowdiff-2w", "streamed, 8 × 1 KiB", 300),
    ]
    outcome = Outcome(bodies=best_bodies(every), all_bodies=every)
    header, rows = bodies_table(outcome)
    by = {(cells[0], cells[1]): dict(zip(header, cells, strict=True)) for cells in rows}
    assert [cells[:2] for cells in rows] == [
        ["shadowdiff-2w", "700 KiB body"],
        ["nginx-mirror", "700 KiB body"],
        ["shadowdiff-2w", "streamed, 8 × 1 KiB"],
        ["nginx-mirror", "streamed, 8 × 1 KiB"],
    ]
    assert by[("shadowdiff-2w", "700 KiB body")]["× nginx"] == "0.50×"  # the best of its two runs
    assert by[("shadowdiff-2w", "streamed, 8 × 1 KiB")]["× nginx"] == "0.30×"
    assert by[("shadowdiff-2w", "700 KiB body")]["MiB/s"] == "34"


def test_rollup_bench_fills_a_store_and_times_every_report(tmp_path: Path) -> None:
    from bench import rollup_bench

    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    args = ["--database-url", url, "--exchanges", "20000", "--days", "0.2", "--endpoints", "4", "--examples", "200"]
    assert rollup_bench.main([*args, "--repeat", "1"]) == 0  # every report under 300 ms on a tiny store


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_replica_and_outage_benches_run_with_small_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import outage_bench, replica_bench
    from bench.private_postgres import binaries

    if binaries() is None:
        pytest.skip("PostgreSQL's server binaries are not installed")
    assert replica_bench.main(["--rounds", "2", "--workers", "1", "--streak", "2", "--creates", "5"]) == 0
    out = capsys.readouterr().out
    assert "promotion reached every replica" in out and "0 misses" in out
    assert (
        outage_bench.main(["--rate", "20", "--seconds", "6", "--down-at", "2", "--down-for", "2", "--workers", "1"])
        == 0
    )
    assert "every exchange accounted for" in capsys.readouterr().out
