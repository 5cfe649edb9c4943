"""Capture: client requests recorded in full, secrets redacted, off the serving path, bounded on disk and in memory."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import CollectorRegistry

from proxy.config import CaptureConfig
from proxy.dataplane.capture import FORMAT, QUEUE_BYTES, Capture, session_key
from proxy.dataplane.headers import read_inbound
from proxy.dataplane.metrics import ProxyMetrics
from tests.proxy.upstreams import Recorder, proxy_stack, sample, settings_for
from tests.servers import run_server

FIELDS = ("password", "token")


def read_capture(directory: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The closed files' names, and every request line in them (each file's header line checked)."""
    names = sorted(p.name for p in directory.iterdir())
    records = []
    for name in names:
        lines = gzip.decompress((directory / name).read_bytes()).splitlines()
        header = orjson.loads(lines[0])
        assert header["format"] == FORMAT and header["version"] == 1
        records += [orjson.loads(line) for line in lines[1:]]
    return names, records


def capture_in(directory: Path, **config: Any) -> Capture:
    return Capture(CaptureConfig(dir=str(directory), **config), redact_fields=FIELDS)


async def test_requests_are_recorded_in_full_with_secrets_redacted(tmp_path: Path) -> None:
    capture = capture_in(tmp_path / "cap", session_header="x-session")
    capture.start()
    v1, v2 = Recorder("v1"), Recorder("v2")
    async with run_server(v1) as u1, run_server(v2) as u2, proxy_stack(settings_for(u1, u2), capture=capture) as stack:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{stack.url}/api/orders?page=2&token=abc",
                content=b'{"customer_id": 1, "password": "hunter2"}',
                headers={
                    "content-type": "application/json",
                    "authorization": "Bearer s3cret",
                    "cookie": "sid=42",
                    "x-session": "user-7",
                    "x-request-id": "req-1",
                },
            )
            await client.get(f"{stack.url}/api/products/1", headers={"x-shadow-request": "1"})  # a shadow's: not kept
        await stack.sink.wait(2)
    capture.close()
    assert response.status_code == 200
    names, [record] = read_capture(tmp_path / "cap")
    assert len(names) == 1 and names[0].endswith(".jsonl.gz")  # closed, renamed from .part
    assert record["id"] == "req-1" and record["service"] == "orders" and record["method"] == "POST"
    assert record["target"] == "/api/orders?page=2&token=[REDACTED]"
    assert orjson.loads(record["body"]) == {"customer_id": 1, "password": "[REDACTED]"}
    headers = dict(record["headers"])
    assert headers["authorization"] == "[REDACTED]" and headers["cookie"] == "[REDACTED]"
    assert headers["content-type"] == "application/json" and headers["x-session"] == "user-7"
    assert record["session"] == session_key([("x-session", "user-7")], "x-session", None)
    assert "user-7" not in record["session"]
    assert abs(record["t"] - datetime.now(UTC).timestamp()) < 60
    assert (capture.recorded, capture.written, capture.dropped) == (1, 1, 0)
    assert oct((tmp_path / "cap").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "cap" / names[0]).stat().st_mode & 0o777) == "0o600"


async def test_headers_named_in_keep_headers_are_written_in_clear(tmp_path: Path) -> None:
    capture = capture_in(tmp_path, keep_headers=("Authorization", "cookie"), session_cookie="sid")
    capture.start()
    capture.record(*_request("GET", "/api/orders/1", [(b"authorization", b"Bearer t"), (b"cookie", b"a=1; sid=9")]))
    capture.close()
    _, [record] = read_capture(tmp_path)
    assert dict(record["headers"]) == {"authorization": "Bearer t", "cookie": "a=1; sid=9"}
    assert record["session"] == session_key([("cookie", "sid=9")], None, "sid")


def _request(
    method: str, target: str, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> tuple[dict[str, Any], bytes, datetime, Any, str]:
    path, _, query = target.partition("?")
    scope = {"method": method, "path": path, "raw_path": path.encode(), "query_string": query.encode()}
    scope["headers"] = headers or []
    inbound = read_inbound(scope["headers"], client_host="127.0.0.1", scheme="http")
    return scope, body, datetime.now(UTC), inbound, "orders"


def test_files_rotate_by_size_and_the_oldest_go_past_the_total_bound(tmp_path: Path) -> None:
    rotate = 64 * 1024
    capture = capture_in(tmp_path, rotate_bytes=rotate, max_bytes=3 * rotate)
    capture.start()
    for i in range(600):  # ~1 MB compressed
        body = os.urandom(1500).hex().encode()  # hex of random bytes: compresses to about half
        capture.record(*_request("POST", f"/api/orders?n={i}", [(b"content-type", b"text/plain")], body))
    capture.close()
    names, records = read_capture(tmp_path)
    sizes = [(tmp_path / n).stat().st_size for n in names]
    assert capture.written == 600 and capture.deleted_files > 0
    # Each file passes `rotate` by what zlib still held when the rotation was decided (tens of KiB at most).
    assert sum(sizes) <= 3 * rotate + 64 * 1024
    assert len(names) >= 2 and all(n.endswith(".jsonl.gz") for n in names)
    numbers = [int(r["target"].rpartition("=")[2]) for r in records]
    assert numbers == list(range(600 - len(numbers), 600))  # the newest are kept, in order, none torn


def test_sample_rate_records_that_fraction(tmp_path: Path) -> None:
    none, half = capture_in(tmp_path / "a", sample_rate=0.0), capture_in(tmp_path / "b", sample_rate=0.5)
    for _ in range(400):
        none.record(*_request("GET", "/api/products/1"))
        half.record(*_request("GET", "/api/products/1"))
    assert none.recorded == 0
    assert 140 <= half.recorded <= 260  # binomial(400, 0.5): 10 standard deviations of room


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    metrics = ProxyMetrics(CollectorRegistry())
    capture = Capture(CaptureConfig(dir=str(tmp_path), queue_size=2), redact_fields=FIELDS, metrics=metrics)
    for _ in range(5):  # the writer thread is not started: nothing leaves the queue
        capture.record(*_request("GET", "/api/products/1"))
    big = b"x" * (QUEUE_BYTES // 2 + 1)
    roomy = Capture(CaptureConfig(dir=str(tmp_path)), redact_fields=FIELDS, metrics=metrics)
    roomy.record(*_request("POST", "/api/orders", body=big))
    roomy.record(*_request("POST", "/api/orders", body=big))  # past the bytes bound
    assert (capture.recorded, capture.dropped) == (2, 3)
    assert (roomy.recorded, roomy.dropped) == (1, 1)
    assert sample(metrics, "shadowdiff_dropped_total", reason="capture_full") == 4


async def test_requests_too_large_to_mirror_are_not_recorded(tmp_path: Path) -> None:
    capture = capture_in(tmp_path)
    capture.start()
    v1, v2 = Recorder("v1"), Recorder("v2")
    settings = settings_for("http://x", "http://y", max_request_body=10)
    async with run_server(v1) as u1, run_server(v2) as u2:
        settings = settings.model_copy(update={"v1_url": u1, "v2_url": u2})
        async with proxy_stack(settings, capture=capture) as stack, httpx.AsyncClient() as client:
            assert (await client.post(f"{stack.url}/api/orders", content=b"x" * 100)).status_code == 200
            assert (await client.post(f"{stack.url}/api/orders", content=b"small")).status_code == 200
    capture.close()
    _, records = read_capture(tmp_path)
    assert [r["body"] for r in records] == ["small"]


def test_a_folder_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    capture = capture_in(blocker / "cap")
    try:
        capture.start()
    except Exception as exc:
        assert "capture.dir" in str(exc) and str(blocker / "cap") in str(exc)
    else:
        raise AssertionError("start() should refuse a folder it cannot create")
