"""Which service a request belongs to (longest path prefix) and which app is its primary right now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

from proxy.config import ServiceConfig

App = Literal["v1", "v2"]
DEFAULT_SERVICE = "default"


class PrimaryLookup(Protocol):
    """Where the current primary of each service is read from; the control plane changes it at run time."""

    def primary(self, service: str) -> App: ...


class StaticPrimaries:
    """Primaries fixed from configuration: what the proxy uses when no control plane is wired in."""

    def __init__(self, services: Mapping[str, ServiceConfig]) -> None:
        self._primaries: dict[str, App] = {name: config.primary for name, config in services.items()}

    def primary(self, service: str) -> App:
        return self._primaries.get(service, "v1")


class RouteTable:
    """Path prefix → service name. The longest matching prefix wins; a path nothing matches is "default".

    A prefix matches on a segment boundary: "/api/orders" matches "/api/orders" and "/api/orders/7",
    not "/api/ordersx".
    """

    def __init__(self, services: Mapping[str, ServiceConfig]) -> None:
        pairs = [(prefix.rstrip("/"), name) for name, config in services.items() for prefix in config.prefixes]
        # Longest first, so the first match is the most specific; "/" becomes "" and matches every path.
        self._prefixes: tuple[tuple[str, str, str], ...] = tuple(
            (prefix, prefix + "/", name) for prefix, name in sorted(pairs, key=lambda pair: -len(pair[0]))
        )

    def resolve(self, path: str) -> str:
        for prefix, with_slash, name in self._prefixes:
            if path.startswith(with_slash) or path == prefix:
                return name
        return DEFAULT_SERVICE
