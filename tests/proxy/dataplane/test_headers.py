"""proxy.dataplane.headers: what each upstream is sent and what the client gets back."""

from __future__ import annotations

import os

import pytest

from proxy.dataplane.headers import (
    REDACTED,
    client_headers,
    new_request_id,
    read_inbound,
    recorded_headers,
    response_headers,
    upstream_headers,
)


def inbound(*headers: tuple[bytes, bytes], client: str | None = "10.0.0.9", key: bytes | None = None):  # type: ignore[no-untyped-def]
    return read_inbound(list(headers), client_host=client, scheme="https", sample_key_header=key)


def names(pairs: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in pairs]


def test_hop_by_hop_request_headers_are_not_forwarded() -> None:
    got = inbound(
        (b"connection", b"keep-alive, x-private"),
        (b"keep-alive", b"timeout=5"),
        (b"te", b"trailers"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"h2c"),
        (b"proxy-authorization", b"Basic abc"),
        (b"x-private", b"1"),
        (b"x-public", b"2"),
        (b"content-length", b"10"),
    )
    forwarded = names(got.forward)
    for hop in ("connection", "keep-alive", "te", "transfer-encoding", "upgrade", "proxy-authorization", "x-private"):
        assert hop not in forwarded
    assert "x-public" in forwarded
    assert "content-length" not in forwarded  # the client library writes the length of what it sends
    assert got.content_length == 10


def test_at_the_edge_the_forwarded_headers_are_the_proxys_own() -> None:
    got = inbound(
        (b"host", b"shop.example"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"http"),
        (b"x-forwarded-host", b"outer"),
        (b"forwarded", b"for=1.2.3.4"),
    )
    forwarded = got.forward
    assert [v for k, v in forwarded if k == "x-forwarded-for"] == ["10.0.0.9"]
    assert [v for k, v in forwarded if k == "x-forwarded-proto"] == ["https"]
    assert [v for k, v in forwarded if k == "x-forwarded-host"] == ["shop.example"]
    assert [v for k, v in forwarded if k == "forwarded"] == ['for=10.0.0.9;host="shop.example";proto=https']
    assert got.host == "shop.example"


def test_behind_a_trusted_proxy_its_forwarded_headers_are_kept_and_appended_to() -> None:
    got = read_inbound(
        [
            (b"host", b"inner:8443"),
            (b"x-forwarded-for", b"1.2.3.4"),
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-host", b"outer"),
            (b"forwarded", b"for=1.2.3.4;proto=http"),
        ],
        client_host="::1",
        scheme="https",
        trust_forwarded=True,
    )
    forwarded = got.forward
    assert [v for k, v in forwarded if k == "x-forwarded-for"] == ["1.2.3.4, ::1"]
    assert [v for k, v in forwarded if k == "x-forwarded-proto"] == ["http"]
    assert [v for k, v in forwarded if k == "x-forwarded-host"] == ["outer"]
    assert [v for k, v in forwarded if k == "forwarded"] == [
        'for=1.2.3.4;proto=http, for="[::1]";host="inner:8443";proto=https'
    ]


def test_request_id_is_kept_or_generated() -> None:
    assert inbound((b"x-request-id", b"abc-123")).request_id == "abc-123"
    generated = inbound().request_id
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert inbound().request_id != generated
    assert ("x-request-id", generated) not in inbound().forward


def test_shadow_marker_is_detected_and_only_shadows_are_marked() -> None:
    assert inbound((b"x-shadow-request", b"1")).marked
    got = inbound()
    assert not got.marked
    assert ("x-shadow-request", "1") in upstream_headers(got, host=None, shadow=True)
    assert "x-shadow-request" not in names(upstream_headers(got, host=None, shadow=False))


@pytest.mark.parametrize("host", [None, "client.example"])
def test_host_is_set_only_when_asked(host: str | None) -> None:
    sent = upstream_headers(inbound((b"host", b"ignored")), host=host, shadow=False)
    assert [v for k, v in sent if k == "host"] == ([] if host is None else [host])


def test_sample_key_is_read_from_the_configured_header() -> None:
    assert inbound((b"x-user", b"u1"), key=b"x-user").sample_key == "u1"
    assert inbound((b"x-user", b"u1")).sample_key is None


def test_recorded_request_headers_redact_secrets() -> None:
    got = inbound((b"authorization", b"Bearer t"), (b"cookie", b"s=1"), (b"accept", b"*/*"))
    assert dict(got.recorded) == {"authorization": REDACTED, "cookie": REDACTED, "accept": "*/*"}
    assert ("authorization", "Bearer t") in got.forward  # upstreams still get it


def test_client_headers_drop_hop_by_hop_and_those_connection_names() -> None:
    raw = (
        (b"Content-Type", b"application/json"),
        (b"Connection", b"keep-alive, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"Trailer", b"x"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    )
    out = client_headers(raw, "rid")
    assert out == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-request-id", b"rid"),
    ]


def test_client_headers_keep_the_upstreams_request_id_and_length() -> None:
    raw = ((b"x-request-id", b"theirs"), (b"content-length", b"3"))
    assert client_headers(raw, "ours", 3) == [(b"x-request-id", b"theirs"), (b"content-length", b"3")]


def test_client_headers_add_length_for_a_buffered_chunked_body() -> None:
    assert (b"content-length", b"11") in client_headers(((b"content-type", b"text/plain"),), "rid", 11)


def test_recorded_response_headers_redact_set_cookie() -> None:
    assert recorded_headers([(b"Set-Cookie", b"a=1"), (b"ETag", b"x")]) == (("set-cookie", REDACTED), ("etag", "x"))


def test_generated_request_ids_stay_unique_across_buffer_refills() -> None:
    ids = [new_request_id() for _ in range(5000)]  # 5,000 x 10 bytes: several 10 KiB refills
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_random_digits() -> None:
    new_request_id()  # the parent's buffer is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, new_request_id()[12:].encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child != new_request_id()[12:]


REDIRECT = (b"http://127.0.0.1:8001", b"https://shop.example")


@pytest.mark.parametrize(
    ("name", "value", "rewritten"),
    [
        (b"location", b"http://127.0.0.1:8001/api/orders/7", b"https://shop.example/api/orders/7"),
        (b"location", b"http://127.0.0.1:8001?x=1", b"https://shop.example?x=1"),
        (b"location", b"http://127.0.0.1:8001", b"https://shop.example/"),
        (b"location", b"/api/orders/7", b"/api/orders/7"),
        (b"location", b"http://127.0.0.1:80010/x", b"http://127.0.0.1:80010/x"),  # another port entirely
        (b"location", b"https://docs.example/x", b"https://docs.example/x"),
        (b"content-location", b"http://127.0.0.1:8001/a", b"https://shop.example/a"),
        (
            b"link",
            b"<http://127.0.0.1:8001/p?page=2>; rel=next, <http://other/x>; rel=help",
            b"<https://shop.example/p?page=2>; rel=next, <http://other/x>; rel=help",
        ),
        (b"x-location", b"http://127.0.0.1:8001/a", b"http://127.0.0.1:8001/a"),
    ],
)
def test_urls_naming_the_upstream_are_rewritten_to_the_proxy(name: bytes, value: bytes, rewritten: bytes) -> None:
    out, recorded = response_headers(((name, value),), "rid", redirect=REDIRECT)
    assert out[0] == (name, rewritten)
    assert recorded[0] == (name.decode(), rewritten.decode())


def test_without_a_redirect_locations_are_left_alone() -> None:
    out = client_headers(((b"location", b"http://127.0.0.1:8001/a"),), "rid")
    assert out[0] == (b"location", b"http://127.0.0.1:8001/a")


def test_a_bodiless_status_loses_its_content_length() -> None:
    raw = ((b"etag", b'"v1"'), (b"content-length", b"1234"))
    out, recorded = response_headers(raw, "rid", None, None, True)
    assert out == [(b"etag", b'"v1"'), (b"x-request-id", b"rid")]
    assert ("content-length", "1234") not in recorded
