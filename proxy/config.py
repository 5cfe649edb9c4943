"""The one settings object: TOML file, then `SHADOWDIFF_*` environment, then explicit values (CLI flags, tests).

Bad values fail at start-up with a message naming the key and the value (`ConfigError`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from diffs.readiness import Criteria
from diffs.resources import IdNaming
from diffs.rules import CompareRules, EndpointRules, NoiseConfig
from proxy.errors import ConfigError

Side = Literal["v1", "v2"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# The migration guide's feature flags: which service each USE_V2_<NAME>_SERVICE variable promotes.
GUIDE_FLAGS = {"orders": "USE_V2_ORDER_SERVICE", "products": "USE_V2_PRODUCT_SERVICE", "ai": "USE_V2_AI_SERVICE"}


class ServiceConfig(BaseModel):
    """One service: the unit that is routed, sampled, compared and promoted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefixes: tuple[str, ...] = ()
    primary: Side = "v1"
    mirror: bool = True
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    sample_key_header: str | None = None
    """When set, sampling is consistent per value of this header (e.g. a user id) instead of random."""
    methods: tuple[str, ...] = HTTP_METHODS
    primary_timeout: float = Field(default=30.0, gt=0)
    shadow_timeout: float = Field(default=5.0, gt=0)
    id_key: str = "id"
    """A resource's own id field: in its create's response (paired primary → shadow) and in requests about it."""
    id_fields: tuple[str, ...] = ("{singular}_id", "{singular}Id")
    """Fields that refer to a resource by its singular name (`post_id` → `/posts`), in queries and JSON bodies."""
    id_references: dict[str, str] = Field(default_factory=dict)
    """Reference fields the patterns do not name: field → collection (`{"author": "/users"}`)."""
    rules: CompareRules = CompareRules()
    endpoints: tuple[EndpointRules, ...] = ()
    endpoint_patterns: tuple[str, ...] = ()
    """Extra path templates, e.g. "/api/orders/{order_id}/items/{item_id}"."""

    @field_validator("methods")
    @classmethod
    def _upper_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in value)

    @field_validator("id_fields")
    @classmethod
    def _name_a_resource(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if pattern.count("{singular}") != 1 or any(c in pattern.replace("{singular}", "") for c in "{}*?["):
                raise ValueError(
                    f"{pattern!r} does not name a resource: use {{singular}} once, e.g. '{{singular}}_id' "
                    "(a field with another name goes in id_references)"
                )
        return value

    @field_validator("id_references")
    @classmethod
    def _collections(cls, value: dict[str, str]) -> dict[str, str]:
        for name, collection in value.items():
            if not collection.startswith("/"):
                raise ValueError(f"{name!r} refers to {collection!r}, which is not a collection path such as '/users'")
        return value

    def naming(self) -> IdNaming:
        """How this service's fields name resources (`diffs.resources.IdNaming`)."""
        return IdNaming(self.id_key, self.id_fields, dict(self.id_references))


def default_services() -> dict[str, ServiceConfig]:
    return {
        "orders": ServiceConfig(prefixes=("/api/orders",)),
        "products": ServiceConfig(prefixes=("/api/products",)),
        "ai": ServiceConfig(prefixes=("/api/ai",)),
        "default": ServiceConfig(prefixes=("/",)),
    }


class CaptureConfig(BaseModel):
    """Recording client requests to files for `shadowdiff replay`; off until `dir` is set (`--capture DIR`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: str | None = None
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Fraction of requests recorded, independent of the services' mirroring sample rates."""
    rotate_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    """A file is closed and a new one started past this many (compressed) bytes."""
    max_bytes: int = Field(default=1024 * 1024 * 1024, ge=4096)
    """All capture files together; the oldest closed files are deleted to stay under it."""
    keep_headers: tuple[str, ...] = ()
    """Secret headers written in clear (e.g. "authorization", "cookie") so a replay can send them; see the README."""
    queue_size: int = Field(default=10_000, ge=1)
    """Requests waiting for the writer thread; past it (or 32 MiB of bodies) requests are not recorded (counted)."""
    session_header: str | None = None
    """Requests with the same value of this header are one session (replayed in order); e.g. "x-session-id"."""
    session_cookie: str | None = None
    """Or the same value of this cookie; used when `session_header` is not set or absent from a request."""

    @field_validator("keep_headers")
    @classmethod
    def _lower_headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in value)

    @model_validator(mode="after")
    def _rotation_fits(self) -> CaptureConfig:
        if self.rotate_bytes > self.max_bytes:
            raise ValueError(f"capture.rotate_bytes ({self.rotate_bytes}) is larger than capture.max_bytes")
        return self


class Settings(BaseSettings):
    """Everything shadowdiff needs, built once at start-up and passed in explicitly."""

    model_config = SettingsConfigDict(env_prefix="SHADOWDIFF_", extra="forbid", frozen=True, env_nested_delimiter="__")

    v1_url: str = "http://127.0.0.1:8001"
    v2_url: str = "http://127.0.0.1:8002"
    secondary_url: str | None = None
    """A second instance of the primary's app, used to measure noise."""
    secondary_app: Side = "v1"
    """Which app the secondary runs. It gets every mirrored request whatever the primary, so its data stays in step;
    noise is what differs between it and the side running the same app (the primary, or the shadow after a
    promotion), never V1-vs-V2."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=8900, ge=0, le=65535)
    admin_token: str | None = None
    admin_allowed_hosts: tuple[str, ...] = ()
    """Host names the admin plane answers to besides IP addresses, loopback names and `admin_host` (DNS rebinding
    guard); e.g. the name of a load balancer in front of it. "*" allows any."""
    database_url: str = "sqlite+aiosqlite:///./shadowdiff.db"
    database_pool_size: int = Field(default=3, ge=1, le=100)
    """Connections each process keeps open to the store (docs/scaling.md: replicas x processes x pool)."""
    database_max_overflow: int = Field(default=2, ge=0, le=100)
    """More connections a process may open under load, closed when idle."""
    database_pool_timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for a free connection before the operation fails (and is retried or counted)."""
    database_pgbouncer: bool = False
    """PostgreSQL behind PgBouncer in transaction mode: no prepared-statement cache, and polling instead of LISTEN."""
    workers: int = Field(default=1, ge=1, le=64)
    """Proxy worker processes sharing the proxy port; the admin plane runs once, in the supervisor."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = False
    """One log line per request, proxy and admin alike (uvicorn has one access logger); costs CPU on the hot path."""

    host_header: Literal["preserve", "rewrite"] = "rewrite"
    max_request_body: int = Field(default=1_048_576, ge=0)
    """Request bodies above this go to the primary only (counted as skipped)."""
    max_response_body: int = Field(default=1_048_576, ge=0)
    """Response bodies above this are streamed to the client and not compared."""
    max_inflight_shadow: int = Field(default=256, ge=1)
    upstream_connections: int = Field(default=0, ge=0)
    """Connection pool size per upstream and worker; 0 = no limit."""
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    """How long an idle upstream connection is kept for reuse: below the upstream's own idle timeout (uvicorn's is
    5 s), so a request never crosses the upstream's close. An upstream's `Keep-Alive: timeout=N` shortens it."""
    upstream_ca_bundle: str | None = None
    """PEM file of the CAs that sign https:// upstreams' certificates (default: the system's, or SSL_CERT_FILE)."""
    upstream_client_cert: str | None = None
    """PEM certificate (and key, unless `upstream_client_key` is set) shown to https:// upstreams that ask for one."""
    upstream_client_key: str | None = None
    upstream_tls_verify: bool = True
    """Off: https:// upstreams' certificates are not checked (a test bed with self-signed certificates only)."""
    header_timeout_seconds: float = Field(default=60.0, gt=0)
    """A client must send a whole request head within this (nginx client_header_timeout): slow heads get 408."""
    client_keepalive_seconds: float = Field(default=75.0, gt=0)
    """How long an idle client connection stays open between requests (nginx keepalive_timeout)."""
    max_header_line: int = Field(default=8 * 1024, ge=256)
    """Longest request line (414 beyond) and header line (431 beyond)."""
    max_header_size: int = Field(default=32 * 1024, ge=1024)
    """Largest request head (431 beyond); also the largest upstream response head (an invalid response beyond)."""
    max_header_count: int = Field(default=100, ge=1)
    """Most header fields in a request head (431 beyond) or an upstream response head (invalid beyond)."""
    max_interim_responses: int = Field(default=10, ge=0)
    """Most 1xx responses an upstream may send before its final one (an invalid response beyond)."""
    trust_forwarded: bool = False
    """Off (at the edge): X-Forwarded-For/-Proto/-Host and Forwarded are the proxy's own, the client's are dropped.
    On (behind a trusted proxy): the proxy appends to the client's X-Forwarded-For and Forwarded and keeps its
    X-Forwarded-Proto/-Host."""
    queue_size: int = Field(default=2_000, ge=1)
    """Exchanges handed to the analysis process and not yet stored, per worker; beyond it (or `queue_bytes` of
    bodies) they are dropped and counted."""
    analysis_niceness: int = Field(default=5, ge=0, le=19)
    """How far below its worker each analysis process runs (Unix niceness). When the cores are saturated, serving
    gets them first and the backlog ends in counted drops, never in a slower client: 0 shares the cores equally
    (fewest drops, most contention), 19 takes only idle time. 5 drops ~6% of exchanges where 10 dropped ~80%, at
    ~20% less peak throughput (bench/RESULTS.md)."""
    queue_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    """Bodies held by exchanges handed to the analysis process and not yet stored, per worker (at least
    4 × max_response_body); beyond it exchanges are dropped and counted."""
    drain_seconds: float = Field(default=5.0, ge=0)
    correlation_capacity: int = Field(default=100_000, ge=1)
    """Id pairs remembered per resource and direction (an LRU)."""
    causal_wait_seconds: float = Field(default=2.0, ge=0)
    """How long a mirrored request waits, in all, for earlier mirrored writes to the same resource (and a read of a
    new record for its create); past it, it is sent anyway and counted (shadowdiff_causal_waits_total)."""
    state_refresh_seconds: float = Field(default=1.0, gt=0)
    """How often each worker re-reads promotions from the store (replicas agree within this)."""
    redact_fields: tuple[str, ...] = ("password", "card_number", "token", "secret", "api_key")
    services: dict[str, ServiceConfig] = Field(default_factory=default_services)
    noise: NoiseConfig = NoiseConfig()
    readiness: Criteria = Criteria()
    """When a service's shadow is ready to be promoted: the web overview and `shadowdiff check` both judge by it."""
    learn_templates_after: int = Field(default=20, ge=2)
    """Distinct values (mostly not single words, e.g. slugs) after which a path position is a parameter."""
    max_endpoints: int = Field(default=500, ge=1)
    """Distinct endpoints per service; requests past it are counted under `METHOD (other endpoints)`."""
    examples_per_field: int = Field(default=20, ge=1)
    """Exchanges stored per (endpoint, differing field) and hour, with headers and bodies, for drill-down."""
    retention_max_exchanges: int = Field(default=1_000_000, ge=1000)
    """Stored exchanges (examples) kept, newest first; reports read rollups, which count every exchange."""
    retention_max_age: timedelta | None = None
    """Stored exchanges older than this are deleted ("7d", "12h", seconds); None: only the count bounds them."""
    retention_prune_interval: float = Field(default=60.0, gt=0)
    """Seconds between pruning passes (one at a time across replicas on PostgreSQL)."""
    retention_rollup_max_age: timedelta = timedelta(days=90)
    """How far back reports reach: rollup rows older than this are deleted."""
    retention_max_correlations: int = Field(default=1_000_000, ge=1)
    """Id pairs kept, newest first."""
    retention_correlation_max_age: timedelta | None = timedelta(days=30)
    retention_max_promotions: int = Field(default=1_000, ge=1)
    """Promotion audit rows kept per service, newest first."""
    unready_after_seconds: float = Field(default=30.0, gt=0)
    """/ready answers 503 once store writes have failed for this long (liveness, /live, stays 200)."""
    capture: CaptureConfig = CaptureConfig()

    @field_validator("services", mode="before")
    @classmethod
    def _over_defaults(cls, services: Any) -> Any:
        # Config text (TOML, SHADOWDIFF_SERVICES__*) adjusts the built-in services rather than replacing them:
        # `[services.orders] primary = "v2"` keeps orders' prefixes, and products, ai and default stay routed.
        if not isinstance(services, Mapping) or not all(isinstance(v, Mapping) for v in services.values()):
            return services
        defaults = default_services()
        merged: dict[str, Any] = {}
        for name in [*defaults, *(n for n in services if n not in defaults)]:
            service = services.get(name)
            if service is None:
                merged[name] = defaults[name]
            elif name in defaults and "prefixes" not in service:
                merged[name] = {"prefixes": defaults[name].prefixes, **service}
            else:
                merged[name] = service
        return merged

    @field_validator("services")
    @classmethod
    def _needs_default(cls, services: dict[str, ServiceConfig]) -> dict[str, ServiceConfig]:
        if "default" not in services:
            services = {**services, "default": ServiceConfig(prefixes=("/",))}
        return services

    @field_validator("v1_url", "v2_url", "secondary_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("Not an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None

    @field_validator("retention_max_age", "retention_rollup_max_age", "retention_correlation_max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        # "90s", "15m", "12h", "7d", "2w" as the CLI's --since takes them; numbers are seconds.
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match:
                return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
            if value.strip().lower() in ("", "none", "off"):
                return None
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        # `--admin-token ${SHADOWDIFF_ADMIN_TOKEN}` with the variable unset must not mean "the empty token".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        if self.port != 0 and self.port == self.admin_port:
            raise ValueError(f"port and admin_port are both {self.port}; the proxy and the admin plane need their own")
        return self


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost": addresses no other machine can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_admin_exposure(settings: Settings) -> None:
    """Refuse an admin plane reachable from other machines without a token: anyone could promote or roll back."""
    if settings.admin_token is None and not is_loopback(settings.admin_host):
        raise ConfigError(
            f"Config 'admin_host' has value {settings.admin_host!r}, which is not loopback, and 'admin_token' is "
            "not set. Set SHADOWDIFF_ADMIN_TOKEN (or --admin-token) or keep the admin plane on 127.0.0.1."
        )


def _flag(environ: Mapping[str, str], name: str) -> bool | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"Environment variable {name} has value {raw!r}. Not a valid boolean (true/false).")


def guide_flag(name: str, environ: Mapping[str, str]) -> tuple[str, bool] | None:
    """The USE_V2_* variable that decides service `name` and its value; the per-service flag wins over the global."""
    specific = GUIDE_FLAGS.get(name, f"USE_V2_{name.upper()}_SERVICE")
    for variable in (specific, "USE_V2_SERVICES"):
        value = _flag(environ, variable)
        if value is not None:
            return variable, value
    return None


def apply_guide_flags(services: dict[str, ServiceConfig], environ: Mapping[str, str]) -> dict[str, ServiceConfig]:
    """USE_V2_SERVICES promotes every service; USE_V2_<NAME>_SERVICE one, and wins over it."""
    result = {}
    for name, service in services.items():
        decided = guide_flag(name, environ)
        result[name] = (
            service if decided is None else service.model_copy(update={"primary": "v2" if decided[1] else "v1"})
        )
    return result


def configured_primary(service: ServiceConfig) -> Side | None:
    """The primary that config set explicitly (file, SHADOWDIFF_SERVICES__*, or a USE_V2_* flag); None if defaulted."""
    return service.primary if "primary" in service.model_fields_set else None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a rule across several keys names them itself
            parts.append(f"Config error: {message}.")
            continue
        key = ".".join(str(p) for p in item["loc"])
        parts.append(f"Config '{key}' has value {item.get('input')!r}. {message}.")
    return " ".join(parts)


def load_settings(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings: TOML file < SHADOWDIFF_* env < overrides (CLI flags); then the guide's USE_V2_* flags."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"Config file {str(path)!r} does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {exc}.") from exc
        data = {k.replace("-", "_"): v for k, v in data.items()}
    # Env wins over the file: drop file keys that the environment sets, so pydantic-settings reads them from env.
    env_keys = {k[len("SHADOWDIFF_") :].lower().split("__")[0] for k in environ if k.startswith("SHADOWDIFF_")}
    data = {k: v for k, v in data.items() if k not in env_keys}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        if environ is os.environ:
            settings = Settings(**data)
        else:
            with _patched_environ(environ):
                settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    return settings.model_copy(update={"services": apply_guide_flags(settings.services, environ)})


class _patched_environ:
    """Let tests build settings from a mapping instead of the process environment."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        self._saved: dict[str, str] = {}

    def __enter__(self) -> None:
        self._saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self._environ)

    def __exit__(self, *exc: object) -> None:
        os.environ.clear()
        os.environ.update(self._saved)


def configure_logging(settings: Settings) -> None:
    """Once per process (server, worker, analysis): stdlib logging and structlog both at `settings.log_level`."""
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("shadowdiff").setLevel(level)
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))  # "Running upgrade ..." at every first start
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))
