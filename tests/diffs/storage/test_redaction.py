"""Redaction (pure): secret headers, JSON body fields at any depth, query parameters, hashed diff values."""

from __future__ import annotations

import orjson
import pytest
from store_fixtures import comparison

from diffs.exchange import DiffKind, FieldDiff
from diffs.redaction import REDACTED, Redactor

redactor = Redactor()


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("Password", True),
        ("PASSWORD", True),
        ("newPassword", True),
        ("user_password", True),
        ("card_number", True),
        ("cardNumber", True),
        ("card-number", True),
        ("access_token", True),
        ("refreshToken", True),
        ("client_secret", True),
        ("apiKey", True),
        ("APIKey", True),
        ("apikey", True),
        ("max_tokens", False),
        ("token_count", False),
        ("number", False),
        ("passwords_match", False),
        ("id", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert redactor.is_secret_key(key) is secret


def test_secret_headers_are_redacted_and_others_kept() -> None:
    headers = (
        ("authorization", "Bearer abc"),
        ("Cookie", "session=abc"),
        ("set-cookie", "session=abc"),
        ("proxy-authorization", "Basic abc"),
        ("x-api-key", "abc"),
        ("x-auth-token", "abc"),
        ("content-type", "application/json"),
    )
    redacted = redactor.redact_headers(headers)
    assert [v for _, v in redacted] == [REDACTED] * 6 + ["application/json"]
    assert [n for n, _ in redacted] == [n for n, _ in headers]


def test_json_body_fields_are_redacted_at_any_depth() -> None:
    body = orjson.dumps(
        {
            "user": {"name": "ann", "Password": "hunter2", "cards": [{"cardNumber": "4111111111", "exp": "12/30"}]},
            "token": {"nested": "x"},
            "max_tokens": 64,
        }
    )
    redacted = orjson.loads(redactor.redact_body(body))
    assert redacted == {
        "user": {"name": "ann", "Password": REDACTED, "cards": [{"cardNumber": REDACTED, "exp": "12/30"}]},
        "token": REDACTED,
        "max_tokens": 64,
    }


def test_bodies_without_secrets_are_returned_untouched() -> None:
    body = b'{ "id": 1,   "name": "desk" }'
    assert redactor.redact_body(body) is body


def test_escaped_keys_are_still_found() -> None:
    body = b'{"pass\\u0077ord": "hunter2"}'
    assert b"hunter2" not in redactor.redact_body(body)


def test_non_json_bodies_are_stored_as_is() -> None:
    form = b"user=ann&password=hunter2"
    assert redactor.redact_body(form) == form


def test_big_integers_do_not_defeat_redaction() -> None:
    body = b'{"id": 123456789012345678901234567890, "password": "hunter2"}'
    assert b"hunter2" not in redactor.redact_body(body)


def test_query_parameters_are_redacted() -> None:
    assert redactor.redact_query("a=1&token=abc&b=%20&api_key=k") == f"a=1&token={REDACTED}&b=%20&api_key={REDACTED}"
    assert redactor.redact_query("a=1") == "a=1"


@pytest.mark.parametrize(
    "path",
    [
        "root.password",
        "root.users[*].password",
        "root.card_number",
        'root["my token"]',
        "root['token']",
        "root.tokens[*].token",
        "header.set-cookie",
    ],
)
def test_diffs_at_secret_paths_keep_a_hash_not_the_value(path: str) -> None:
    diff = FieldDiff("x", "POST /api/login", path, DiffKind.CHANGED, "hunter2", "hunter3")
    redacted = redactor.redact_diff(diff)
    assert str(redacted.primary_value).startswith("sha256:") and len(str(redacted.primary_value)) == 19
    assert redacted.primary_value != redacted.shadow_value
    assert redactor.redact_diff(diff).primary_value == redacted.primary_value  # stable: same value, same hash
    assert "hunter" not in repr(redacted)


@pytest.mark.parametrize("path", ["root.max_tokens", "root.tokens[*]", "header.content-type", "root.token.kind"])
def test_other_paths_are_not_secret(path: str) -> None:
    assert not redactor.is_secret_path(path)


def test_absent_side_of_a_secret_diff_stays_absent() -> None:
    diff = FieldDiff("x", "e", "root.password", DiffKind.REMOVED, "hunter2", None)
    assert redactor.redact_diff(diff).shadow_value is None


def test_secrets_nested_in_other_diff_values_are_redacted() -> None:
    diff = FieldDiff("x", "e", "root.user", DiffKind.ADDED, None, {"name": "ann", "password": "hunter2"})
    assert redactor.redact_diff(diff).shadow_value == {"name": "ann", "password": REDACTED}


def test_configured_fields_replace_the_defaults() -> None:
    custom = Redactor(("ssn",))
    assert custom.is_secret_key("ssn") and not custom.is_secret_key("password")
    assert b"123-45" not in custom.redact_body(b'{"SSN": "123-45"}')


def test_redact_comparison_covers_request_sides_and_diffs() -> None:
    c = comparison(
        request_headers=(("authorization", "Bearer s3cr3t"),),
        request_body=b'{"password": "s3cr3t"}',
        query="token=s3cr3t",
        diffs=[("root.token", "s3cr3t", "other")],
    )
    assert "s3cr3t" not in repr(redactor.redact_comparison(c))


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"username=bob&password=hunter2", b"username=bob&password=[REDACTED]"),
        (b"user%5Bpassword%5D=hunter2&next=%2F", b"user%5Bpassword%5D=[REDACTED]&next=%2F"),
        (b"pass%77ord=hunter2", b"pass%77ord=[REDACTED]"),  # a percent-encoded name is decoded before matching
        (b"newPassword=a+b&api_key=k&max_tokens=5", b"newPassword=[REDACTED]&api_key=[REDACTED]&max_tokens=5"),
        (b"q=caf%C3%A9&page=2", b"q=caf%C3%A9&page=2"),
        (b"password", b"password"),  # a name without a value holds nothing
    ],
)
def test_form_fields_are_redacted_like_json_keys(body: bytes, expected: bytes) -> None:
    assert redactor.redact_body(body, f"{FORM}; charset=utf-8") == expected


def test_a_form_body_is_not_parsed_as_json_nor_left_alone() -> None:
    assert redactor.redact_body(b"password=x", FORM) == b"password=[REDACTED]"
    assert redactor.redact_body(b"password=x", "text/plain") == b"password=x"  # not a form: as documented


def multipart(boundary: str, *parts: tuple[str, str, bytes], end: bool = True) -> bytes:
    out = b""
    for disposition, extra, content in parts:
        out += f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n{extra}\r\n".encode() + content
        out += b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if end else b"")


def test_multipart_fields_are_redacted_and_everything_else_kept() -> None:
    body = multipart(
        "XyZ",
        ('name="username"', "", b"bob"),
        ('name="password"', "", b"hunter2"),
        ('name="api_key"; filename="key.txt"', "Content-Type: text/plain\r\n", b"k-123\r\nline two"),
        ('name="avatar"; filename="password.png"', "Content-Type: image/png\r\n", b"\x89PNG"),
    )
    redacted = redactor.redact_body(b"preamble\r\n" + body, 'multipart/form-data; boundary="XyZ"')
    assert redacted == b"preamble\r\n" + multipart(
        "XyZ",
        ('name="username"', "", b"bob"),
        ('name="password"', "", REDACTED.encode()),
        ('name="api_key"; filename="key.txt"', "Content-Type: text/plain\r\n", REDACTED.encode()),
        ('name="avatar"; filename="password.png"', "Content-Type: image/png\r\n", b"\x89PNG"),
    )


def test_a_multipart_body_cut_by_the_size_cap_is_still_redacted() -> None:
    body = multipart("b", ('name="user"', "", b"bob"), ('name="password"', "", b"hunter2-and-more"), end=False)
    cut = body[: body.index(b"hunter2") + 7]
    assert b"hunter2" not in redactor.redact_body(cut, "multipart/form-data; boundary=b")


def test_a_multipart_body_without_a_boundary_is_replaced_when_it_may_hold_a_secret() -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n--x--\r\n'
    assert b"hunter2" not in redactor.redact_body(body, "multipart/form-data")
    assert redactor.redact_body(b"--x\r\n\r\nhello\r\n--x--", "multipart/form-data") == b"--x\r\n\r\nhello\r\n--x--"
