"""Fake Gemini and Ollama servers (small Starlette apps) that record what they were asked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Mode = Literal["ok", "error", "slow", "garbage"]


@dataclass
class FakeAI:
    """One fake provider: how it behaves, and every request it received."""

    mode: Mode = "ok"
    answer: str = "A fine answer"
    delay: float = 0.4
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def respond(self, request: Request, good_body: dict[str, Any]) -> Response:
        self.calls.append({"path": request.url.path, "query": dict(request.query_params), "json": await request.json()})
        if self.mode == "error":
            return JSONResponse({"error": "overloaded"}, status_code=503)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "garbage":
            return JSONResponse({"unexpected": True})
        return JSONResponse(good_body)


def gemini_app(fake: FakeAI) -> Starlette:
    async def generate(request: Request) -> Response:
        body = {"candidates": [{"content": {"parts": [{"text": fake.answer}], "role": "model"}}]}
        return await fake.respond(request, body)

    return Starlette(routes=[Route("/v1beta/models/{model}:generateContent", generate, methods=["POST"])])


def ollama_app(fake: FakeAI) -> Starlette:
    async def generate(request: Request) -> Response:
        return await fake.respond(request, {"model": "llama3.2", "response": fake.answer, "done": True})

    return Starlette(routes=[Route("/api/generate", generate, methods=["POST"])])
