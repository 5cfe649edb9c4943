"""The proxy ASGI app: answer from the primary, mirror to the shadow, hand every exchange to the sink."""

from __future__ import annotations

from starlette.applications import Starlette

from proxy.config import Settings
from proxy.correlation import IdCorrelator
from proxy.metrics import ProxyMetrics
from proxy.routing import PrimaryLookup
from proxy.sink import ExchangeSink


def create_proxy_app(
    settings: Settings,
    *,
    primaries: PrimaryLookup,
    sink: ExchangeSink,
    metrics: ProxyMetrics,
    correlator: IdCorrelator | None = None,
) -> Starlette:
    """The data-plane app; it opens its upstream sessions on startup and drains in-flight shadows on shutdown."""
    raise NotImplementedError("being written")
