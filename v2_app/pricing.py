"""Pure money arithmetic: product prices and order totals, in Decimal with ROUND_HALF_UP."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from v2_app.constants import Coupon, CouponKind, Money, Shipping

_HUNDRED = Decimal(100)


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(Money.CENT, rounding=ROUND_HALF_UP)


def price_of(cost_price: Decimal, margin_rate: Decimal) -> Decimal:
    """`cost × (1 + rate / 100)`, to the cent: cost 19.99 at 25.5 % → 25.09."""
    return quantize(cost_price * (1 + margin_rate / _HUNDRED))


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    total: Decimal


def order_totals(line_totals: Iterable[Decimal], coupon: Coupon | None) -> Totals:
    """Subtotal, coupon discount, shipping (free from 50.00 after discount, or with FREESHIP) and total."""
    subtotal = quantize(sum(line_totals, Money.ZERO))
    discount = Money.ZERO
    if coupon is not None and coupon.kind is CouponKind.PERCENT_OFF:
        discount = quantize(subtotal * coupon.value / _HUNDRED)
    elif coupon is not None and coupon.kind is CouponKind.AMOUNT_OFF:
        discount = min(coupon.value, subtotal)
    free_shipping = coupon is not None and coupon.kind is CouponKind.FREE_SHIPPING
    shipping = Money.ZERO if free_shipping or subtotal - discount >= Shipping.FREE_FROM else Shipping.FLAT_FEE
    total = subtotal - discount + shipping
    return Totals(quantize(subtotal), quantize(discount), quantize(shipping), quantize(total))


def money(amount: Decimal) -> str:
    """Money on the wire: a string with exactly two decimals."""
    return str(quantize(amount))


def rate(margin_rate: Decimal) -> str:
    """A margin rate on the wire: one decimal, `"10.0"`."""
    return str(margin_rate.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
