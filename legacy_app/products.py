"""Product endpoints: CRUD with price derived from cost and margin, list with filters and pagination."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from legacy_app.database import Database
from legacy_app.models import OrderItem, Product, utcnow
from legacy_app.pricing import DEFAULT_MARGIN_RATE, compute_price, to_cents, to_tenths
from legacy_app.serializers import product_to_dict
from legacy_app.validation import (
    SQLITE_MAX_INT,
    bad_request,
    get_decimal,
    get_int,
    get_str,
    path_id,
    query_int,
    read_json_object,
)

logger = logging.getLogger("legacy_app")

PRODUCT_STATUSES = ("active", "inactive", "out_of_stock", "discontinued")
MAX_STOCK = 2**31 - 1
MAX_COST_PRICE = Decimal("1000000000")
MAX_MARGIN_RATE = Decimal("10000")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
NOT_FOUND = "Product not found"


def _cost_price(value: Any) -> Decimal:
    return to_cents(get_decimal(value, "cost_price", minimum=Decimal(0), maximum=MAX_COST_PRICE))


def _margin_rate(value: Any) -> Decimal:
    return to_tenths(get_decimal(value, "margin_rate", minimum=Decimal(0), maximum=MAX_MARGIN_RATE))


def _status(value: Any) -> str:
    if value not in PRODUCT_STATUSES:
        raise bad_request(f"status must be one of {', '.join(PRODUCT_STATUSES)}")
    result: str = value
    return result


def _stock(value: Any) -> int:
    return get_int(value, "stock", minimum=0, maximum=MAX_STOCK)


def _description(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise bad_request("Field 'description' must be a string or null")
    return value


def _get_or_404(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return product


class ProductHandlers:
    def __init__(self, db: Database) -> None:
        self.db = db

    def routes(self) -> list[Route]:
        return [
            Route("/api/products", self.list_products, methods=["GET"]),
            Route("/api/products", self.create_product, methods=["POST"]),
            Route("/api/products/sku/{sku:path}", self.get_product_by_sku, methods=["GET"]),
            Route("/api/products/{id:int}", self.get_product, methods=["GET"]),
            Route("/api/products/{id:int}", self.update_product, methods=["PATCH"]),
            Route("/api/products/{id:int}", self.delete_product, methods=["DELETE"]),
        ]

    async def list_products(self, request: Request) -> Response:
        status = request.query_params.get("status") or None
        q = request.query_params.get("q") or None
        limit = min(query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=SQLITE_MAX_INT), MAX_LIMIT)
        offset = query_int(request, "offset", default=0, minimum=0, maximum=SQLITE_MAX_INT)
        result = await run_in_threadpool(self._list, status, q, limit, offset)
        return JSONResponse(result)

    def _list(self, status: str | None, q: str | None, limit: int, offset: int) -> dict[str, Any]:
        query = select(Product)
        if status is not None:
            query = query.where(Product.status == status)
        if q is not None:
            query = query.where(
                or_(Product.name.icontains(q, autoescape=True), Product.sku.icontains(q, autoescape=True))
            )
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            products = session.scalars(query.order_by(Product.id).limit(limit).offset(offset)).all()
            items = [product_to_dict(p) for p in products]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    async def create_product(self, request: Request) -> Response:
        body = await read_json_object(request)
        sku = get_str(body, "sku", required=True)
        name = get_str(body, "name", required=True)
        if body.get("cost_price") is None:
            raise bad_request("Field 'cost_price' is required")
        margin_rate, status, stock = body.get("margin_rate"), body.get("status"), body.get("stock")
        fields: dict[str, Any] = {
            "sku": sku,
            "name": name,
            "description": _description(body.get("description")),
            "cost_price": _cost_price(body["cost_price"]),
            "margin_rate": DEFAULT_MARGIN_RATE if margin_rate is None else _margin_rate(margin_rate),
            "status": "active" if status is None else _status(status),
            "stock": 0 if stock is None else _stock(stock),
        }
        result = await run_in_threadpool(self._create, fields)
        return JSONResponse(result, status_code=201)

    def _create(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.db.write() as session:
            if session.scalar(select(Product.id).where(Product.sku == fields["sku"])) is not None:
                raise HTTPException(status_code=409, detail=f"Product with sku {fields['sku']} already exists")
            now = utcnow()
            product = Product(**fields, created_at=now, updated_at=now)
            product.price = compute_price(product.cost_price, product.margin_rate)
            session.add(product)
            session.flush()
            result = product_to_dict(product)
        logger.info(f"Product created: {result['id']} ({result['sku']})")
        return result

    async def get_product(self, request: Request) -> Response:
        product_id = path_id(request, NOT_FOUND)
        return JSONResponse(await run_in_threadpool(self._get, product_id))

    def _get(self, product_id: int) -> dict[str, Any]:
        with self.db.read() as session:
            return product_to_dict(_get_or_404(session, product_id))

    async def get_product_by_sku(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self._get_by_sku, request.path_params["sku"]))

    def _get_by_sku(self, sku: str) -> dict[str, Any]:
        with self.db.read() as session:
            product = session.scalar(select(Product).where(Product.sku == sku))
            if product is None:
                raise HTTPException(status_code=404, detail=NOT_FOUND)
            return product_to_dict(product)

    async def update_product(self, request: Request) -> Response:
        product_id = path_id(request, NOT_FOUND)
        body = await read_json_object(request)
        for field in ("name", "cost_price", "margin_rate", "status", "stock"):
            if field in body and body[field] is None:
                raise bad_request(f"Field '{field}' cannot be null")
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = get_str(body, "name")
        if "description" in body:
            changes["description"] = _description(body["description"])
        if "cost_price" in body:
            changes["cost_price"] = _cost_price(body["cost_price"])
        if "margin_rate" in body:
            changes["margin_rate"] = _margin_rate(body["margin_rate"])
        if "status" in body:
            changes["status"] = _status(body["status"])
        if "stock" in body:
            changes["stock"] = _stock(body["stock"])
        return JSONResponse(await run_in_threadpool(self._update, product_id, changes))

    def _update(self, product_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        with self.db.write() as session:
            product = _get_or_404(session, product_id)
            for field, value in changes.items():
                setattr(product, field, value)
            product.price = compute_price(product.cost_price, product.margin_rate)
            product.updated_at = utcnow()
            session.flush()
            result = product_to_dict(product)
        logger.info(f"Product updated: {product_id} fields={sorted(changes)}")
        return result

    async def delete_product(self, request: Request) -> Response:
        product_id = path_id(request, NOT_FOUND)
        await run_in_threadpool(self._delete, product_id)
        return Response(status_code=204)

    def _delete(self, product_id: int) -> None:
        with self.db.write() as session:
            product = _get_or_404(session, product_id)
            if session.scalar(select(OrderItem.id).where(OrderItem.product_id == product_id).limit(1)) is not None:
                raise HTTPException(status_code=409, detail=f"Product {product_id} is referenced by orders")
            session.delete(product)
        logger.info(f"Product deleted: {product_id}")
