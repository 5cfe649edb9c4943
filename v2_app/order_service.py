"""Order use cases: placing an order (prices, coupon, shipping, stock reservation) and moving it through its states."""

from __future__ import annotations

import secrets
from collections import Counter

from structlog.typing import FilteringBoundLogger

from v2_app.constants import COUPONS, TRANSITIONS, OrderAction, OrderStatus, ProductStatus
from v2_app.database import Database
from v2_app.exceptions import InsufficientStockError, InvalidStatusTransition, ProductUnavailableError
from v2_app.models import Order, OrderItem, Product, utcnow
from v2_app.pricing import order_totals, price_of
from v2_app.product_service import ProductService
from v2_app.repository import CustomerRepository, OrderRepository, ProductRepository
from v2_app.schemas import OrderCreate
from v2_app.serializers import JSONObject, order_json


def new_order_number() -> str:
    return "ORD-" + secrets.token_hex(4).upper()


class OrderService:
    def __init__(self, db: Database, products: ProductService, logger: FilteringBoundLogger) -> None:
        self._db = db
        self._products = products
        self._logger = logger.bind(logger="OrderService")

    async def create(self, data: OrderCreate) -> JSONObject:
        """One transaction: every check passes and all stock is reserved, or nothing is written."""
        coupon = COUPONS[data.coupon] if data.coupon is not None else None
        now = utcnow()
        touched: dict[int, str] = {}
        async with self._db.write() as session:
            products = ProductRepository(session)
            await CustomerRepository(session).get_or_404(data.customer_id)
            taken: Counter[int] = Counter()
            items: list[OrderItem] = []
            for line in data.items:
                product = await products.get_or_404(line.product_id)
                _require_active(product)
                if not await products.take_stock(product.id, line.quantity):
                    available = product.stock - taken[product.id]
                    raise InsufficientStockError(
                        f"Insufficient stock for product {product.id}: "
                        f"requested {line.quantity}, available {available}",
                        {"product_id": product.id, "requested": line.quantity, "available": available},
                    )
                taken[product.id] += line.quantity
                touched[product.id] = product.sku
                unit_price = price_of(product.cost_price, product.margin_rate)
                items.append(
                    OrderItem(
                        product_id=product.id,
                        sku=product.sku,
                        name=product.name,
                        quantity=line.quantity,
                        unit_price=unit_price,
                        line_total=unit_price * line.quantity,
                    )
                )
            totals = order_totals((item.line_total for item in items), coupon)
            order = await OrderRepository(session).add(
                Order(
                    order_number=new_order_number(),
                    customer_id=data.customer_id,
                    status=OrderStatus.PENDING.value,
                    coupon=data.coupon,
                    subtotal=totals.subtotal,
                    discount=totals.discount,
                    shipping=totals.shipping,
                    total=totals.total,
                    created_at=now,
                    updated_at=now,
                    items=items,
                    v2_metadata={"written_by": "v2"},
                )
            )
            body = order_json(order)
        for product_id, sku in touched.items():
            await self._products.forget(product_id, sku)
        self._logger.info(
            "Order created",
            order_id=order.id,
            order_number=order.order_number,
            customer_id=order.customer_id,
            total=body["total"],
            items=len(items),
        )
        return body

    async def get(self, order_id: int) -> JSONObject:
        async with self._db.read() as session:
            return order_json(await OrderRepository(session).get_or_404(order_id))

    async def list(self, customer_id: int | None) -> JSONObject:
        async with self._db.read() as session:
            orders = await OrderRepository(session).for_customer(customer_id)
            items = [order_json(order) for order in orders]
        return {"items": items, "total": len(items)}

    async def transition(self, order_id: int, action: OrderAction) -> JSONObject:
        """Apply `action` if the order's state allows it (cancel returns the stock); refuse with nothing changed."""
        rule = TRANSITIONS[action]
        touched: dict[int, str] = {}
        async with self._db.write() as session:
            order = await OrderRepository(session).get_or_404(order_id)
            previous = order.status
            if previous not in rule.allowed_from:
                raise InvalidStatusTransition(order.id, action.value, previous, rule.target.value)
            order.status = rule.target.value
            order.updated_at = utcnow()
            if rule.returns_stock:
                products = ProductRepository(session)
                for item in order.items:
                    await products.return_stock(item.product_id, item.quantity)
                    touched[item.product_id] = item.sku
            await session.flush()
            body = order_json(order)
        for product_id, sku in touched.items():
            await self._products.forget(product_id, sku)
        self._logger.info(
            "Order status changed",
            order_id=order_id,
            customer_id=order.customer_id,
            previous=previous,
            status=order.status,
        )
        return body


def _require_active(product: Product) -> None:
    if product.status != ProductStatus.ACTIVE:
        raise ProductUnavailableError(
            f"Product {product.id} is {product.status} and cannot be ordered",
            {"product_id": product.id, "status": product.status},
        )
