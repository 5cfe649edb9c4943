"""proxy.runtime.stack: readiness is checked without sending a request through the proxy."""

from __future__ import annotations

import asyncio

from proxy.runtime.stack import _answers
from tests.servers import free_port


async def test_a_tcp_health_check_connects_and_sends_nothing() -> None:
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())  # until the checker closes its side
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await asyncio.to_thread(_answers, f"tcp://127.0.0.1:{port}")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
    finally:
        server.close()
        await server.wait_closed()
    assert received == [b""]  # connected, not a byte of HTTP: nothing to mirror, nothing to compare
    assert not await asyncio.to_thread(_answers, f"tcp://127.0.0.1:{free_port()}")
    assert not _answers("tcp://nowhere")
