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
