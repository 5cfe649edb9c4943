"""Order endpoints: place, read, list by customer, and the four state transitions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from v2_app.constants import OrderAction
from v2_app.customer_service import CustomerService
from v2_app.order_service import OrderService
from v2_app.routes import resource
from v2_app.schemas import OrderCreate, OrderQuery, parse_body, parse_query


def order_routes(orders: OrderService, customers: CustomerService) -> list[BaseRoute]:
    async def create_order(request: Request) -> Response:
        return JSONResponse(await orders.create(await parse_body(request, OrderCreate)), status_code=201)

    async def list_orders(request: Request) -> Response:
        return JSONResponse(await orders.list(parse_query(request, OrderQuery).customer_id))

    async def get_order(request: Request) -> Response:
        return JSONResponse(await orders.get(request.path_params["id"]))

    def transition(action: OrderAction) -> Route:
        async def endpoint(request: Request) -> Response:
            return JSONResponse(await orders.transition(request.path_params["id"], action))

        return resource(f"/api/orders/{{id:int}}/{action.value}", POST=endpoint)

    async def get_customer(request: Request) -> Response:
        return JSONResponse(await customers.get(request.path_params["id"]))

    return [
        resource("/api/orders", GET=list_orders, POST=create_order),
        resource("/api/orders/{id:int}", GET=get_order),
        *(transition(action) for action in OrderAction),
        resource("/api/customers/{id:int}", GET=get_customer),
    ]
