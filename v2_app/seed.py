"""Load a catalogue document into V2's database: customers 1..5 and products 1..N, once.

The document is validated into `SeedCatalogue` (the same JSON that V1's seed reads: prices as decimal strings).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from v2_app.database import Database
from v2_app.models import Customer, Product
from v2_app.repository import CustomerRepository, ProductRepository
from v2_app.settings import V2Settings


class SeedCustomer(BaseModel):
    name: str
    email: str
    tier: str


class SeedProduct(BaseModel):
    sku: str
    name: str
    cost_price: Decimal
    margin_rate: Decimal
    status: str
    stock: int


class SeedCatalogue(BaseModel):
    created_at: datetime
    customers: list[SeedCustomer]
    products: list[SeedProduct]


def seed_database(database_url: str, catalogue: Mapping[str, Any]) -> int:
    """Create the tables if needed and load `catalogue`; returns the products added (0 when products already exist).

    A synchronous entry point for the CLI: it runs its own event loop, so call it outside one.
    """
    return asyncio.run(seed_database_async(V2Settings(database_url=database_url).database_url, catalogue))


async def seed_database_async(database_url: str, document: Mapping[str, Any]) -> int:
    """`seed_database` for callers already inside an event loop."""
    catalogue = SeedCatalogue.model_validate(document)
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.write() as session:
            if await ProductRepository(session).count() > 0:
                return 0
            if await CustomerRepository(session).count() == 0:
                session.add_all(
                    Customer(id=n, name=c.name, email=c.email, tier=c.tier)
                    for n, c in enumerate(catalogue.customers, start=1)
                )
            now = catalogue.created_at
            session.add_all(
                Product(
                    id=n,
                    sku=p.sku,
                    name=p.name,
                    description=None,
                    cost_price=p.cost_price,
                    margin_rate=p.margin_rate,
                    status=p.status,
                    stock=p.stock,
                    created_at=now,
                    updated_at=now,
                    v2_metadata={"written_by": "v2", "source": "seed"},
                )
                for n, p in enumerate(catalogue.products, start=1)
            )
        return len(catalogue.products)
    finally:
        await db.dispose()
