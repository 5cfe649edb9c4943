"""Async repositories over one session: the only place that builds queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from v2_app.constants import Limits
from v2_app.exceptions import NotFoundError
from v2_app.models import Base, Customer, Order, OrderItem, Product

T = TypeVar("T", bound=Base)


class AsyncRepository(Generic[T]):
    """Generic CRUD for one model; subclasses add the queries their service needs."""

    model: type[T]
    resource: str

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id: int) -> T | None:
        if not 0 < id <= Limits.SQL_INT_MAX:
            return None
        return await self.session.get(self.model, id, options=self._load_options())

    async def get_or_404(self, id: int) -> T:
        row = await self.get(id)
        if row is None:
            raise NotFoundError(self.resource, id)
        return row

    async def list(self, *where: ColumnElement[bool], limit: int | None = None, offset: int = 0) -> Sequence[T]:
        query = self._select().where(*where).order_by(self.model.__table__.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return (await self.session.scalars(query)).all()

    async def count(self, *where: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(self.model).where(*where)
        return int(await self.session.scalar(query) or 0)

    async def add(self, row: T) -> T:
        self.session.add(row)
        await self.session.flush()
        return row

    async def delete(self, row: T) -> None:
        await self.session.delete(row)
        await self.session.flush()

    def _select(self) -> Select[T]:
        return select(self.model).options(*self._load_options())

    def _load_options(self) -> tuple[Any, ...]:
        return ()


class CustomerRepository(AsyncRepository[Customer]):
    model = Customer
    resource = "Customer"


class ProductRepository(AsyncRepository[Product]):
    model = Product
    resource = "Product"

    async def find_by_sku(self, sku: str) -> Product | None:
        return await self.session.scalar(select(Product).where(Product.sku == sku))

    @staticmethod
    def filters(status: str | None, q: str | None) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if status is not None:
            where.append(Product.status == status)
        if q:
            needle = q.lower()
            where.append(
                or_(
                    func.lower(Product.name).contains(needle, autoescape=True),
                    func.lower(Product.sku).contains(needle, autoescape=True),
                )
            )
        return where

    async def take_stock(self, product_id: int, quantity: int) -> bool:
        """Decrement stock only if enough is left, in one statement; False when it is not."""
        result = await self.session.execute(
            update(Product)
            .where(Product.id == product_id, Product.stock >= quantity)
            .values(stock=Product.stock - quantity)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def return_stock(self, product_id: int, quantity: int) -> None:
        await self.session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock=Product.stock + quantity)
            .execution_options(synchronize_session=False)
        )

    async def is_ordered(self, product_id: int) -> bool:
        query = select(OrderItem.id).where(OrderItem.product_id == product_id).limit(1)
        return await self.session.scalar(query) is not None


class OrderRepository(AsyncRepository[Order]):
    model = Order
    resource = "Order"

    def _load_options(self) -> tuple[Any, ...]:
        return (selectinload(Order.items),)

    async def for_customer(self, customer_id: int | None) -> Sequence[Order]:
        if customer_id is None:
            return await self.list()
        return await self.list(Order.customer_id == customer_id)
