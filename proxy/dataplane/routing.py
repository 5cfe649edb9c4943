"""Which service a request belongs to (longest path prefix) and which app is its primary right now."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from proxy.config import ServiceConfig
from proxy.dataplane.correlation import ServiceIds
from proxy.dataplane.sampling import Sampler

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


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One service's mirroring policy, precomputed from its config so the hot path only reads attributes."""

    name: str
    mirror: bool
    methods: frozenset[str]
    sampler: Sampler
    sample_key_header: bytes | None
    """Lower-cased, as ASGI delivers header names."""
    primary_timeout: float
    shadow_timeout: float
    ids: ServiceIds
    """How the service's requests name resources: for id correlation and causal order."""

    @classmethod
    def from_config(cls, name: str, config: ServiceConfig) -> ServicePlan:
        key = config.sample_key_header
        return cls(
            name=name,
            mirror=config.mirror,
            methods=frozenset(config.methods),
            sampler=Sampler(config.sample_rate),
            sample_key_header=key.lower().encode("latin-1") if key else None,
            primary_timeout=config.primary_timeout,
            shadow_timeout=config.shadow_timeout,
            ids=ServiceIds.of(config.naming(), config.endpoint_patterns),
        )


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
        self._plans = {name: ServicePlan.from_config(name, config) for name, config in services.items()}
        if DEFAULT_SERVICE not in self._plans:
            self._plans[DEFAULT_SERVICE] = ServicePlan.from_config(DEFAULT_SERVICE, ServiceConfig(prefixes=("/",)))

    def resolve(self, path: str) -> str:
        """The service of a (decoded) path, matched with its dot-segments resolved and repeated slashes merged, as
        nginx matches locations: `/api/products/../orders/1` is an orders request, whatever the raw path says."""
        if "/." in path or "//" in path:
            path = normalized_path(path)
        for prefix, with_slash, name in self._prefixes:
            if path.startswith(with_slash) or path == prefix:
                return name
        return DEFAULT_SERVICE

    def plan(self, service: str) -> ServicePlan:
        return self._plans[service]


def normalized_path(path: str) -> str:
    """`path` with "." and ".." segments resolved (RFC 3986 §5.2.4) and empty segments dropped; never above "/"."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normal = "/" + "/".join(segments)
    if segments and (path.endswith("/") or path.endswith("/.") or path.endswith("/..")):
        normal += "/"
    return normal
