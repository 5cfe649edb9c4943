"""Customer reads (customers are seeded, never written through the API)."""

from __future__ import annotations

from v2_app.database import Database
from v2_app.repository import CustomerRepository
from v2_app.serializers import JSONObject, customer_json


class CustomerService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, customer_id: int) -> JSONObject:
        async with self._db.read() as session:
            return customer_json(await CustomerRepository(session).get_or_404(customer_id))
