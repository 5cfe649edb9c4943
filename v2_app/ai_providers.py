"""AI text providers: Gemini and Ollama over HTTP, and the deterministic offline generator.

Every provider failure (connect, timeout, HTTP status, unexpected body) becomes a `ProviderError`,
which the AI service takes as the signal to try the next provider.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx


class ProviderError(Exception):
    def __init__(self, provider: str, kind: str, message: str) -> None:
        super().__init__(f"{provider}: {kind}: {message}")
        self.provider = provider
        self.kind = kind
        """`timeout`, `connect`, `status`, `body` or `transport`."""


class AIProvider(Protocol):
    name: str

    async def generate(self, prompt: str, max_tokens: int) -> str: ...


def offline_text(prompt: str, max_tokens: int) -> str:
    """The contract's deterministic generator, identical in V1 and V2."""
    return "Generated: " + " ".join(prompt.split()[:max_tokens])


class OfflineProvider:
    name = "offline"

    async def generate(self, prompt: str, max_tokens: int) -> str:
        return offline_text(prompt, max_tokens)


class GeminiProvider:
    """`POST {url}/v1beta/models/{model}:generateContent?key=…`; the text is `candidates[0].content.parts[0].text`."""

    name = "gemini"

    def __init__(self, client: httpx.AsyncClient, *, url: str, api_key: str, model: str, timeout: float) -> None:
        self._client = client
        self._endpoint = f"{url.rstrip('/')}/v1beta/models/{model}:generateContent"
        self._api_key = api_key
        self._timeout = timeout

    async def generate(self, prompt: str, max_tokens: int) -> str:
        body = {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"maxOutputTokens": max_tokens},
        }
        data = await _post_json(self._client, self.name, self._endpoint, body, self._timeout, {"key": self._api_key})
        try:
            text = data["candidates"][0]["content"]["parts"][0]["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(self.name, "body", f"no candidates[0].content.parts[0].text ({exc!r})") from exc
        return _text(self.name, text)


class OllamaProvider:
    """`POST {url}/api/generate` with `stream: false`; the text is `response`."""

    name = "ollama"

    def __init__(self, client: httpx.AsyncClient, *, url: str, model: str, timeout: float) -> None:
        self._client = client
        self._endpoint = f"{url.rstrip('/')}/api/generate"
        self._model = model
        self._timeout = timeout

    async def generate(self, prompt: str, max_tokens: int) -> str:
        body = {"model": self._model, "prompt": prompt, "stream": False, "options": {"num_predict": max_tokens}}
        data = await _post_json(self._client, self.name, self._endpoint, body, self._timeout)
        try:
            text = data["response"]
        except (KeyError, TypeError) as exc:
            raise ProviderError(self.name, "body", "no `response` field") from exc
        return _text(self.name, text)


async def _post_json(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    body: dict[str, Any],
    timeout: float,
    params: dict[str, str] | None = None,
) -> Any:
    try:
        response = await client.post(url, json=body, params=params, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise ProviderError(provider, "timeout", f"no answer within {timeout} s") from exc
    except httpx.ConnectError as exc:
        raise ProviderError(provider, "connect", str(exc) or "connection failed") from exc
    except httpx.HTTPError as exc:
        raise ProviderError(provider, "transport", repr(exc)) from exc
    if response.status_code != 200:
        raise ProviderError(provider, "status", f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(provider, "body", "response is not JSON") from exc


def _text(provider: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProviderError(provider, "body", "empty or non-text answer")
    return value
