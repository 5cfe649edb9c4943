"""The demo catalogue that `shadowdiff seed` loads into both apps: same data on each side."""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

_STATUSES = ("active", "active", "active", "active", "inactive", "out_of_stock", "discontinued")
_MARGINS = (Decimal("10.0"), Decimal("15.0"), Decimal("25.5"), Decimal("40.0"), Decimal("5.0"))
_NOUNS = ("Desk", "Chair", "Lamp", "Shelf", "Mug", "Notebook", "Backpack", "Monitor Arm", "Keyboard", "Headset")
# Both databases hold the same rows with the same timestamps, as a migrated copy of production data would:
# otherwise every product read would differ in created_at and bury the real differences.
CATALOGUE_CREATED_AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
_ADJECTIVES = ("Walnut", "Oak", "Steel", "Compact", "Ergonomic", "Classic", "Travel")


@dataclass(frozen=True, slots=True)
class DemoProduct:
    sku: str
    name: str
    cost_price: Decimal
    margin_rate: Decimal
    status: str
    stock: int


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    name: str
    email: str
    tier: str


@dataclass(frozen=True, slots=True)
class DemoCatalogue:
    products: tuple[DemoProduct, ...]
    customers: tuple[DemoCustomer, ...]
    created_at: datetime = CATALOGUE_CREATED_AT


def demo_catalogue(product_count: int = 60) -> DemoCatalogue:
    """A deterministic catalogue: `product_count` products across statuses and margin rates, five customers."""
    products = []
    for n in range(1, product_count + 1):
        status = _STATUSES[n % len(_STATUSES)]
        products.append(
            DemoProduct(
                sku=f"SKU-{n:04d}",
                name=f"{_ADJECTIVES[n % len(_ADJECTIVES)]} {_NOUNS[n % len(_NOUNS)]} {n}",
                cost_price=(Decimal(7 * n % 190 + 5) + Decimal(n % 100) / 100).quantize(Decimal("0.01")),
                margin_rate=_MARGINS[n % len(_MARGINS)],
                status=status,
                stock=0 if status == "out_of_stock" else 20 + (n * 13) % 80,
            )
        )
    customers = tuple(
        DemoCustomer(name=name, email=f"{name.lower()}@example.com", tier="gold" if i % 3 == 0 else "standard")
        for i, name in enumerate(("Ada", "Grace", "Linus", "Barbara", "Ken"))
    )
    return DemoCatalogue(products=tuple(products), customers=customers)
