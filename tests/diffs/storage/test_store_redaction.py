"""Nothing secret reaches the database: every stored cell (and, on SQLite, every byte of the files) is searched."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import inspect, text
from store_fixtures import Database, comparison, side

from diffs.exchange import Comparison, DiffKind, FieldDiff, Role
from diffs.report import Window
from diffs.storage import RetentionPolicy, Store, queries

SECRET = "hunter2-S3CRET-value"


def _with_secrets() -> list[Comparison]:
    login = comparison(
        endpoint="POST /api/login",
        request_headers=(("authorization", f"Bearer {SECRET}"), ("cookie", f"sid={SECRET}"), ("x-api-key", SECRET)),
        request_body=f'{{"user": "ann", "password": "{SECRET}", "card": {{"cardNumber": "{SECRET}"}}}}'.encode(),
        query=f"token={SECRET}&page=2",
        primary=side(body=f'{{"token": "{SECRET}", "profile": {{"api_key": "{SECRET}"}}}}'.encode()),
        shadow=side(
            Role.SHADOW,
            app="v2",
            headers=(("set-cookie", f"sid={SECRET}; HttpOnly"), ("proxy-authorization", SECRET)),
            body=f'[{{"secret": "{SECRET}"}}]'.encode(),
        ),
        diffs=[("root.token", SECRET, SECRET + "x"), ("root.profile", {"api_key": SECRET}, None)],
    )
    header_diff = FieldDiff(login.exchange.id, login.endpoint, "header.set-cookie", DiffKind.HEADER, None, SECRET)
    return [replace(login, diffs=(*login.diffs, header_diff))]


async def _every_cell(database: Database) -> list[object]:
    engine = database.engine()
    cells: list[object] = []
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            assert {"exchanges", "exchange_payloads", "field_diffs"} <= set(tables)
            for table in tables:
                for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():
                    cells.extend(row)
    finally:
        await engine.dispose()
    return cells


async def test_no_stored_cell_holds_a_secret(store: Store, database: Database) -> None:
    await store.write_batch(_with_secrets())
    cells = await _every_cell(database)
    texts = [c.decode("utf-8", "replace") if isinstance(c, bytes | memoryview) else str(c) for c in cells]
    assert any("hunter2" in t for t in texts) is False, [t for t in texts if "hunter2" in t]
    assert any(t.startswith('"sha256:') for t in texts)  # the token diff is still there, as a hash
    assert any("[REDACTED]" in t for t in texts)


def _form_posts() -> list[Comparison]:
    """Issue 13: `username=bob&password=...` was stored in clear; the same field in JSON was redacted."""
    form = comparison(
        endpoint="POST /login",
        request_headers=(("content-type", "application/x-www-form-urlencoded"),),
        request_body=f"username=bob&password={SECRET}".encode(),
    )
    boundary = "----form-boundary-7MA4YWxk"
    upload = comparison(
        endpoint="POST /api/profile",
        request_headers=(("content-type", f"multipart/form-data; boundary={boundary}"),),
        request_body=(
            f'--{boundary}\r\nContent-Disposition: form-data; name="username"\r\n\r\nbob\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="password"\r\n\r\n{SECRET}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="card_number"\r\n\r\n{SECRET}\r\n'
            f"--{boundary}--\r\n"
        ).encode(),
        primary=side(
            headers=(("content-type", "application/x-www-form-urlencoded"),),
            body=f"access_token={SECRET}&expires=3600".encode(),
        ),
    )
    return [form, upload]


async def test_form_and_multipart_fields_are_redacted_in_every_stored_cell(store: Store, database: Database) -> None:
    batch = _form_posts()
    await store.write_batch(batch)
    cells = await _every_cell(database)
    texts = [c.decode("utf-8", "replace") if isinstance(c, bytes | memoryview) else str(c) for c in cells]
    assert [t for t in texts if "hunter2" in t] == []
    form = await store.get_exchange(batch[0].exchange.id)
    assert form is not None and form.request_body == b"username=bob&password=[REDACTED]"
    upload = await store.get_exchange(batch[1].exchange.id)
    assert (
        upload is not None and upload.request_body is not None and b'name="username"\r\n\r\nbob' in upload.request_body
    )
    assert upload.primary is not None and upload.primary.body == b"access_token=[REDACTED]&expires=3600"


async def test_exchanges_not_kept_are_only_counted_and_the_counts_hold_no_secret(database: Database) -> None:
    # Past the retention bound an exchange is only counted in the rollups: paths and kinds, never values.
    store = await database.open(retention=RetentionPolicy(examples_per_field=1))
    try:
        first = _with_secrets()[0]
        later = [replace(first, exchange=replace(first.exchange, id=f"later-{i}")) for i in range(3)]
        await store.write_batch([first])
        await store.write_batch(later)
        assert await store.get_exchange("later-1") is None
        totals = await queries.totals(store, Window())
        (counted,) = totals.values()
        assert sum(counted.outcomes.values()) == 4
        assert {path for path, _ in counted.fields} == {"root.token", "root.profile", "header.set-cookie"}
    finally:
        await store.close()
    cells = await _every_cell(database)
    texts = [c.decode("utf-8", "replace") if isinstance(c, bytes | memoryview) else str(c) for c in cells]
    assert not [t for t in texts if "hunter2" in t]
    assert not [t for t in texts if "later-" in t]  # no row of theirs but the counts


async def test_no_byte_of_the_sqlite_files_holds_a_secret(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'secrets.db'}")
    try:
        await store.write_batch(_with_secrets())
    finally:
        await store.close()
    files = list(tmp_path.glob("secrets.db*"))
    assert files
    assert all(SECRET.encode() not in f.read_bytes() for f in files)


async def test_diff_on_a_secret_still_shows_that_values_differ(store: Store) -> None:
    batch = _with_secrets()
    await store.write_batch(batch)
    stored = await store.get_exchange(batch[0].exchange.id)
    assert stored is not None
    token = next(d for d in stored.diffs if d.path == "root.token")
    assert token.primary_value.startswith("sha256:") and token.primary_value != token.shadow_value
    profile = next(d for d in stored.diffs if d.path == "root.profile")
    assert profile.primary_value == {"api_key": "[REDACTED]"}
    assert stored.request_headers[0] == ("authorization", "[REDACTED]")
    assert stored.query == "token=[REDACTED]&page=2"
