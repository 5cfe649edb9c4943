"""AI endpoints on the one provider V1 has: the deterministic offline generator (no cache, so `cached` is false)."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from legacy_app.database import Database
from legacy_app.models import Product
from legacy_app.pricing import money
from legacy_app.validation import bad_request, get_int, path_id, read_json_object

logger = logging.getLogger("legacy_app")

DEFAULT_MAX_TOKENS = 64
MAX_TOKENS = 1024


class OfflineProvider:
    """Deterministic text from the prompt alone: the same words in both apps, on every run."""

    name = "offline"

    def generate(self, prompt: str, max_tokens: int) -> str:
        return "Generated: " + " ".join(prompt.split()[:max_tokens])


class AIHandlers:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.provider = OfflineProvider()

    def routes(self) -> list[Route]:
        return [
            Route("/api/ai/generate", self.generate, methods=["POST"]),
            Route("/api/ai/products/{id:int}/description", self.product_description, methods=["POST"]),
        ]

    async def generate(self, request: Request) -> Response:
        body = await read_json_object(request)
        prompt = body.get("prompt")
        if prompt is None:
            raise bad_request("Field 'prompt' is required")
        if not isinstance(prompt, str):
            raise bad_request("Field 'prompt' must be a string")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = DEFAULT_MAX_TOKENS
        max_tokens = get_int(max_tokens, "max_tokens", minimum=1, maximum=MAX_TOKENS)
        text = self.provider.generate(prompt, max_tokens)
        logger.info(f"AI generate: provider={self.provider.name} max_tokens={max_tokens}")
        return JSONResponse({"text": text, "provider": self.provider.name, "cached": False})

    async def product_description(self, request: Request) -> Response:
        product_id = path_id(request, "Product not found")
        prompt = await run_in_threadpool(self._description_prompt, product_id)
        description = self.provider.generate(prompt, DEFAULT_MAX_TOKENS)
        logger.info(f"AI description generated for product {product_id}")
        return JSONResponse(
            {"product_id": product_id, "description": description, "provider": self.provider.name, "cached": False}
        )

    def _description_prompt(self, product_id: int) -> str:
        with self.db.read() as session:
            product = session.get(Product, product_id)
            if product is None:
                raise HTTPException(status_code=404, detail="Product not found")
            price = money(product.price)
            return f"Write a product description for {product.name} (sku {product.sku}), priced at {price}."
