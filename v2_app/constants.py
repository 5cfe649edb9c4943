"""Business constants: statuses, margin rates, coupons, shipping and the order state machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType


class ProductStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    OUT_OF_STOCK = "out_of_stock"
    DISCONTINUED = "discontinued"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class CustomerTier(enum.StrEnum):
    STANDARD = "standard"
    GOLD = "gold"


class MarginRates:
    """Margin rates are percentages with one decimal: price = cost × (1 + rate / 100)."""

    DEFAULT = Decimal("10.0")


class Money:
    CENT = Decimal("0.01")
    ZERO = Decimal("0.00")


class Shipping:
    FLAT_FEE = Decimal("5.00")
    FREE_FROM = Decimal("50.00")
    """Shipping is free when subtotal − discount reaches this amount."""


class CouponKind(enum.Enum):
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"
    FREE_SHIPPING = "free_shipping"


@dataclass(frozen=True, slots=True)
class Coupon:
    code: str
    kind: CouponKind
    value: Decimal = Decimal("0")
    """Percent for PERCENT_OFF, currency amount for AMOUNT_OFF, unused for FREE_SHIPPING."""


COUPONS: MappingProxyType[str, Coupon] = MappingProxyType(
    {
        "WELCOME10": Coupon("WELCOME10", CouponKind.PERCENT_OFF, Decimal("10")),
        "SAVE5": Coupon("SAVE5", CouponKind.AMOUNT_OFF, Decimal("5.00")),
        "FREESHIP": Coupon("FREESHIP", CouponKind.FREE_SHIPPING),
    }
)


class OrderAction(enum.StrEnum):
    """The verbs of `POST /api/orders/{id}/<action>`."""

    PAY = "pay"
    SHIP = "ship"
    DELIVER = "deliver"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Transition:
    target: OrderStatus
    allowed_from: frozenset[OrderStatus]
    returns_stock: bool = False


TRANSITIONS: MappingProxyType[OrderAction, Transition] = MappingProxyType(
    {
        OrderAction.PAY: Transition(OrderStatus.PAID, frozenset({OrderStatus.PENDING})),
        OrderAction.SHIP: Transition(OrderStatus.SHIPPED, frozenset({OrderStatus.PAID})),
        OrderAction.DELIVER: Transition(OrderStatus.DELIVERED, frozenset({OrderStatus.SHIPPED})),
        OrderAction.CANCEL: Transition(
            OrderStatus.CANCELLED, frozenset({OrderStatus.PENDING, OrderStatus.PAID}), returns_stock=True
        ),
    }
)


class Limits:
    PAGE_DEFAULT = 50
    PAGE_MAX = 200
    AI_MAX_TOKENS_DEFAULT = 64
    AI_MAX_TOKENS_MAX = 1024
    SQL_INT_MAX = 2**63 - 1
    """SQLite's INTEGER range: larger ids cannot exist, and binding them would overflow."""
    QUANTITY_MAX = 2**31 - 1
