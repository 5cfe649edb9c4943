"""The web report on the admin listener: overview, endpoints, exchanges, latency charts, noise marks, promotions.

Server-rendered Jinja2 pages over the same `ReportContext` the /api/v1 routes use. Mutations are plain form POSTs that
carry the session's CSRF token (checked, with the origin, by `proxy.control.guard`) and, when an admin token is
configured, the token.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from diffs import page_views, report_formats
from diffs.exchange import Outcome
from diffs.noise import Marks
from diffs.readiness import Criteria
from diffs.report import FieldSummary, Report, Verdict, Window
from diffs.storage import Store, StoredExchange, StoredSide, queries
from proxy.config import Settings
from proxy.control.guard import CSRF_FIELD, csrf_token
from proxy.control.promotion import ROLLBACK_TARGET, PrimaryState, UnknownService
from proxy.review import api_v1
from proxy.review.auth import token_ok
from proxy.review.context import ReportContext
from proxy.review.params import BadRequest, criteria_from, cursor_from, exchange_filter, int_param, window_from

WINDOWS = (
    ("", "since the last promotion"),
    ("all", "all time"),
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "7 days"),
)
Handler = Callable[[Request], Awaitable[Response]]


def _qs(**params: Any) -> str:
    """A query string from the non-empty parameters ("" when none)."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


@functools.cache
def environment() -> jinja2.Environment:
    """The templates with shadowdiff's filters; also what `shadowdiff report --format html` renders with."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("proxy.review", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=report_formats.fmt_pct,
        ms=report_formats.fmt_ms,
        ratio=report_formats.fmt_ratio,
        speedup=report_formats.fmt_speedup,
        speedups=report_formats.fmt_speedups,
        quote=lambda value: quote(str(value), safe=""),
        # Plain JSON text; autoescaping makes it safe (Jinja's tojson would show ">" as \u003e).
        json=lambda value: json.dumps(value, ensure_ascii=False),
        when=lambda value: value.strftime("%Y-%m-%d %H:%M:%S") if value else "–",
    )
    env.globals.update(
        qs=_qs, Verdict=Verdict, window_text=report_formats.window_text, since_text=report_formats.fmt_since
    )
    return env


def render_report_html(report: Report) -> str:
    """A self-contained HTML report (inline CSS and SVG, no links back to a server) for `--format html`."""
    charts = {
        (e.service, e.endpoint): page_views.latency_chart(e.latency) for s in report.services for e in s.endpoints
    }
    return (
        environment()
        .get_template("overview.html")
        .render(
            report=report,
            standalone=True,
            charts=charts,
            services=[],
            since="",
            service="",
            windows=WINDOWS,
            title="shadowdiff report",
        )
    )


# ---------------------------------------------------------------- pages


def _side_view(
    name: str,
    side: StoredSide | None,
    marked: page_views.Highlights,
    noise: page_views.Highlights,
    client_target: str,
) -> dict[str, Any] | None:
    if side is None:
        return None
    sent = side.sent
    return {
        "name": name,
        "side": side,
        "head": page_views.header_view(side.status, side.headers, marked, noise),
        "body": page_views.body_view(side.body, side.headers, marked, noise),
        "sent": sent,
        "rewritten": sent is not None and sent.target != client_target,
        "sent_head": page_views.header_view(None, sent.headers)[1:] if sent is not None else (),
        "sent_body": page_views.body_view(sent.body, sent.headers) if sent is not None and sent.body else (),
    }


def _field_groups(fields: tuple[FieldSummary, ...]) -> list[tuple[str, str, tuple[page_views.TreeRow, ...]]]:
    """(group, label, tree): the findings first, then what is noise or marked; each group a tree of its own."""
    findings = [f for f in fields if f.verdict == Verdict.FINDING]
    others = [f for f in fields if f.verdict != Verdict.FINDING]
    groups = [("finding", "Findings", findings), ("noise", "Noise and marked noise", others)]
    return [(group, label, page_views.field_tree(chosen)) for group, label, chosen in groups if chosen]


def _local(target: str | None, fallback: str) -> str:
    """A redirect target only if it stays on this site (no scheme, no host, no `//`)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return fallback
    parts = urlsplit(target)
    return fallback if parts.scheme or parts.netloc else target


class WebReport:
    """The page handlers, bound to one `ReportContext`."""

    def __init__(self, ctx: ReportContext) -> None:
        self.ctx = ctx
        self.templates = Jinja2Templates(env=environment())

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self._page(self.overview), methods=["GET"], name="overview"),
            Route("/endpoint", self._page(self.endpoint), methods=["GET"], name="endpoint"),
            Route("/exchanges", self._page(self.exchanges), methods=["GET"], name="exchanges"),
            Route("/exchanges/{exchange_id:path}", self._page(self.exchange), methods=["GET"], name="exchange"),
            Route("/latency", self._page(self.latency), methods=["GET"], name="latency"),
            Route("/noise", self._page(self.noise), methods=["GET"], name="noise"),
            Route("/noise", self._page(self.add_noise), methods=["POST"], name="add_noise"),
            Route("/noise/{mark_id:int}/delete", self._page(self.delete_noise), methods=["POST"], name="delete_noise"),
            Route("/promotions", self._page(self.promotions), methods=["GET"], name="promotions"),
            Route("/promotions/{service}", self._page(self.change), methods=["POST"], name="change"),
        ]

    def _page(self, handler: Handler) -> Handler:
        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except BadRequest as exc:
                return self._error(request, 422, f"Bad {exc.field}: {exc.message}")
            except UnknownService as exc:
                return self._error(request, 404, str(exc))

        page.__name__ = handler.__name__
        return page

    def _render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("title", "")
        context.update(
            standalone=False,
            token_required=self.ctx.settings.admin_token is not None,
            csrf_field=CSRF_FIELD,
            csrf_token=csrf_token(request.scope),
            services=self.ctx.services,
            windows=WINDOWS,
            since=request.query_params.get("since", ""),
            now=datetime.now(UTC),
        )
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def _error(self, request: Request, status: int, message: str) -> Response:
        return self._render(request, "error.html", status, title="Error", status=status, message=message)

    async def overview(self, request: Request) -> Response:
        service = request.query_params.get("service") or None
        if service is not None and service not in self.ctx.state.services:
            raise UnknownService(service, tuple(self.ctx.state.services))
        criteria = criteria_from(request.query_params, self.ctx.criteria)
        report = await self.ctx.report(window_from(request.query_params), service, criteria)
        return self._render(request, "overview.html", report=report, service=service or "", charts={})

    async def endpoint(self, request: Request) -> Response:
        name = request.query_params.get("endpoint") or ""
        service = await queries.service_of(self.ctx.store, name) if name else None
        if service is None:
            return self._error(request, 404, f"No exchanges recorded for endpoint {name!r}.")
        report = await self.ctx.report(window_from(request.query_params), service)
        summary = report.service(service)
        found = next((e for e in summary.endpoints if e.endpoint == name), None) if summary else None
        if summary is None or found is None:
            return self._error(request, 404, f"No exchanges for {name!r} in this time window.")
        marks = {m.path: m.id for m in await self.ctx.store.list_noise_marks() if m.endpoint == name}
        return self._render(
            request,
            "endpoint.html",
            title=name,
            report=report,
            summary=summary,
            ep=found,
            trees=_field_groups(found.fields),
            marks=marks,
            examples=await queries.field_examples(self.ctx.store, name),
            chart=page_views.latency_chart(found.latency),
            here=str(request.url.path) + _qs(endpoint=name, since=request.query_params.get("since")),
        )

    async def exchanges(self, request: Request) -> Response:
        params = request.query_params
        flt = exchange_filter(params, self.ctx.services)
        limit = int_param(params, "limit", 50, 1, queries.MAX_PAGE)
        page = await queries.list_exchanges(self.ctx.store, flt, before=cursor_from(params), limit=limit)
        keep = {k: params.get(k) for k in ("service", "endpoint", "outcome", "path", "since", "until", "run", "limit")}
        older = None if page.next_cursor is None else _qs(**keep, before=page.next_cursor.encode())
        return self._render(
            request,
            "exchanges.html",
            title="Exchanges",
            page=page,
            filters=keep,
            outcomes=[o.value for o in Outcome],
            older=older,
            newest=_qs(**keep) if params.get("before") else None,
        )

    async def exchange(self, request: Request) -> Response:
        exchange_id = request.path_params["exchange_id"]
        found: StoredExchange | None = await self.ctx.store.get_exchange(exchange_id)
        if found is None:
            return self._error(request, 404, f"No exchange {exchange_id!r} (it may have been pruned).")
        marks = Marks((m.endpoint, m.path) for m in await self.ctx.store.list_noise_marks())
        noisy = [d.noise or marks.is_marked(d.endpoint, d.path) for d in found.diffs]
        real = [d for d, noise in zip(found.diffs, noisy, strict=True) if not noise]
        noise = [d for d, noise in zip(found.diffs, noisy, strict=True) if noise]
        highlight = page_views.highlights
        summary = found.summary
        client = f"{summary.path}?{found.query}" if found.query else summary.path
        if found.primary.sent is not None:
            client = found.primary.sent.target  # raw, as the client sent it (the summary's path is decoded)
        sides = [
            view
            for view in (
                _side_view("primary", found.primary, highlight(real, "primary"), highlight(noise, "primary"), client),
                _side_view("shadow", found.shadow, highlight(real, "shadow"), highlight(noise, "shadow"), client),
                # On the secondary only what it showed itself: the fields where it, too, differed.
                _side_view(
                    "secondary",
                    found.secondary,
                    page_views.NOTHING,
                    page_views.Highlights.of(d.path for d in found.diffs if d.noise),
                    client,
                ),
            )
            if view is not None
        ]
        return self._render(
            request,
            "exchange.html",
            title=f"Exchange {exchange_id}",
            x=found,
            sides=sides,
            request_head=page_views.header_view(None, found.request_headers)[1:],
            request_body=page_views.body_view(found.request_body, found.request_headers),
        )

    async def latency(self, request: Request) -> Response:
        service = request.query_params.get("service") or None
        if service is not None and service not in self.ctx.state.services:
            raise UnknownService(service, tuple(self.ctx.state.services))
        report = await self.ctx.report(window_from(request.query_params), service)
        charts = {
            (e.service, e.endpoint): page_views.latency_chart(e.latency) for s in report.services for e in s.endpoints
        }
        service_charts = {s.service: page_views.latency_chart(s.latency) for s in report.services}
        return self._render(
            request,
            "latency.html",
            title="Latency",
            report=report,
            charts=charts,
            service_charts=service_charts,
            service=service or "",
        )

    async def noise(self, request: Request) -> Response:
        marks = await self.ctx.store.list_noise_marks()
        return self._render(request, "noise.html", title="Noise marks", marks=marks, message=_message(request))

    async def add_noise(self, request: Request) -> Response:
        form = await _form(request)
        denied = self._deny(request, form)
        if denied is not None:
            return denied
        endpoint, path = form.get("endpoint", "").strip(), form.get("path", "").strip()
        if not endpoint or not path:
            return self._error(request, 422, "A noise mark needs an endpoint and a field path.")
        await self.ctx.store.add_noise_mark(endpoint[:512], path[:1024], form.get("note", "").strip()[:1000])
        return RedirectResponse(_local(form.get("next"), "/noise" + _qs(message=f"Marked {path} as noise")), 303)

    async def delete_noise(self, request: Request) -> Response:
        form = await _form(request)
        denied = self._deny(request, form)
        if denied is not None:
            return denied
        deleted = await self.ctx.store.delete_noise_mark(request.path_params["mark_id"])
        message = "Noise mark removed" if deleted else "That noise mark was already gone"
        return RedirectResponse(_local(form.get("next"), "/noise" + _qs(message=message)), 303)

    async def promotions(self, request: Request) -> Response:
        report = await self.ctx.report(window_from(request.query_params))
        history = await self.ctx.state.history(None, 100)
        return self._render(
            request, "promotions.html", title="Promotions", report=report, history=history, message=_message(request)
        )

    async def change(self, request: Request) -> Response:
        form = await _form(request)
        denied = self._deny(request, form)
        if denied is not None:
            return denied
        service = request.path_params["service"]
        if service not in self.ctx.state.services:
            raise UnknownService(service, tuple(self.ctx.state.services))
        actor = f"web@{request.client.host}" if request.client is not None else "web"
        reason = form.get("reason", "").strip()[:1000]
        action = form.get("action")
        if action == "promote":
            to = self.ctx.state.shadow(service)
            if to == "v2" and form.get("confirm") != "yes":  # back to v1 is a rollback: never asks
                summary = (await self.ctx.report(Window(), service)).service(service)
                if summary is None or not summary.readiness.ready:
                    return self._render(
                        request, "confirm_promotion.html", title=f"Promote {service}?", s=summary, to=to, reason=reason
                    )
            change = await self.ctx.state.promote(
                service, to, reason=reason or f"promoted to {to} from the web report", actor=actor
            )
        elif action == "rollback":
            change = await self.ctx.state.rollback(
                service, reason=reason or f"rolled back to {ROLLBACK_TARGET} from the web report", actor=actor
            )
        else:
            return self._error(request, 422, f"Unknown action {action!r}: promote or rollback.")
        if change.changed:
            message = f"{service}: primary is now {change.primary} (was {change.previous})"
        else:
            message = f"{service}: primary is already {change.primary}; nothing changed"
        return RedirectResponse("/promotions" + _qs(message=message), 303)

    def _deny(self, request: Request, form: Mapping[str, str]) -> Response | None:
        """With a token configured, refuse a form without it (the guard has refused other sites' forms already)."""
        if not token_ok(self.ctx.settings.admin_token, request, form.get("token") if "token" in form else None):
            return self._error(request, 401, "The admin token is missing or wrong.")
        return None


async def _form(request: Request) -> dict[str, str]:
    # URL-encoded forms only: parsing them needs no python-multipart.
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _message(request: Request) -> str | None:
    return request.query_params.get("message") or None


def routes(ctx: ReportContext) -> list[BaseRoute]:
    """The web report's routes, for `create_admin_app(extra_routes=...)`."""
    return WebReport(ctx).routes()


def admin_routes(
    settings: Settings, store: Store, state: PrimaryState, *, criteria: Criteria | None = None
) -> list[BaseRoute]:
    """Everything the report adds to the admin listener: /api/v1 and the web pages (pass as `extra_routes`)."""
    ctx = ReportContext(settings, store, state, criteria=settings.readiness if criteria is None else criteria)
    return [*api_v1.routes(ctx), *routes(ctx)]
