"""Load a catalogue document into the legacy database: customers 1..5 and products 1..N, once.

The document is plain JSON (`created_at`, `customers`, `products` with prices as decimal strings), the same one V2's
seed reads, so both databases start as copies of the same data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from legacy_app.database import Database
from legacy_app.models import Customer, Product
from legacy_app.pricing import compute_price, to_cents, to_tenths

logger = logging.getLogger("legacy_app")


def seed_database(database_url: str, catalogue: Mapping[str, Any]) -> int:
    """Create tables if needed and load the catalogue; 0 when products already exist, else the products loaded."""
    db = Database(database_url)
    try:
        db.create_tables()
        with db.write() as session:
            if session.scalar(select(Product.id).limit(1)) is not None:
                logger.info("Seed skipped: products already exist")
                return 0
            if session.scalar(select(Customer.id).limit(1)) is None:
                for customer_id, customer in enumerate(catalogue["customers"], start=1):
                    session.add(
                        Customer(id=customer_id, name=customer["name"], email=customer["email"], tier=customer["tier"])
                    )
            now = datetime.fromisoformat(catalogue["created_at"])
            for product_id, item in enumerate(catalogue["products"], start=1):
                cost_price = to_cents(Decimal(item["cost_price"]))
                margin_rate = to_tenths(Decimal(item["margin_rate"]))
                session.add(
                    Product(
                        id=product_id,
                        sku=item["sku"],
                        name=item["name"],
                        description=None,
                        cost_price=cost_price,
                        margin_rate=margin_rate,
                        price=compute_price(cost_price, margin_rate),
                        status=item["status"],
                        stock=item["stock"],
                        created_at=now,
                        updated_at=now,
                    )
                )
        products, customers = len(catalogue["products"]), len(catalogue["customers"])
        logger.info(f"Seeded {products} products and {customers} customers")
        return products
    finally:
        db.close()
