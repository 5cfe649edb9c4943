"""HTTP/1.1 on the wire: the upstream client (`client`), the client-facing server protocol (`server`, on uvicorn) and
the check of anything the proxy itself writes into a request line or header (`wire`)."""

from proxy.dataplane.http1.client import (
    HIGH_WATER,
    LOW_WATER,
    ConnectFailed,
    Connection,
    ConnectionLost,
    Limits,
    Pool,
    Response,
)
from proxy.dataplane.http1.wire import UnsafeRequest, encode_target, safe_field_name, safe_field_value, safe_target

__all__ = [
    "HIGH_WATER",
    "LOW_WATER",
    "ConnectFailed",
    "Connection",
    "ConnectionLost",
    "Limits",
    "Pool",
    "Response",
    "UnsafeRequest",
    "encode_target",
    "safe_field_name",
    "safe_field_value",
    "safe_target",
]
