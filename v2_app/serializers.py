"""ORM rows to the contract's JSON bodies; rows never leave the service layer any other way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from v2_app.models import Customer, Order, OrderItem, Product
from v2_app.pricing import money, price_of, rate

JSONObject = dict[str, Any]


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def product_json(product: Product) -> JSONObject:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "cost_price": money(product.cost_price),
        "margin_rate": rate(product.margin_rate),
        "price": money(price_of(product.cost_price, product.margin_rate)),
        "status": product.status,
        "stock": product.stock,
        "created_at": timestamp(product.created_at),
        "updated_at": timestamp(product.updated_at),
    }


def order_item_json(item: OrderItem) -> JSONObject:
    return {
        "product_id": item.product_id,
        "sku": item.sku,
        "name": item.name,
        "quantity": item.quantity,
        "unit_price": money(item.unit_price),
        "line_total": money(item.line_total),
    }


def order_json(order: Order) -> JSONObject:
    return {
        "id": order.id,
        "order_number": order.order_number,
        "customer_id": order.customer_id,
        "status": order.status,
        "coupon": order.coupon,
        "items": [order_item_json(item) for item in order.items],
        "subtotal": money(order.subtotal),
        "discount": money(order.discount),
        "shipping": money(order.shipping),
        "total": money(order.total),
        "created_at": timestamp(order.created_at),
        "updated_at": timestamp(order.updated_at),
    }


def customer_json(customer: Customer) -> JSONObject:
    return {"id": customer.id, "name": customer.name, "email": customer.email, "tier": customer.tier}
