"""The AI service: real HTTP to fake Gemini and Ollama servers, response parsing, fallback order, caching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.servers import free_port, run_server
from tests.v2_app.fake_ai import FakeAI, gemini_app, ollama_app
from tests.v2_app.support import assert_error, serve
from v2_app.settings import V2Settings


@pytest.fixture
def gemini() -> FakeAI:
    return FakeAI(answer="Gemini says hello")


@pytest.fixture
def ollama() -> FakeAI:
    return FakeAI(answer="Ollama says hello")


@pytest.fixture
async def ai_settings(settings: V2Settings, gemini: FakeAI, ollama: FakeAI) -> AsyncIterator[V2Settings]:
    async with run_server(gemini_app(gemini)) as gemini_url, run_server(ollama_app(ollama)) as ollama_url:
        yield settings.model_copy(
            update={
                "ai_providers": ["gemini", "ollama", "offline"],
                "gemini_url": gemini_url,
                "gemini_api_key": "test-key",
                "gemini_model": "gemini-test",
                "ollama_url": ollama_url,
                "ollama_model": "llama-test",
                "ai_timeout_seconds": 0.2,
            }
        )


async def generate(client: httpx.AsyncClient, prompt: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/ai/generate", json={"prompt": prompt, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_gemini_answers_first(ai_settings: V2Settings, gemini: FakeAI, ollama: FakeAI) -> None:
    async with serve(ai_settings) as client:
        body = await generate(client, "Say hello", max_tokens=16)

    assert body == {"text": "Gemini says hello", "provider": "gemini", "cached": False}
    assert gemini.calls == [
        {
            "path": "/v1beta/models/gemini-test:generateContent",
            "query": {"key": "test-key"},
            "json": {
                "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
                "generationConfig": {"maxOutputTokens": 16},
            },
        }
    ]
    assert ollama.calls == []


@pytest.mark.parametrize("failure", ["error", "slow", "garbage"])
async def test_failing_gemini_falls_back_to_ollama(
    ai_settings: V2Settings, gemini: FakeAI, ollama: FakeAI, failure: Any
) -> None:
    gemini.mode = failure

    async with serve(ai_settings) as client:
        body = await generate(client, "Say hello")

    assert body == {"text": "Ollama says hello", "provider": "ollama", "cached": False}
    assert len(gemini.calls) == 1
    assert ollama.calls[0]["path"] == "/api/generate"
    assert ollama.calls[0]["json"] == {
        "model": "llama-test",
        "prompt": "Say hello",
        "stream": False,
        "options": {"num_predict": 64},
    }


async def test_gemini_down_and_ollama_slow_fall_back_to_offline(ai_settings: V2Settings, ollama: FakeAI) -> None:
    ollama.mode = "slow"
    settings = ai_settings.model_copy(update={"gemini_url": f"http://127.0.0.1:{free_port()}"})

    async with serve(settings) as client:
        body = await generate(client, "Say   hello to   everyone", max_tokens=3)
        metrics = (await client.get("/metrics")).text

    assert body == {"text": "Generated: Say hello to", "provider": "offline", "cached": False}
    assert len(ollama.calls) == 1
    assert 'ai_provider_requests_total{outcome="connect",provider="gemini"} 1.0' in metrics
    assert 'ai_provider_requests_total{outcome="timeout",provider="ollama"} 1.0' in metrics
    assert 'ai_provider_requests_total{outcome="ok",provider="offline"} 1.0' in metrics


async def test_repeated_prompt_is_served_from_the_cache(ai_settings: V2Settings, gemini: FakeAI) -> None:
    async with serve(ai_settings) as client:
        first = await generate(client, "Say hello")
        second = await generate(client, "Say hello")
        other_length = await generate(client, "Say hello", max_tokens=8)

    assert first == {"text": "Gemini says hello", "provider": "gemini", "cached": False}
    assert second == {"text": "Gemini says hello", "provider": "gemini", "cached": True}
    assert other_length["cached"] is False
    assert len(gemini.calls) == 2


async def test_no_provider_answering_is_service_unavailable(
    ai_settings: V2Settings, gemini: FakeAI, ollama: FakeAI
) -> None:
    gemini.mode = ollama.mode = "error"
    settings = ai_settings.model_copy(update={"ai_providers": ["gemini", "ollama"]})

    async with serve(settings) as client:
        error = assert_error(await client.post("/api/ai/generate", json={"prompt": "hi"}), 503, "SERVICE_UNAVAILABLE")

    assert len(error["details"]["failures"]) == 2


async def test_offline_provider_is_the_contracts_generator(client: httpx.AsyncClient) -> None:
    prompt = " ".join(f"w{i}" for i in range(100))

    body = await generate(client, prompt)

    assert body == {
        "text": "Generated: " + " ".join(f"w{i}" for i in range(64)),
        "provider": "offline",
        "cached": False,
    }


async def test_product_description_uses_the_contract_prompt(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/ai/products/1/description")

    assert response.status_code == 200
    assert response.json() == {
        "product_id": 1,
        "description": "Generated: Write a product description for Oak Chair 1 (sku SKU-0001), priced at 13.81.",
        "provider": "offline",
        "cached": False,
    }
    assert (await client.post("/api/ai/products/1/description")).json()["cached"] is True
    assert_error(await client.post("/api/ai/products/999/description"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 1025}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": "5"}, "max_tokens"),
    ],
)
async def test_bad_generate_request_is_a_validation_error(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    error = assert_error(await client.post("/api/ai/generate", json=body), 422, "VALIDATION_ERROR")

    assert [e["field"] for e in error["details"]["errors"]] == [field]
