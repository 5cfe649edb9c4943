"""The admin plane's JSON API: services and their primaries, promote, roll back, the audit trail, metrics, health.

Mutating endpoints need `Authorization: Bearer <admin_token>` when a token is configured; a token is mandatory when
the admin listener is not on loopback (`check_admin_exposure`). With or without a token, `proxy.control.guard`
refuses foreign Host names, cross-site origins and bodies other than JSON (or the report's forms). Errors are JSON,
shaped like V2's:
`{"error": {"code": ..., "message": ..., "details": {...}}}`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from diffs.storage import PromotionRecord
from proxy.config import Settings, Side, check_admin_exposure
from proxy.control.guard import AdminGuard, allowed_host_names
from proxy.control.promotion import CONFIG_ACTORS, ROLLBACK_TARGET, Change, PrimaryState, UnknownService
from proxy.errors import StoreError

log = logging.getLogger("shadowdiff.admin")
Body = TypeVar("Body", bound=BaseModel)

STALE_AFTER_REFRESHES = 10
"""/health and /ready turn 503 when the store has not been read for this many refresh periods."""
FAILING_GAUGE = "shadowdiff_store_failing_since_seconds"
"""Set by each writing process (`proxy.analysis.comparing`): since when its store writes fail, 0 while they succeed."""


class _ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=1000)
    actor: str | None = Field(default=None, min_length=1, max_length=200)
    """Who asks (the CLI sends user@host); defaults to the client's address."""

    @field_validator("actor")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value in CONFIG_ACTORS:
            raise ValueError(f"{value!r} is reserved for changes recorded from configuration")
        return value


class PromoteBody(_ChangeBody):
    to: Side


class RollbackBody(_ChangeBody):
    pass


def error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def promotion_json(record: PromotionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "service": record.service,
        "from": record.from_side,
        "to": record.to_side,
        "reason": record.reason,
        "actor": record.actor,
        "at": record.at.isoformat(),
    }


def _service_json(state: PrimaryState, name: str) -> dict[str, Any]:
    config = state.services[name]
    return {
        "name": name,
        "primary": state.primary(name),
        "shadow": state.shadow(name),
        "mirror": config.mirror,
        "sample_rate": config.sample_rate,
        "prefixes": list(config.prefixes),
        "methods": list(config.methods),
    }


def _change_json(state: PrimaryState, change: Change) -> dict[str, Any]:
    return {
        "service": _service_json(state, change.service),
        "changed": change.changed,
        "previous": change.previous,
        "promotion": None if change.record is None else promotion_json(change.record),
    }


class AdminApi:
    """The endpoints, bound to one state, one token and one metrics registry."""

    def __init__(self, settings: Settings, state: PrimaryState, registry: CollectorRegistry) -> None:
        self._token = settings.admin_token
        self._state = state
        self._registry = registry
        self._stale_after = STALE_AFTER_REFRESHES * settings.state_refresh_seconds
        self._unready_after = settings.unready_after_seconds

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/live", self.live, methods=["GET"]),
            Route("/ready", self.ready, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/api/services", self.services, methods=["GET"]),
            Route("/api/services/{service}", self.service, methods=["GET"]),
            Route("/api/services/{service}/promote", self.promote, methods=["POST"]),
            Route("/api/services/{service}/rollback", self.rollback, methods=["POST"]),
            Route("/api/promotions", self.promotions, methods=["GET"]),
        ]

    async def health(self, request: Request) -> Response:
        staleness = self._state.staleness
        body = {"status": "ok", "app": "shadowdiff-admin", "primaries": self._state.snapshot()}
        if staleness is None or staleness > self._stale_after:
            body.update(status="degraded", reason="the store has not been read recently")
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    async def live(self, request: Request) -> Response:
        """Liveness: this process answers. Never judges the store (a database outage must not restart replicas)."""
        return JSONResponse({"status": "alive", "app": "shadowdiff-admin"})

    def ready(self, request: Request) -> Response:
        """Readiness: primaries read recently, and no process's store writes failing for `unready_after_seconds`.

        Sync on purpose, like /metrics: with --workers N it reads every process's metric files.
        """
        reasons = []
        staleness = self._state.staleness
        if staleness is None or staleness > self._stale_after:
            reasons.append("the store has not been read recently")
        failing = self._failing_for()
        if failing is not None and failing > self._unready_after:
            reasons.append(f"store writes have failed for {failing:.0f}s (limit {self._unready_after:g}s)")
        body: dict[str, Any] = {"status": "ready" if not reasons else "unready", "app": "shadowdiff-admin"}
        body["store_failing_seconds"] = None if failing is None else round(failing, 1)
        if reasons:
            body["reasons"] = reasons
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    def _failing_for(self) -> float | None:
        """Seconds since the oldest ongoing write failure of any process; None while every process writes."""
        oldest = min(
            (
                sample.value
                for metric in self._registry.collect()
                if metric.name == FAILING_GAUGE
                for sample in metric.samples
                if sample.value > 0
            ),
            default=None,
        )
        return None if oldest is None else max(0.0, time.time() - oldest)

    def metrics(self, request: Request) -> Response:
        # Sync on purpose: in multiprocess mode collecting reads every worker's files; Starlette runs it in a thread.
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    async def services(self, request: Request) -> Response:
        return JSONResponse({"services": [_service_json(self._state, name) for name in self._state.services]})

    async def service(self, request: Request) -> Response:
        name = request.path_params["service"]
        if name not in self._state.services:
            return _unknown(UnknownService(name, tuple(self._state.services)))
        return JSONResponse(_service_json(self._state, name))

    async def promote(self, request: Request) -> Response:
        body = await self._change_request(request, PromoteBody, required=True)
        if isinstance(body, Response):
            return body
        change = await self._state.promote(
            request.path_params["service"],
            body.to,
            reason=body.reason or f"promoted to {body.to} through the admin API",
            actor=body.actor or _client(request),
        )
        return JSONResponse(_change_json(self._state, change))

    async def rollback(self, request: Request) -> Response:
        body = await self._change_request(request, RollbackBody, required=False)
        if isinstance(body, Response):
            return body
        change = await self._state.rollback(
            request.path_params["service"],
            reason=body.reason or f"rolled back to {ROLLBACK_TARGET} through the admin API",
            actor=body.actor or _client(request),
        )
        return JSONResponse(_change_json(self._state, change))

    async def promotions(self, request: Request) -> Response:
        service = request.query_params.get("service") or None
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            return _invalid([{"field": "limit", "message": f"must be an integer from 1 to 1000, not {raw_limit!r}"}])
        try:
            records = await self._state.history(service, int(raw_limit))
        except UnknownService as exc:
            return _unknown(exc)
        return JSONResponse({"promotions": [promotion_json(record) for record in records]})

    async def _change_request(self, request: Request, model: type[Body], *, required: bool) -> Body | Response:
        """Checked in this order: the token (401), the service (404), the body (422)."""
        denied = self._authorize(request)
        if denied is not None:
            return denied
        name = request.path_params["service"]
        if name not in self._state.services:
            return _unknown(UnknownService(name, tuple(self._state.services)))
        return await _parse(request, model, required=required)

    def _authorize(self, request: Request) -> Response | None:
        if self._token is None:
            return None
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(presented.strip().encode(), self._token.encode()):
            return None
        response = error(401, "UNAUTHORIZED", "missing or wrong admin token: send Authorization: Bearer <token>")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response


async def _parse(request: Request, model: type[Body], *, required: bool) -> Body | Response:
    raw = await request.body()
    if not raw.strip() and not required:
        return model()
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        return _invalid([{"field": "body", "message": "not valid JSON"}])
    if not isinstance(data, dict):
        return _invalid([{"field": "body", "message": "expected a JSON object"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
            for item in exc.errors()
        ]
        return _invalid(fields)


def _invalid(fields: list[dict[str, str]]) -> JSONResponse:
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in fields)
    return error(422, "VALIDATION_ERROR", f"invalid request: {summary}", {"errors": fields})


def _unknown(exc: UnknownService) -> JSONResponse:
    return error(404, "NOT_FOUND", str(exc), {"resource": "service", "id": exc.service})


def _client(request: Request) -> str:
    return f"api@{request.client.host}" if request.client is not None else "api"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    return error(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), str(exc.detail))


async def _store_error(request: Request, exc: Exception) -> Response:
    log.warning("admin request failed on the store: %s", exc)
    return error(503, "STORE_UNAVAILABLE", f"the store did not answer: {exc}")


def create_admin_app(
    settings: Settings,
    *,
    state: PrimaryState,
    registry: CollectorRegistry,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The admin Starlette app. `registry` is what /metrics exposes; `extra_routes` come first (web report pages).

    Everything behind it, extra routes included, sits behind `AdminGuard` (Host allow-list, CSRF rules).
    """
    check_admin_exposure(settings)
    api = AdminApi(settings, state, registry)
    guard = Middleware(
        AdminGuard, allowed_names=allowed_host_names(settings), cookie_name=f"shadowdiff_admin_{settings.admin_port}"
    )
    return Starlette(
        routes=[*extra_routes, *api.routes()],
        middleware=[guard],
        exception_handlers={HTTPException: _http_error, StoreError: _store_error},
    )
