"""Rows to the contract's JSON bodies: money as two-decimal strings, times as ISO 8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from legacy_app.models import Customer, Order, OrderItem, Product
from legacy_app.pricing import money, rate


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def product_to_dict(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "cost_price": money(product.cost_price),
        "margin_rate": rate(product.margin_rate),
        "price": money(product.price),
        "status": product.status,
        "stock": product.stock,
        "created_at": timestamp(product.created_at),
        "updated_at": timestamp(product.updated_at),
    }


def customer_to_dict(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "name": customer.name, "email": customer.email, "tier": customer.tier}


def order_item_to_dict(item: OrderItem) -> dict[str, Any]:
    return {
        "product_id": item.product_id,
        "sku": item.sku,
        "name": item.name,
        "quantity": item.quantity,
        "unit_price": money(item.unit_price),
        "line_total": money(item.line_total),
    }


def order_to_dict(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "order_number": order.order_number,
        "customer_id": order.customer_id,
        "status": order.status,
        "coupon": order.coupon,
        "items": [order_item_to_dict(item) for item in order.items],
        "subtotal": money(order.subtotal),
        "discount": money(order.discount),
        "shipping": money(order.shipping),
        "total": money(order.total),
        "created_at": timestamp(order.created_at),
        "updated_at": timestamp(order.updated_at),
    }
