"""proxy.dataplane.bodies: a body is read once, buffered up to the cap and streamed past it."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.dataplane.bodies import ClientGone, chain, read_body


def messages(*parts: bytes, disconnect: bool = False):  # type: ignore[no-untyped-def]
    queue: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": n < len(parts) - 1} for n, part in enumerate(parts)
    ]
    if disconnect:
        queue[-1]["more_body"] = True
        queue.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


async def test_a_body_within_the_cap_is_buffered() -> None:
    assert await read_body(messages(b"ab", b"cd", b""), 10) == (b"abcd", None)


async def test_past_the_cap_the_rest_is_streamed() -> None:
    body, rest = await read_body(messages(b"aaaa", b"bbbb", b"cccc", b"dd"), 5)
    assert body == b"aaaabbbb" and rest is not None
    assert b"".join([chunk async for chunk in chain(body, rest)]) == b"aaaabbbbccccdd"


async def test_a_client_that_leaves_mid_body_is_noticed() -> None:
    with pytest.raises(ClientGone):
        await read_body(messages(b"aa", disconnect=True), 10)
    _, rest = await read_body(messages(b"aaaaaa", b"bb", disconnect=True), 5)
    assert rest is not None
    with pytest.raises(ClientGone):
        [chunk async for chunk in rest]
