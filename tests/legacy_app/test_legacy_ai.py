"""AI endpoints: the deterministic offline provider, never cached."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.legacy_app.support import MakeProduct


async def test_generate_is_deterministic(client: httpx.AsyncClient) -> None:
    body = {"prompt": "  Tell me\tabout   the walnut desk\n", "max_tokens": 4}
    first = await client.post("/api/ai/generate", json=body)
    second = await client.post("/api/ai/generate", json=body)
    assert first.status_code == 200
    assert first.json() == {"text": "Generated: Tell me about the", "provider": "offline", "cached": False}
    assert second.json() == first.json()


async def test_generate_defaults_to_64_tokens(client: httpx.AsyncClient) -> None:
    words = [f"w{i}" for i in range(100)]
    response = await client.post("/api/ai/generate", json={"prompt": " ".join(words)})
    assert response.json()["text"] == "Generated: " + " ".join(words[:64])
    response = await client.post("/api/ai/generate", json={"prompt": " ".join(words), "max_tokens": 1024})
    assert response.json()["text"] == "Generated: " + " ".join(words)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "Field 'prompt' is required"),
        ({"prompt": 5}, "Field 'prompt' must be a string"),
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens must be an integer between 1 and 1024"),
        ({"prompt": "hi", "max_tokens": 1025}, "max_tokens must be an integer between 1 and 1024"),
        ({"prompt": "hi", "max_tokens": "3"}, "max_tokens must be an integer between 1 and 1024"),
    ],
)
async def test_generate_validation(client: httpx.AsyncClient, body: dict[str, Any], detail: str) -> None:
    response = await client.post("/api/ai/generate", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}


async def test_product_description(client: httpx.AsyncClient, make_product: MakeProduct) -> None:
    product = await make_product(sku="DESK-9", name="Walnut Desk", cost_price="120", margin_rate="10")
    response = await client.post(f"/api/ai/products/{product['id']}/description")
    assert response.status_code == 200
    assert response.json() == {
        "product_id": product["id"],
        "description": "Generated: Write a product description for Walnut Desk (sku DESK-9), priced at 132.00.",
        "provider": "offline",
        "cached": False,
    }
    again = await client.post(f"/api/ai/products/{product['id']}/description")
    assert again.json() == response.json()


async def test_product_description_of_a_missing_product_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/ai/products/999/description")
    assert response.status_code == 404
    assert response.json() == {"detail": "Product not found"}
