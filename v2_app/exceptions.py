"""V2's error hierarchy; each error knows its HTTP status, code, message and details.

AppError (500 INTERNAL_ERROR)
├── BadRequestError (400 BAD_REQUEST)
├── ValidationError (422 VALIDATION_ERROR)
├── NotFoundError (404 NOT_FOUND)
├── ConflictError (409 CONFLICT)
│   ├── AlreadyExistsError (409 ALREADY_EXISTS)
│   ├── ProductUnavailableError (409 PRODUCT_UNAVAILABLE)
│   ├── InsufficientStockError (409 INSUFFICIENT_STOCK)
│   ├── ProductInUseError (409 PRODUCT_IN_USE)
│   └── InvalidStatusTransition (409 INVALID_STATUS_TRANSITION)
└── ServiceUnavailableError (503 SERVICE_UNAVAILABLE)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    """Dotted path into the request body or query, e.g. `items.0.quantity`."""
    message: str


class AppError(Exception):
    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def body(self) -> dict[str, Any]:
        """The standard error body: `{"error": {"code", "message", "details"}}`."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequestError(AppError):
    status_code = 400
    code = "BAD_REQUEST"


class ValidationError(AppError):
    status_code = 422
    code = "VALIDATION_ERROR"

    def __init__(self, errors: list[FieldError], message: str | None = None) -> None:
        self.errors = errors
        summary = message or "; ".join(f"{e.field}: {e.message}" for e in errors) or "Invalid request"
        super().__init__(summary, {"errors": [{"field": e.field, "message": e.message} for e in errors]})


class NotFoundError(AppError):
    status_code = 404
    code = "NOT_FOUND"

    def __init__(self, resource: str, id: object) -> None:
        self.resource = resource
        super().__init__(f"{resource} {id} not found", {"resource": resource, "id": str(id)})


class ConflictError(AppError):
    status_code = 409
    code = "CONFLICT"


class AlreadyExistsError(ConflictError):
    code = "ALREADY_EXISTS"


class ProductUnavailableError(ConflictError):
    code = "PRODUCT_UNAVAILABLE"


class InsufficientStockError(ConflictError):
    code = "INSUFFICIENT_STOCK"


class ProductInUseError(ConflictError):
    code = "PRODUCT_IN_USE"


class InvalidStatusTransition(ConflictError):
    code = "INVALID_STATUS_TRANSITION"

    def __init__(self, order_id: int, action: str, current: str, target: str) -> None:
        super().__init__(
            f"Cannot {action} an order that is {current}",
            {"order_id": order_id, "from": current, "to": target},
        )


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
