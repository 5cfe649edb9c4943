"""HAR and GoReplay files read into recorded requests: tables of what each entry becomes, or why it is refused."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from proxy.replay.formats import GOR_SEPARATOR, FormatError, gor_records, har_entries, parse_http_request
from proxy.replay.requests import Bad, Recorded


def har(*entries: Any) -> str:
    return json.dumps({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": list(entries)}})


def entry(
    method: str = "GET", url: str = "http://app.test/api/products/1", at: str = "2026-11-29T10:00:00Z", **request: Any
) -> dict[str, Any]:
    return {"startedDateTime": at, "request": {"method": method, "url": url, "headers": [], "bodySize": 0, **request}}


def read_har(text: str) -> tuple[list[Recorded | Bad], Counter[str]]:
    notes: Counter[str] = Counter()
    return list(har_entries(text, notes)), notes


def test_har_entries_become_requests_in_start_order() -> None:
    body = '{"customer_id": 1}'
    items, notes = read_har(
        har(
            entry(
                "POST",
                "http://app.test/api/orders?x=1",
                "2026-11-29T10:00:01Z",
                postData={"mimeType": "application/json", "text": body},
                bodySize=18,
            ),
            entry(
                at="2026-11-29T10:00:00.500Z",
                headers=[{"name": ":authority", "value": "app.test"}, {"name": "accept", "value": "*/*"}],
            ),
            entry(
                "PUT", "http://app.test/api/x", "2026-11-29T10:00:02Z", postData={"encoding": "base64", "text": "AAEC"}
            ),
            entry(
                "POST",
                "http://app.test/form",
                "2026-11-29T10:00:03Z",
                postData={"params": [{"name": "a", "value": "1 2"}]},
            ),
        )
    )
    assert notes == Counter()
    assert [(i.where, i.method, i.target) for i in items if isinstance(i, Recorded)] == [
        ("entry 2", "GET", "http://app.test/api/products/1"),
        ("entry 1", "POST", "http://app.test/api/orders?x=1"),
        ("entry 3", "PUT", "http://app.test/api/x"),
        ("entry 4", "POST", "http://app.test/form"),
    ]
    first, second, third, fourth = items
    assert isinstance(first, Recorded) and first.headers == (("accept", "*/*"), ("host", "app.test"))
    assert isinstance(second, Recorded) and second.body == body.encode() and second.at == pytest.approx(1795946401.0)
    assert isinstance(third, Recorded) and third.body == b"\x00\x01\x02"
    assert isinstance(fourth, Recorded) and fourth.body == b"a=1+2"


def test_har_entries_to_other_origins_are_noted_not_replayed() -> None:
    items, notes = read_har(har(entry(), entry(url="http://app.test/b"), entry(url="https://fonts.example/f.woff")))
    assert len(items) == 2
    assert notes == Counter({"entries to other origins than http://app.test (not replayed)": 1})


@pytest.mark.parametrize(
    ("bad_entry", "reason"),
    [
        ({"startedDateTime": "x"}, "has no request object"),
        (entry(bodySize=12), "its body (12 bytes) is not in the HAR"),
        (entry(postData={"encoding": "base64", "text": "%%%"}), "its base64 body is not valid base64"),
        (entry(headers=[{"value": "x"}]), "has a header without a name"),
        (entry(method=None), "has no request method or url"),
    ],
)
def test_har_entries_that_cannot_be_read_say_why(bad_entry: dict[str, Any], reason: str) -> None:
    items, _ = read_har(har(entry(), bad_entry))
    assert Bad("entry 2", reason) in items and len(items) == 2


def test_a_truncated_har_keeps_its_whole_entries_and_says_where_it_ends() -> None:
    text = har(entry(), entry(url="http://app.test/b"), entry(url="http://app.test/c"))
    cut = text[: text.index('"http://app.test/c"') + 5]
    items, _ = read_har(cut)
    assert [i.target for i in items if isinstance(i, Recorded)] == [
        "http://app.test/api/products/1",
        "http://app.test/b",
    ]
    [bad] = [i for i in items if isinstance(i, Bad)]
    assert bad.where == "entry 3" and "the file ends inside it" in bad.reason and "truncated?" in bad.reason


@pytest.mark.parametrize(
    "text", ['{"log": {"entries": 3}}', '{"not": "har"}', '{"log": {"entries": [{"request": '[:10]]
)
def test_files_that_are_no_har_are_refused_whole(text: str) -> None:
    with pytest.raises(FormatError):
        read_har(text)


def gor(*payloads: bytes, tail: bytes = b"") -> list[bytes]:
    data = b"".join(p + GOR_SEPARATOR for p in payloads) + tail
    return [data[i : i + 7] for i in range(0, len(data), 7)]  # small chunks: a separator split across two reads


def read_gor(chunks: list[bytes]) -> tuple[list[Recorded | Bad], Counter[str]]:
    notes: Counter[str] = Counter()
    return list(gor_records(iter(chunks), notes)), notes


GET = b"1 a1b2c3 1700000000123456789 0\nGET /api/products/1?x=2 HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\n\r\n"
POST = (
    b"1 d4e5f6 1700000001000000000 12\nPOST /api/orders HTTP/1.1\r\nHost: app.test\r\n"
    b'Content-Type: application/json\r\nContent-Length: 18\r\n\r\n{"customer_id": 1}'
)
RESPONSE = b"2 a1b2c3 1700000000200000000 80\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def test_gor_requests_are_read_and_responses_skipped() -> None:
    items, notes = read_gor(gor(GET, RESPONSE, POST))
    assert notes == Counter({"GoReplay response payloads (not replayed)": 1})
    first, second = items
    assert isinstance(first, Recorded) and isinstance(second, Recorded)
    assert (first.where, first.method, first.target, first.body) == (
        "record 1 (byte 0)",
        "GET",
        "/api/products/1?x=2",
        b"",
    )
    assert first.headers == (("Host", "app.test"), ("Accept", "*/*"))
    assert first.at == pytest.approx(1700000000.123456789)
    assert (second.method, second.body) == ("POST", b'{"customer_id": 1}')
    assert second.where.startswith("record 3 (byte ")


def test_a_gor_file_cut_short_keeps_what_came_before() -> None:
    items, _ = read_gor(gor(GET, tail=POST[:60]))
    assert isinstance(items[0], Recorded)
    assert items[1] == Bad(
        f"record 2 (byte {len(GET) + len(GOR_SEPARATOR)})", "the file ends before its separator: truncated?"
    )


def test_a_gor_payload_header_must_have_a_type_id_and_time() -> None:
    items, _ = read_gor(gor(b"1 abc\nGET / HTTP/1.1\r\n\r\n", GET))
    assert isinstance(items[0], Bad) and "malformed payload header" in items[0].reason
    assert isinstance(items[1], Recorded)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", ("GET", "/", (("Host", "a"),), b"")),
        (b"GET / HTTP/1.0\n\n", ("GET", "/", (), b"")),
        (
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            ("POST", "/x", (("Transfer-Encoding", "chunked"),), b"abcde"),
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", "no blank line ends the request head: truncated?"),
        (b"GET /\r\n\r\n", "request line b'GET /' is not 'METHOD target HTTP/1.x'"),
        (b"GET / SPDY/3\r\n\r\n", "request line b'GET / SPDY/3' is not 'METHOD target HTTP/1.x'"),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", "header line b'no colon' is not 'Name: value'"),
        (b"GET / HTTP/1.1\r\nName : v\r\n\r\n", "header line b'Name : v' is not 'Name: value'"),
        (b"GET / HTTP/1.1\r\nA: b\r\n  folded\r\n\r\n", "has a folded header line (obsolete line folding is refused)"),
        (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", "its body is 3 of 10 bytes: truncated?"),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "Content-Length 'x' is not one length"),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "Content-Length '2' is not one length",
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "its chunked body ends early: truncated?"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size b'zz' is not hexadecimal"),
    ],
)
def test_raw_http_requests(raw: bytes, expected: object) -> None:
    assert parse_http_request(raw) == expected
