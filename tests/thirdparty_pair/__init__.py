"""Inkwell, a small blog and shop REST service in two major versions, independent of `legacy_app`/`v2_app`.

The end-to-end verdict tests put shadowdiff in front of this pair so that the proxy is judged on somebody else's
migration, not tuned to our own demo. `v1` and `v2` share no code (each is what its own team would have written);
what V2 changed by design:

| what | V1 | V2 |
|---|---|---|
| ids | integers (`5`) | strings: seeded rows keep their number (`"5"`), new rows an 11-character random id |
| list envelope | `{"items", "page", "total"}` | `{"items", "next_cursor", "total"}` |
| list order | oldest first | newest first |
| `?tag=` filter | published posts only | drafts too |
| `PATCH /posts/{id}` score | kept as sent | rounded to one decimal (and, with `patch_delay`, applied slowly) |
| `GET /stats` | has `took_ms`, different on every call | dropped `took_ms` |
| `GET /posts/{id}.html` | one timing comment line that changes on every call | new markup, no timing line |
| product 3's stock | 31 | 30 (a data-migration slip) |
"""
