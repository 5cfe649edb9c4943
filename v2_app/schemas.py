"""Request models at the edge: every body and query is validated here before a service sees it."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints, field_validator
from starlette.requests import Request

from v2_app.constants import COUPONS, Limits, ProductStatus
from v2_app.exceptions import BadRequestError, FieldError, ValidationError


def _round(exponent: str, value: Decimal) -> Decimal:
    return value.quantize(Decimal(exponent), rounding=ROUND_HALF_UP)


Id = Annotated[StrictInt, Field(ge=1, le=Limits.SQL_INT_MAX)]
Quantity = Annotated[StrictInt, Field(ge=1, le=Limits.QUANTITY_MAX)]
Stock = Annotated[StrictInt, Field(ge=0, le=Limits.QUANTITY_MAX)]
# Stored as given (V1 does not trim either), but a blank string is no name.
Text = Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"\S")]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]
# Any precision is accepted and rounded half up to the stored scale, as V1 does.
CostPrice = Annotated[
    Decimal, Field(ge=0, le=Decimal("1000000000"), allow_inf_nan=False), AfterValidator(partial(_round, "0.01"))
]
MarginRate = Annotated[
    Decimal, Field(ge=0, le=Decimal("10000"), allow_inf_nan=False), AfterValidator(partial(_round, "0.1"))
]

M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProductCreate(_Body):
    sku: Sku
    name: Text
    cost_price: CostPrice
    margin_rate: MarginRate | None = None
    status: ProductStatus = ProductStatus.ACTIVE
    stock: Stock = 0
    description: str | None = None


class ProductPatch(_Body):
    """Only the fields the client sent are applied (`model_fields_set`); `null` is allowed for description only."""

    name: Text | None = None
    description: str | None = None
    cost_price: CostPrice | None = None
    margin_rate: MarginRate | None = None
    status: ProductStatus | None = None
    stock: Stock | None = None

    @field_validator("name", "cost_price", "margin_rate", "status", "stock", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class OrderLine(_Body):
    product_id: Id
    quantity: Quantity


class OrderCreate(_Body):
    customer_id: Id
    items: list[OrderLine] = Field(min_length=1, max_length=100)
    coupon: str | None = None

    @field_validator("coupon")
    @classmethod
    def _known_coupon(cls, value: str | None) -> str | None:
        if value is not None and value not in COUPONS:
            raise ValueError(f"unknown coupon {value!r}; known: {', '.join(sorted(COUPONS))}")
        return value


class GenerateRequest(_Body):
    prompt: Annotated[str, StringConstraints(max_length=100_000)]
    max_tokens: Annotated[StrictInt, Field(ge=1, le=Limits.AI_MAX_TOKENS_MAX)] = Limits.AI_MAX_TOKENS_DEFAULT


class ProductQuery(_Body):
    """Query strings arrive as text, so these fields are parsed in lax mode.

    `status` is a filter, not a write: a value no product can have matches nothing (as in V1) rather than failing.
    """

    status: str | None = None
    q: str | None = None
    limit: Annotated[int, Field(ge=1)] = Limits.PAGE_DEFAULT
    offset: Annotated[int, Field(ge=0, le=Limits.SQL_INT_MAX)] = 0

    @field_validator("limit")
    @classmethod
    def _cap(cls, value: int) -> int:
        return min(value, Limits.PAGE_MAX)


class OrderQuery(_Body):
    customer_id: Annotated[int, Field(ge=-Limits.SQL_INT_MAX, le=Limits.SQL_INT_MAX)] | None = None


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`: malformed JSON → 400 BAD_REQUEST, invalid fields → 422 VALIDATION_ERROR."""
    raw = await request.body()
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError("Invalid JSON body", {"reason": str(exc)}) from exc
    if not isinstance(data, dict):
        raise ValidationError([FieldError("body", "expected a JSON object")])
    return validate(model, data)


def parse_query(request: Request, model: type[M]) -> M:
    """The query string as `model`; an empty parameter (`?limit=`) counts as absent."""
    return validate(model, {key: value for key, value in request.query_params.items() if value.strip()})


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError([_field_error(error) for error in exc.errors()]) from exc


def _field_error(error: Any) -> FieldError:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    message = str(error["msg"]).removeprefix("Value error, ")
    return FieldError(field, message)
