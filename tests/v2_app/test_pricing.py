"""Pure money rules: price derivation and order totals, as tables."""

from __future__ import annotations

from decimal import Decimal

import pytest

from v2_app.constants import COUPONS, MarginRates
from v2_app.pricing import Totals, money, order_totals, price_of, rate

D = Decimal


@pytest.mark.parametrize(
    ("cost", "margin", "price"),
    [
        ("19.99", "25.5", "25.09"),
        ("120.00", MarginRates.DEFAULT, "132.00"),
        ("0.05", "10.0", "0.06"),
        ("0.00", "40.0", "0.00"),
        ("99.99", "5.0", "104.99"),
    ],
)
def test_price_of(cost: str, margin: Decimal | str, price: str) -> None:
    assert price_of(D(cost), D(margin)) == D(price)


@pytest.mark.parametrize(
    ("lines", "coupon", "expected"),
    [
        (["22.00"], None, ("22.00", "0.00", "5.00", "27.00")),
        (["33.35"], "WELCOME10", ("33.35", "3.34", "5.00", "35.01")),
        (["3.00"], "SAVE5", ("3.00", "3.00", "5.00", "5.00")),
        (["30.00", "25.00"], "SAVE5", ("55.00", "5.00", "0.00", "50.00")),
        (["10.00"], "FREESHIP", ("10.00", "0.00", "0.00", "10.00")),
        (["50.00"], None, ("50.00", "0.00", "0.00", "50.00")),
        (["49.99"], None, ("49.99", "0.00", "5.00", "54.99")),
    ],
)
def test_order_totals(lines: list[str], coupon: str | None, expected: tuple[str, str, str, str]) -> None:
    totals = order_totals([D(x) for x in lines], COUPONS[coupon] if coupon else None)

    assert totals == Totals(*(D(x) for x in expected))


def test_wire_formats() -> None:
    assert (money(D("5")), money(D("1.005")), rate(D("10")), rate(D("25.55"))) == ("5.00", "1.01", "10.0", "25.6")
