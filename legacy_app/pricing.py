"""Money rules: price from cost and margin, coupons, shipping and order totals (Decimal, ROUND_HALF_UP)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
ZERO = Decimal("0.00")
DEFAULT_MARGIN_RATE = Decimal("10.0")
FREE_SHIPPING_THRESHOLD = Decimal("50.00")
SHIPPING_FEE = Decimal("5.00")

COUPON_WELCOME10 = "WELCOME10"
COUPON_SAVE5 = "SAVE5"
COUPON_FREESHIP = "FREESHIP"
COUPONS = (COUPON_WELCOME10, COUPON_SAVE5, COUPON_FREESHIP)


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def to_tenths(value: Decimal) -> Decimal:
    return value.quantize(TENTH, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """The API's money text: always two decimals (`"12.50"`)."""
    return str(to_cents(value))


def rate(value: Decimal) -> str:
    """A margin rate as the API shows it: one decimal (`"25.5"`)."""
    return str(to_tenths(value))


def compute_price(cost_price: Decimal, margin_rate: Decimal) -> Decimal:
    return to_cents(cost_price * (1 + margin_rate / 100))


def compute_discount(subtotal: Decimal, coupon: str | None) -> Decimal:
    if coupon == COUPON_WELCOME10:
        return to_cents(subtotal * Decimal("0.10"))
    if coupon == COUPON_SAVE5:
        return min(Decimal("5.00"), subtotal)
    return ZERO


def compute_shipping(subtotal: Decimal, discount: Decimal, coupon: str | None) -> Decimal:
    if coupon == COUPON_FREESHIP or subtotal - discount >= FREE_SHIPPING_THRESHOLD:
        return ZERO
    return SHIPPING_FEE


def compute_totals(subtotal: Decimal, coupon: str | None) -> tuple[Decimal, Decimal, Decimal]:
    """(discount, shipping, total) for an order with this subtotal and coupon."""
    discount = compute_discount(subtotal, coupon)
    shipping = compute_shipping(subtotal, discount, coupon)
    return discount, shipping, to_cents(subtotal - discount + shipping)
