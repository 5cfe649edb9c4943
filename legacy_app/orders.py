"""Order endpoints: create (price, coupon, shipping, stock reservation in one transaction), read, list, transitions."""

from __future__ import annotations

import logging
import secrets
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from legacy_app.database import Database
from legacy_app.models import Customer, Order, OrderItem, Product, utcnow
from legacy_app.pricing import COUPONS, compute_totals, to_cents
from legacy_app.serializers import order_to_dict
from legacy_app.validation import (
    SQLITE_MAX_INT,
    bad_request,
    fits_sqlite,
    is_int,
    path_id,
    query_int,
    read_json_object,
)

logger = logging.getLogger("legacy_app")

NOT_FOUND = "Order not found"
# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "pay": (("pending",), "paid"),
    "ship": (("paid",), "shipped"),
    "deliver": (("shipped",), "delivered"),
    "cancel": (("pending", "paid"), "cancelled"),
}


def _parse_order(body: dict[str, Any]) -> tuple[int, list[tuple[int, int]], str | None]:
    customer_id = body.get("customer_id")
    if customer_id is None:
        raise bad_request("Field 'customer_id' is required")
    if not is_int(customer_id):
        raise bad_request("customer_id must be an integer")
    items = body.get("items")
    if items is None:
        raise bad_request("Field 'items' is required")
    if not isinstance(items, list) or not items:
        raise bad_request("items must be a non-empty list")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_request(f"items[{index}] must be an object with product_id and quantity")
        product_id, quantity = item.get("product_id"), item.get("quantity")
        if not is_int(product_id):
            raise bad_request(f"items[{index}].product_id must be an integer")
        if not is_int(quantity) or quantity < 1:
            raise bad_request(f"items[{index}].quantity must be an integer >= 1")
        lines.append((product_id, quantity))
    coupon = body.get("coupon")
    if coupon is not None and coupon not in COUPONS:
        raise bad_request(f"Unknown coupon: {coupon}")
    return customer_id, lines, coupon


def _new_order_number(session: Session) -> str:
    while True:
        number = f"ORD-{secrets.token_hex(4).upper()}"
        if session.scalar(select(Order.id).where(Order.order_number == number)) is None:
            return number


def _get_or_404(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return order


class OrderHandlers:
    def __init__(self, db: Database) -> None:
        self.db = db

    def routes(self) -> list[Route]:
        return [
            Route("/api/orders", self.list_orders, methods=["GET"]),
            Route("/api/orders", self.create_order, methods=["POST"]),
            Route("/api/orders/{id:int}", self.get_order, methods=["GET"]),
            Route("/api/orders/{id:int}/pay", self.pay_order, methods=["POST"]),
            Route("/api/orders/{id:int}/ship", self.ship_order, methods=["POST"]),
            Route("/api/orders/{id:int}/deliver", self.deliver_order, methods=["POST"]),
            Route("/api/orders/{id:int}/cancel", self.cancel_order, methods=["POST"]),
        ]

    async def create_order(self, request: Request) -> Response:
        customer_id, lines, coupon = _parse_order(await read_json_object(request))
        result = await run_in_threadpool(self._create, customer_id, lines, coupon)
        return JSONResponse(result, status_code=201)

    def _create(self, customer_id: int, lines: list[tuple[int, int]], coupon: str | None) -> dict[str, Any]:
        # Everything below is one transaction: any HTTPException rolls back the stock already taken.
        with self.db.write() as session:
            if not fits_sqlite(customer_id) or session.get(Customer, customer_id) is None:
                raise HTTPException(status_code=404, detail="Customer not found")
            items = []
            subtotal = Decimal("0.00")
            for product_id, quantity in lines:
                product = session.get(Product, product_id) if fits_sqlite(product_id) else None
                if product is None:
                    raise HTTPException(status_code=404, detail=f"Product {product_id} not found")
                if product.status != "active":
                    raise HTTPException(status_code=409, detail=f"Product {product_id} is not active")
                if product.stock < quantity:
                    raise HTTPException(
                        status_code=409,
                        detail=f"Insufficient stock for product {product_id}: "
                        f"requested {quantity}, available {product.stock}",
                    )
                product.stock -= quantity
                line_total = to_cents(product.price * quantity)
                subtotal += line_total
                items.append(
                    OrderItem(
                        product_id=product.id,
                        sku=product.sku,
                        name=product.name,
                        quantity=quantity,
                        unit_price=product.price,
                        line_total=line_total,
                    )
                )
            discount, shipping, total = compute_totals(subtotal, coupon)
            now = utcnow()
            order = Order(
                order_number=_new_order_number(session),
                customer_id=customer_id,
                status="pending",
                coupon=coupon,
                subtotal=subtotal,
                discount=discount,
                shipping=shipping,
                total=total,
                created_at=now,
                updated_at=now,
                items=items,
            )
            session.add(order)
            session.flush()
            result = order_to_dict(order)
        logger.info(f"Order created: {result['id']} {result['order_number']} total={result['total']}")
        return result

    async def get_order(self, request: Request) -> Response:
        order_id = path_id(request, NOT_FOUND)
        return JSONResponse(await run_in_threadpool(self._get, order_id))

    def _get(self, order_id: int) -> dict[str, Any]:
        with self.db.read() as session:
            return order_to_dict(_get_or_404(session, order_id))

    async def list_orders(self, request: Request) -> Response:
        customer_id = None
        if request.query_params.get("customer_id", "").strip():
            customer_id = query_int(request, "customer_id", default=0, minimum=-SQLITE_MAX_INT, maximum=SQLITE_MAX_INT)
        return JSONResponse(await run_in_threadpool(self._list, customer_id))

    def _list(self, customer_id: int | None) -> dict[str, Any]:
        query = select(Order).order_by(Order.id)
        if customer_id is not None:
            query = query.where(Order.customer_id == customer_id)
        with self.db.read() as session:
            items = [order_to_dict(order) for order in session.scalars(query)]
        return {"items": items, "total": len(items)}

    async def pay_order(self, request: Request) -> Response:
        return await self._transition_endpoint(request, "pay")

    async def ship_order(self, request: Request) -> Response:
        return await self._transition_endpoint(request, "ship")

    async def deliver_order(self, request: Request) -> Response:
        return await self._transition_endpoint(request, "deliver")

    async def cancel_order(self, request: Request) -> Response:
        return await self._transition_endpoint(request, "cancel")

    async def _transition_endpoint(self, request: Request, action: str) -> Response:
        order_id = path_id(request, NOT_FOUND)
        return JSONResponse(await run_in_threadpool(self._transition, order_id, action))

    def _transition(self, order_id: int, action: str) -> dict[str, Any]:
        allowed_from, new_status = TRANSITIONS[action]
        with self.db.write() as session:
            order = _get_or_404(session, order_id)
            old_status = order.status
            if old_status not in allowed_from:
                raise HTTPException(status_code=400, detail=f"Cannot {action} an order that is {old_status}")
            if action == "cancel":
                for item in order.items:
                    product = session.get(Product, item.product_id)
                    if product is not None:  # products referenced by orders cannot be deleted, so always there
                        product.stock += item.quantity
            order.status = new_status
            order.updated_at = utcnow()
            session.flush()
            result = order_to_dict(order)
        logger.info(f"Order {order_id} {action}: {old_status} -> {new_status}")
        return result
