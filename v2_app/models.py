"""The ORM tables: V1's schema plus nullable columns only (`v2_metadata`, `price`), so V1 can run on this database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, Numeric, String, Text, TypeDecorator, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from v2_app.pricing import price_of


class ExactDecimal(Numeric[Decimal]):
    """NUMERIC(p, s) in DDL, but exact on SQLite, which has no decimal type.

    Values are bound as decimal text and read back through `str()`, so a value reads the same whether the column
    holds REAL (a NUMERIC column) or TEXT (V1 keeps money as exact text); floats never round-trip through binary.
    """

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            native: Callable[[Any], Any] | None = super().bind_processor(dialect)  # type: ignore[no-untyped-call]
            return native

        def process(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            native_result: Callable[[Any], Any] | None = super().result_processor(dialect, coltype)  # type: ignore[no-untyped-call]
            return native_result
        exponent = Decimal(1).scaleb(-(self.scale or 0))

        def process(value: object) -> Decimal | None:
            return None if value is None else Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_UP)

        return process


def money_column() -> ExactDecimal:
    return ExactDecimal(12, 2)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored naive in UTC (the way V1 stores it), read back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(20))


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    cost_price: Mapped[Decimal] = mapped_column(money_column())
    margin_rate: Mapped[Decimal] = mapped_column(ExactDecimal(5, 1))
    price: Mapped[Decimal | None] = mapped_column(money_column(), nullable=True)
    """Derived from cost and margin; V2 computes it on read, but keeps the column filled because V1 reads it."""
    status: Mapped[str] = mapped_column(String(20))
    stock: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    v2_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


@event.listens_for(Product, "before_insert")
@event.listens_for(Product, "before_update")
def _keep_price(_mapper: Any, _connection: Any, product: Product) -> None:
    product.price = price_of(product.cost_price, product.margin_rate)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_number: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(20))
    coupon: Mapped[str | None] = mapped_column(String(20), nullable=True)
    subtotal: Mapped[Decimal] = mapped_column(money_column())
    discount: Mapped[Decimal] = mapped_column(money_column())
    shipping: Mapped[Decimal] = mapped_column(money_column())
    total: Mapped[Decimal] = mapped_column(money_column())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    v2_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    items: Mapped[list[OrderItem]] = relationship(order_by="OrderItem.id", lazy="raise")


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    sku: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(money_column())
    line_total: Mapped[Decimal] = mapped_column(money_column())


NULLABLE_ADDITIONS: dict[str, tuple[str, ...]] = {"products": ("price", "v2_metadata"), "orders": ("v2_metadata",)}
"""Columns `migrate` adds to tables an older schema created; all nullable, so V1 keeps working after a rollback."""
