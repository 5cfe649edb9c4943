"""A stand-in orders service whose ids count from `--first`: two of them generate different ids for one create.

`POST /api/orders` creates an order (201, `{"id": n, ...}`), `GET /api/orders/{id}` answers it or 404, and
`GET /__stats` says how many GETs found their order and how many did not (a shadow sent the primary's id).

    python -m bench.orders_upstream --port 0 --first 100000      # prints "port N"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from typing import Any

import uvicorn


class Orders:
    def __init__(self, first: int, create_delay: float = 0.0) -> None:
        self.next_id = first
        self.create_delay = create_delay
        self.orders: dict[int, dict[str, Any]] = {}
        self.found = 0
        self.missing = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        parts = path.strip("/").split("/")
        if path == "/__stats":
            await self._send(send, 200, {"found": self.found, "missing": self.missing})
        elif method == "POST" and parts == ["api", "orders"]:
            if self.create_delay:
                await asyncio.sleep(self.create_delay)
            order = {"id": self.next_id, "status": "new", **(json.loads(body) if body else {})}
            self.orders[self.next_id] = order
            self.next_id += 1
            await self._send(send, 201, order)
        elif method == "GET" and len(parts) == 3 and parts[2].isdigit():
            order = self.orders.get(int(parts[2]))
            if order is None:
                self.missing += 1
                await self._send(send, 404, {"detail": "not found"})
            else:
                self.found += 1
                await self._send(send, 200, order)
        else:
            await self._send(send, 404, {"detail": "not found"})

    @staticmethod
    async def _send(send: Any, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.orders_upstream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--create-delay", type=float, default=0.0, help="seconds before answering a create")
    args = parser.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    print(f"port {sock.getsockname()[1]}", flush=True)
    app = Orders(args.first, args.create_delay)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", http="httptools")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
