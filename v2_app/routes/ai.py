"""AI endpoints: free-form generation and product descriptions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from v2_app.ai_service import AIService
from v2_app.constants import Limits
from v2_app.product_service import ProductService
from v2_app.routes import resource
from v2_app.schemas import GenerateRequest, parse_body


def description_prompt(name: str, sku: str, price: str) -> str:
    """The contract's prompt, identical in V1 and V2."""
    return f"Write a product description for {name} (sku {sku}), priced at {price}."


def ai_routes(ai: AIService, products: ProductService) -> list[BaseRoute]:
    async def generate(request: Request) -> Response:
        body = await parse_body(request, GenerateRequest)
        result = await ai.generate_text(body.prompt, body.max_tokens)
        return JSONResponse({"text": result.text, "provider": result.provider, "cached": result.cached})

    async def describe_product(request: Request) -> Response:
        product = await products.get(request.path_params["id"])
        prompt = description_prompt(product["name"], product["sku"], product["price"])
        result = await ai.generate_text(prompt, Limits.AI_MAX_TOKENS_DEFAULT)
        return JSONResponse(
            {
                "product_id": product["id"],
                "description": result.text,
                "provider": result.provider,
                "cached": result.cached,
            }
        )

    return [
        resource("/api/ai/generate", POST=generate),
        resource("/api/ai/products/{id:int}/description", POST=describe_product),
    ]
