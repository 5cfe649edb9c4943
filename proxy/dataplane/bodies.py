"""Request bodies: read once from ASGI up to a cap; past it, the rest is streamed on instead of buffered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def read_body(receive: Receive, limit: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """The request body, read once: all of it, or the first `limit`+ bytes and an iterator over the rest."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body, None
    chunks = [body]
    size = len(body)
    while size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None
    return b"".join(chunks), rest_of_body(receive)


async def rest_of_body(receive: Receive) -> AsyncIterator[bytes]:
    """What is left of a body past the cap, as the client sends it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def chain(prefix: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The whole body again: the part read and the rest, for an upstream that gets it all."""
    yield prefix
    async for chunk in rest:
        yield chunk
