"""The versioned report API under /api/v1/: summary, services, endpoints, fields, exchanges, noise marks, promotions.

One table of `Operation`s builds both the routes and /api/v1/openapi.json, so the description cannot drift from them.
Mutations need `Authorization: Bearer <admin_token>` when a token is configured, as the admin API's do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from diffs.report_formats import criteria_dict, endpoint_dict, field_dict, readiness_dict, report_dict, service_dict
from diffs.storage import queries
from proxy.config import Side
from proxy.control.admin import error, promotion_json
from proxy.control.promotion import ROLLBACK_TARGET, PrimaryState, UnknownService
from proxy.review.auth import token_ok
from proxy.review.context import ReportContext
from proxy.review.json_views import exchange_json, noise_mark_json, summary_json
from proxy.review.openapi import Operation, Param, openapi_document
from proxy.review.params import BadRequest, criteria_from, cursor_from, exchange_filter, int_param, window_from

PREFIX = "/api/v1"
Handler = Callable[[Request], Awaitable[Response]]


class NoiseMarkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(min_length=1, max_length=512)
    path: str = Field(min_length=1, max_length=1024)
    """A path template or pattern: "root.created_at", "**.updated_at", "header.date"."""
    note: str = Field(default="", max_length=1000)


class ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Side | None = None
    """Promote only; defaults to the current shadow."""
    reason: str = Field(default="", max_length=1000)
    actor: str | None = Field(default=None, min_length=1, max_length=200)


async def json_body(request: Request, model: type[BaseModel]) -> Any:
    raw = await request.body()
    try:
        data = await request.json() if raw.strip() else {}
    except ValueError:
        raise BadRequest("body", "not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body", "expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        item = exc.errors()[0]
        raise BadRequest(".".join(str(p) for p in item["loc"]) or "body", item["msg"]) from None


SINCE = Param(
    "since",
    "Window start: a duration back from now (15m, 1h, 7d), an ISO 8601 time, or all (default: each service since "
    "its last promotion).",
)
UNTIL = Param("until", "Window end: a duration back from now or an ISO 8601 time.")
RUN = Param("run", "Which traffic: a replay run's id, or live for live traffic only (default: all).")
SERVICE_Q = Param("service", "Only this service.")
SERVICE_P = Param("service", "Service name.", where="path", required=True)
CRITERIA = (
    Param("min_samples", "Readiness: fewest compared exchanges.", type="integer"),
    Param("max_diff_rate", "Readiness: most exchanges with a finding, as a fraction.", type="number"),
    Param("max_error_rate", "Readiness: most shadow errors, as a fraction.", type="number"),
    Param("max_p99_ratio", "Readiness: most shadow p99 / primary p99.", type="number"),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/summary", "summary", "The whole report: services, endpoints, readiness.",
              (SINCE, UNTIL, RUN, SERVICE_Q, *CRITERIA), response="Report", errors=(404, 422)),
    Operation("GET", "/readiness", "readiness", "Readiness verdict per service, with the failing criteria.",
              (SINCE, UNTIL, RUN, SERVICE_Q, *CRITERIA), response="ReadinessReport", errors=(404, 422)),
    Operation("GET", "/services", "services", "Each service: primary, traffic, rates, latency, readiness.",
              (SINCE, UNTIL, RUN), response="ServiceList", errors=(422,)),
    Operation("GET", "/services/{service}", "service", "One service with its endpoints.",
              (SERVICE_P, SINCE, UNTIL, RUN), response="Service", errors=(404, 422)),
    Operation("GET", "/services/{service}/endpoints", "endpoints", "A service's endpoints with counts and latency.",
              (SERVICE_P, SINCE, UNTIL, RUN), response="EndpointList", errors=(404, 422)),
    Operation("GET", "/fields", "fields", "The fields that differed on one endpoint, with raw/noise counts.",
              (Param("endpoint", "Endpoint template, e.g. GET /api/orders/{id}.", required=True), SINCE, UNTIL, RUN),
              response="FieldList", errors=(404, 422)),
    Operation("GET", "/exchanges", "exchanges", "Exchanges newest first, filtered, keyset-paginated.",
              (SERVICE_Q, Param("endpoint", "Endpoint template."),
               Param("outcome", "match, diff, shadow_error, skipped or dropped."),
               Param("path", "Only exchanges with a diff at this field (needs endpoint)."), SINCE, UNTIL, RUN,
               Param("before", "The next_cursor of the previous page."),
               Param("limit", "Page size, 1 to 500 (default 50).", type="integer")),
              response="ExchangePage", errors=(422,)),
    Operation("GET", "/exchanges/{exchange_id:path}", "exchange", "One exchange: request, every side, field diffs.",
              (Param("exchange_id", "Exchange id (the X-Request-ID).", where="path", required=True),),
              response="Exchange", errors=(404,)),
    Operation("GET", "/noise-marks", "noise_marks", "Reviewers' noise marks.", response="NoiseMarkList"),
    Operation("POST", "/noise-marks", "add_noise_mark", "Mark a field (or pattern) of an endpoint as noise.",
              body="NoiseMarkInput", response="NoiseMark", mutating=True, errors=(401, 422)),
    Operation("DELETE", "/noise-marks/{mark_id:int}", "delete_noise_mark", "Remove a noise mark.",
              (Param("mark_id", "Noise mark id.", where="path", type="integer", required=True),),
              response="Deleted", mutating=True, errors=(401, 404)),
    Operation("GET", "/promotions", "promotions", "The promotion audit trail, newest first.",
              (SERVICE_Q, Param("limit", "How many, 1 to 1000 (default 100).", type="integer")),
              response="PromotionList", errors=(404, 422)),
    Operation("POST", "/services/{service}/promote", "promote", "Make the shadow (or `to`) the service's primary.",
              (SERVICE_P,), body="ChangeInput", response="Change", mutating=True, errors=(401, 404, 422)),
    Operation("POST", "/services/{service}/rollback", "rollback",
              "Make V1 the service's primary again; a no-op (changed: false) when it already is.",
              (SERVICE_P,), body="ChangeInput", response="Change", mutating=True, errors=(401, 404, 422)),
    Operation("GET", "/openapi.json", "openapi", "This description.", response="Object"),
)  # fmt: skip


class ApiV1:
    """The handlers, bound to one `ReportContext`."""

    def __init__(self, ctx: ReportContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        return [Route(PREFIX + op.path, self._wrap(op), methods=[op.method]) for op in OPERATIONS]

    def _wrap(self, op: Operation) -> Handler:
        handler: Handler = getattr(self, op.handler)

        async def endpoint(request: Request) -> Response:
            if op.mutating and not token_ok(self.ctx.settings.admin_token, request):
                response = error(
                    401, "UNAUTHORIZED", "missing or wrong admin token: send Authorization: Bearer <token>"
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            try:
                return await handler(request)
            except BadRequest as exc:
                fields = [{"field": exc.field, "message": exc.message}]
                return error(422, "VALIDATION_ERROR", f"invalid request: {exc}", {"errors": fields})
            except UnknownService as exc:
                return error(404, "NOT_FOUND", str(exc), {"resource": "service", "id": exc.service})

        endpoint.__name__ = op.handler
        endpoint.__doc__ = op.summary
        return endpoint

    def _service(self, request: Request) -> str:
        name: str = request.path_params["service"]
        if name not in self.ctx.state.services:
            raise UnknownService(name, tuple(self.ctx.state.services))
        return name

    def _service_param(self, request: Request) -> str | None:
        name = request.query_params.get("service") or None
        if name is not None and name not in self.ctx.state.services:
            raise UnknownService(name, tuple(self.ctx.state.services))
        return name

    # -- reports ------------------------------------------------------------------------------------------------------

    async def summary(self, request: Request) -> Response:
        params = request.query_params
        criteria = criteria_from(params, self.ctx.criteria)
        report = await self.ctx.report(window_from(params), self._service_param(request), criteria)
        return JSONResponse(report_dict(report, fields=False))

    async def readiness(self, request: Request) -> Response:
        params = request.query_params
        criteria = criteria_from(params, self.ctx.criteria)
        report = await self.ctx.report(window_from(params), self._service_param(request), criteria)
        services = [
            {"service": s.service, "primary": s.primary, "samples": s.counts.samples, **readiness_dict(s.readiness)}
            for s in report.services
        ]
        return JSONResponse({"ready": report.ready, "criteria": criteria_dict(report.criteria), "services": services})

    async def services(self, request: Request) -> Response:
        report = await self.ctx.report(window_from(request.query_params))
        return JSONResponse({"services": [service_dict(s, endpoints=False) for s in report.services]})

    async def service(self, request: Request) -> Response:
        name = self._service(request)
        report = await self.ctx.report(window_from(request.query_params), name)
        summary = report.service(name)
        assert summary is not None  # configured services are always in the report
        return JSONResponse(service_dict(summary, fields=False))

    async def endpoints(self, request: Request) -> Response:
        name = self._service(request)
        report = await self.ctx.report(window_from(request.query_params), name)
        summary = report.service(name)
        assert summary is not None
        return JSONResponse({"service": name, "endpoints": [endpoint_dict(e, fields=False) for e in summary.endpoints]})

    async def fields(self, request: Request) -> Response:
        endpoint = request.query_params.get("endpoint") or ""
        if not endpoint:
            raise BadRequest("endpoint", "required, e.g. 'GET /api/orders/{id}'")
        service = await queries.service_of(self.ctx.store, endpoint)
        if service is None:
            return error(404, "NOT_FOUND", f"no exchanges for endpoint {endpoint!r}", {"resource": "endpoint"})
        report = await self.ctx.report(window_from(request.query_params), service)
        summary = report.service(service)
        found = next((e for e in summary.endpoints if e.endpoint == endpoint), None) if summary else None
        fields = [] if found is None else [field_dict(f) for f in found.fields]
        return JSONResponse({"service": service, "endpoint": endpoint, "fields": fields})

    # -- exchanges ----------------------------------------------------------------------------------------------------

    async def exchanges(self, request: Request) -> Response:
        params = request.query_params
        flt = exchange_filter(params, self.ctx.services)
        limit = int_param(params, "limit", 50, 1, queries.MAX_PAGE)
        page = await queries.list_exchanges(self.ctx.store, flt, before=cursor_from(params), limit=limit)
        return JSONResponse(
            {
                "items": [summary_json(s) for s in page.items],
                "next_cursor": None if page.next_cursor is None else page.next_cursor.encode(),
            }
        )

    async def exchange(self, request: Request) -> Response:
        exchange_id = request.path_params["exchange_id"]
        found = await self.ctx.store.get_exchange(exchange_id)
        if found is None:
            return error(404, "NOT_FOUND", f"no exchange {exchange_id!r}", {"resource": "exchange", "id": exchange_id})
        return JSONResponse(exchange_json(found))

    # -- noise marks --------------------------------------------------------------------------------------------------

    async def noise_marks(self, request: Request) -> Response:
        marks = await self.ctx.store.list_noise_marks()
        return JSONResponse({"noise_marks": [noise_mark_json(m) for m in marks]})

    async def add_noise_mark(self, request: Request) -> Response:
        body: NoiseMarkBody = await json_body(request, NoiseMarkBody)
        mark = await self.ctx.store.add_noise_mark(body.endpoint, body.path, body.note)
        return JSONResponse(noise_mark_json(mark), status_code=201)

    async def delete_noise_mark(self, request: Request) -> Response:
        mark_id: int = request.path_params["mark_id"]
        if not await self.ctx.store.delete_noise_mark(mark_id):
            return error(404, "NOT_FOUND", f"no noise mark {mark_id}", {"resource": "noise_mark", "id": str(mark_id)})
        return JSONResponse({"deleted": mark_id})

    # -- promotions ---------------------------------------------------------------------------------------------------

    async def promotions(self, request: Request) -> Response:
        limit = int_param(request.query_params, "limit", 100, 1, 1000)
        records = await self.ctx.state.history(self._service_param(request), limit)
        return JSONResponse({"promotions": [promotion_json(r) for r in records]})

    async def promote(self, request: Request) -> Response:
        name = self._service(request)
        body: ChangeBody = await json_body(request, ChangeBody)
        to = body.to or self.ctx.state.shadow(name)
        change = await self.ctx.state.promote(
            name, to, reason=body.reason or f"promoted to {to} through /api/v1", actor=body.actor or _client(request)
        )
        return JSONResponse(change_json(self.ctx.state, change.service, change.previous, change.record))

    async def rollback(self, request: Request) -> Response:
        name = self._service(request)
        body: ChangeBody = await json_body(request, ChangeBody)
        change = await self.ctx.state.rollback(
            name,
            reason=body.reason or f"rolled back to {ROLLBACK_TARGET} through /api/v1",
            actor=body.actor or _client(request),
        )
        return JSONResponse(change_json(self.ctx.state, change.service, change.previous, change.record))

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(OPERATIONS, PREFIX))


def change_json(state: PrimaryState, service: str, previous: str, record: Any) -> dict[str, Any]:
    return {
        "service": service,
        "primary": state.primary(service),
        "previous": previous,
        "changed": record is not None,
        "promotion": None if record is None else promotion_json(record),
    }


def _client(request: Request) -> str:
    return f"api@{request.client.host}" if request.client is not None else "api"


def routes(ctx: ReportContext) -> list[BaseRoute]:
    """The /api/v1 routes, for `create_admin_app(extra_routes=...)`."""
    return ApiV1(ctx).routes()
