"""Customer endpoint: customers are seeded only, so there is just a read."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from legacy_app.database import Database
from legacy_app.models import Customer
from legacy_app.serializers import customer_to_dict
from legacy_app.validation import path_id

NOT_FOUND = "Customer not found"


class CustomerHandlers:
    def __init__(self, db: Database) -> None:
        self.db = db

    def routes(self) -> list[Route]:
        return [Route("/api/customers/{id:int}", self.get_customer, methods=["GET"])]

    async def get_customer(self, request: Request) -> Response:
        customer_id = path_id(request, NOT_FOUND)
        return JSONResponse(await run_in_threadpool(self._get, customer_id))

    def _get(self, customer_id: int) -> dict[str, Any]:
        with self.db.read() as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                raise HTTPException(status_code=404, detail=NOT_FOUND)
            return customer_to_dict(customer)
