"""Product endpoints: list with filters, create, read by id or sku, patch, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from v2_app.product_service import ProductService
from v2_app.routes import resource
from v2_app.schemas import ProductCreate, ProductPatch, ProductQuery, parse_body, parse_query


def product_routes(service: ProductService) -> list[BaseRoute]:
    async def list_products(request: Request) -> Response:
        return JSONResponse(await service.list(parse_query(request, ProductQuery)))

    async def create_product(request: Request) -> Response:
        return JSONResponse(await service.create(await parse_body(request, ProductCreate)), status_code=201)

    async def get_by_sku(request: Request) -> Response:
        return JSONResponse(await service.get_by_sku(request.path_params["sku"]))

    async def get_product(request: Request) -> Response:
        return JSONResponse(await service.get(request.path_params["id"]))

    async def patch_product(request: Request) -> Response:
        patch = await parse_body(request, ProductPatch)
        return JSONResponse(await service.update(request.path_params["id"], patch))

    async def delete_product(request: Request) -> Response:
        await service.delete(request.path_params["id"])
        return Response(status_code=204)

    return [
        resource("/api/products", GET=list_products, POST=create_product),
        resource("/api/products/sku/{sku}", GET=get_by_sku),
        resource("/api/products/{id:int}", GET=get_product, PATCH=patch_product, DELETE=delete_product),
    ]
