"""Money rules as pure functions: price derivation, coupons, the shipping threshold (Decimal, ROUND_HALF_UP)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from legacy_app.pricing import compute_price, compute_totals, money, rate


@pytest.mark.parametrize(
    ("cost", "margin", "price"),
    [
        ("120.00", "10.0", "132.00"),
        ("19.99", "25.5", "25.09"),  # 25.087245 → 25.09
        ("0.15", "50.0", "0.23"),  # 0.225: half-up gives .23 where banker's rounding would give .22
        ("10.00", "0.0", "10.00"),
        ("0.00", "40.0", "0.00"),
        ("33.33", "15.0", "38.33"),  # 38.3295
    ],
)
def test_price_is_cost_plus_margin_rounded_half_up(cost: str, margin: str, price: str) -> None:
    assert money(compute_price(Decimal(cost), Decimal(margin))) == price


@pytest.mark.parametrize(
    ("subtotal", "coupon", "discount", "shipping", "total"),
    [
        ("20.00", None, "0.00", "5.00", "25.00"),
        ("49.99", None, "0.00", "5.00", "54.99"),
        ("50.00", None, "0.00", "0.00", "50.00"),  # the threshold is inclusive
        ("50.00", "WELCOME10", "5.00", "5.00", "50.00"),  # 45.00 after discount is under the threshold
        ("33.35", "WELCOME10", "3.34", "5.00", "35.01"),  # 3.335 → 3.34
        ("60.00", "WELCOME10", "6.00", "0.00", "54.00"),
        ("3.00", "SAVE5", "3.00", "5.00", "5.00"),  # never below zero
        ("54.00", "SAVE5", "5.00", "5.00", "54.00"),
        ("55.00", "SAVE5", "5.00", "0.00", "50.00"),
        ("10.00", "FREESHIP", "0.00", "0.00", "10.00"),
    ],
)
def test_order_totals(subtotal: str, coupon: str | None, discount: str, shipping: str, total: str) -> None:
    assert tuple(money(v) for v in compute_totals(Decimal(subtotal), coupon)) == (discount, shipping, total)


@pytest.mark.parametrize(("value", "text"), [("10", "10.0"), ("25.5", "25.5"), ("2.25", "2.3"), ("0", "0.0")])
def test_margin_rate_has_one_decimal(value: str, text: str) -> None:
    assert rate(Decimal(value)) == text
