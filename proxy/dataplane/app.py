"""The proxy ASGI app: answer from the primary, mirror to the shadow, hand every exchange to the sink.

HTTP requests go straight to `Proxy.__call__`, raw ASGI: Starlette's middleware stack and router would add ~4 µs a
request (measured) for nothing the proxy uses, and Request/Response objects more. So middleware added to this app
does not wrap HTTP. Starlette runs the lifespan, which opens the upstream pools on startup and, on shutdown, drains
in-flight mirrored requests for `drain_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette

from diffs.exchange import Exchange, RecordedRequest, Role, SideResponse
from proxy.config import Settings
from proxy.dataplane.bodies import ClientGone, Message, Receive, Send, chain, read_body
from proxy.dataplane.capture import Capture
from proxy.dataplane.correlation import Created, IdCorrelator, created_ids
from proxy.dataplane.forwarding import Answer, Body, TlsOptions, Upstream, error_kind
from proxy.dataplane.headers import Inbound, read_inbound, upstream_headers
from proxy.dataplane.http1.client import Limits
from proxy.dataplane.http1.server import BODY_FOLLOWS, CLIENT_GONE, HANDLER_TASK
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.mirroring import Flight, Job, Mirror, MirrorCall, answered, sent_request
from proxy.dataplane.ordering import CausalOrder
from proxy.dataplane.routing import PrimaryLookup, RouteTable, ServicePlan
from proxy.dataplane.shared_ids import SharedIds
from proxy.dataplane.sink import ExchangeSink
from proxy.errors import UpstreamError, UpstreamTimeout

Scope = MutableMapping[str, Any]

_OTHER = {"v1": "v2", "v2": "v1"}
GC_YOUNG_THRESHOLD = 20_000
_JSON = [(b"content-type", b"application/json")]


class Proxy:
    """The data plane as a raw ASGI callable."""

    def __init__(
        self,
        settings: Settings,
        *,
        primaries: PrimaryLookup,
        sink: ExchangeSink,
        metrics: ProxyMetrics,
        correlator: IdCorrelator | None = None,
        capture: Capture | None = None,
        shared: SharedIds | None = None,
    ) -> None:
        self.settings = settings
        self.capture = capture
        self.routes = RouteTable(settings.services)
        self.primaries = primaries
        self.metrics = metrics
        self.correlator = correlator
        self.shared = shared
        self.mirror = Mirror(
            sink=sink,
            metrics=metrics,
            correlator=correlator,
            max_inflight=settings.max_inflight_shadow,
            order=CausalOrder(settings.causal_wait_seconds),
            shared=shared,
        )
        options: dict[str, Any] = {
            "connections": settings.upstream_connections,
            "keepalive": settings.upstream_keepalive_seconds,
            "tls": TlsOptions(
                settings.upstream_ca_bundle,
                settings.upstream_client_cert,
                settings.upstream_client_key,
                settings.upstream_tls_verify,
            ),
            "limits": Limits(settings.max_header_size, settings.max_header_count, settings.max_interim_responses),
        }
        self.upstreams = {
            "v1": Upstream("v1", settings.v1_url, **options),
            "v2": Upstream("v2", settings.v2_url, **options),
        }
        self.secondary = Upstream("secondary", settings.secondary_url, **options) if settings.secondary_url else None
        self._secondary_app = settings.secondary_app
        self._rewrite_host = settings.host_header == "rewrite"
        self._trust_forwarded = settings.trust_forwarded
        self._max_request = settings.max_request_body
        self._max_response = settings.max_response_body

    async def open(self) -> None:
        for upstream in self._all_upstreams():
            await upstream.open()

    async def aclose(self) -> None:
        """Drain mirrored requests for `drain_seconds`, cancel what is left, close the pools."""
        await self.mirror.drain(self.settings.drain_seconds)
        for upstream in self._all_upstreams():
            await upstream.aclose()

    def _all_upstreams(self) -> list[Upstream]:
        return [*self.upstreams.values(), *([self.secondary] if self.secondary else [])]

    def _host(self, inbound: Inbound, upstream: Upstream) -> str | None:
        # None lets the client write the upstream's own host:port, which is what "rewrite" means.
        return None if self._rewrite_host else (inbound.host or upstream.host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server protocol cancels this task when the client goes away mid-request (http1.server): the upstream
        # exchange stops there and its connection is closed, instead of draining a body nobody will read.
        task = asyncio.current_task()
        scope[HANDLER_TASK] = task
        try:
            await self._proxy(scope, receive, send)
        except asyncio.CancelledError:
            if task is not None and scope.get(CLIENT_GONE) and task.uncancel() == 0:
                return
            raise

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        started_at = datetime.now(UTC)
        method: str = scope["method"]
        path: str = scope["path"]
        raw_path: bytes | None = scope.get("raw_path")
        target_path = raw_path.decode("latin-1") if raw_path else path
        query = scope["query_string"].decode("latin-1")
        service = self.routes.resolve(path)
        plan = self.routes.plan(service)
        client = scope.get("client")
        scheme = scope.get("scheme", "http")
        inbound = read_inbound(
            scope["headers"],
            client_host=client[0] if client else None,
            scheme=scheme,
            sample_key_header=plan.sample_key_header,
            trust_forwarded=self._trust_forwarded,
        )
        try:
            body, rest = await read_body(receive, self._max_request)
        except ClientGone:
            return
        # One read can deliver more than the limit at once, so the size decides, not whether there is a rest.
        too_large = rest is not None or len(body) > self._max_request
        if self.capture is not None and not too_large:
            self.capture.record(scope, body, started_at, inbound, service)  # a bounded hand-off to its thread
        primary_app = self.primaries.primary(service)
        primary = self.upstreams[primary_app]
        recorded = RecordedRequest(
            method, path, query, inbound.recorded, body[: self._max_request], body_truncated=too_large
        )
        headers = upstream_headers(inbound, host=self._host(inbound, primary), shadow=False)
        payload: Body = body if body or method in ("POST", "PUT", "PATCH") else None
        if rest is not None:
            payload = chain(body, rest)
            if inbound.content_length is not None:
                headers.append(("content-length", str(inbound.content_length)))
        target = f"{target_path}?{query}" if query else target_path
        # With the default Host rewrite, upstreams name themselves in Location and Link: those go back to the proxy.
        origin = f"{scheme}://{inbound.host}".encode("latin-1") if self._rewrite_host and inbound.host else None
        skip = self._skip_reason(plan, method, inbound, too_large)
        flight: Flight | None = None
        if skip is None:
            flight = self._launch(plan, primary_app, inbound, recorded, target_path, started_at, origin)
        else:
            self.metrics.skip(service, skip)
        # A create whose ids are correlated is read whole before the client sees it (see `_created_ids`).
        buffer = flight is not None and method == "POST" and self.correlator is not None and flight.job.ids is not None
        # From here on the `finally` resolves the flight, whatever happens: a flight left open would keep its task,
        # and the request it holds, until shutdown.
        sent = time.perf_counter()
        result: SideResponse | None = None
        try:
            try:
                answer = await primary.send(
                    method,
                    target,
                    headers,
                    payload,
                    timeout=plan.primary_timeout,
                    max_body=self._max_response,
                    stream=True,
                    wait_body=buffer,
                )
            except UpstreamError as exc:
                elapsed = time.perf_counter() - sent
                result = await self._primary_failed(exc, service, method, primary_app, inbound, elapsed, send)
                return
            sent_to = sent_request(primary, target, headers, None)
            redirect = None if origin is None else (primary.origin.encode("latin-1"), origin)
            result, out_headers = answered(
                Role.PRIMARY, primary_app, method, answer, inbound.request_id, sent=sent_to, redirect=redirect
            )
            if flight is not None:
                created = self._created_ids(flight, method, answer)
                if created:
                    # Before the client sees the new ids, so a request naming them waits for the shadow's create:
                    # here, and in every other process (announced, bounded: `shared_ids`).
                    self.mirror.expect_creates(flight, created)
                    if self.shared is not None:
                        await self.shared.announce(service, primary_app, created)
                else:
                    self.mirror.primary_head(flight)
            self.metrics.request(service, method, answer.status)
            start = {"type": "http.response.start", "status": answer.status, "headers": out_headers}
            if answer.rest is None:
                self.metrics.upstream(service, "primary", primary_app, answer.latency)
                if answer.truncated:
                    self.metrics.too_large(service, "primary")
                    result = replace(result, body=answer.body[: self._max_response])
                start[BODY_FOLLOWS] = True  # head and body in one write (http1.server)
                await send(start)
                await send({"type": "http.response.body", "body": answer.body})
                return
            # Streamed as it arrives; until the stream ends whole, the recorded side counts as cut short.
            whole, result = result, replace(result, body_truncated=True)
            result = await self._stream(answer, start, send, service, whole, sent)
        finally:
            # After the response: the client never waits for the bookkeeping.
            if flight is not None:
                self.mirror.primary_answered(flight, result)
            elif skip is not None and result is not None:
                self.mirror.submit(
                    Exchange(inbound.request_id, started_at, service, recorded, result, skip_reason=skip)
                )

    async def _stream(
        self, answer: Answer, start: Message, send: Send, service: str, result: SideResponse, sent: float
    ) -> SideResponse:
        """Send the primary's body to the client as it arrives, keeping a copy up to `max_response_body`."""
        rest = answer.rest
        assert rest is not None
        cap = self._max_response
        copy = [answer.body]
        size = len(answer.body)
        truncated = answer.truncated or size > cap
        finished = False
        try:
            if answer.body:
                start[BODY_FOLLOWS] = True
            await send(start)
            if answer.body:
                await send({"type": "http.response.body", "body": answer.body, "more_body": True})
            while chunk := await rest.read():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if not truncated:
                    size += len(chunk)
                    truncated = size > cap
                    if not truncated:
                        copy.append(chunk)
            await send({"type": "http.response.body", "body": b""})
            finished = True
        except UpstreamError as exc:
            # The primary failed mid-stream: the client's connection is cut (the response cannot be completed).
            kind = error_kind(exc)
            self.metrics.primary_error(service, kind.value)
            return replace(
                result, body=b"", body_truncated=True, latency_ms=(time.perf_counter() - sent) * 1000.0, error=kind
            )
        finally:
            if finished:
                rest.close()
            else:
                rest.abort()  # the client went away or the upstream failed: its connection goes
        latency = time.perf_counter() - sent
        self.metrics.upstream(service, "primary", result.app, latency)
        if truncated:
            self.metrics.too_large(service, "primary")
        body = copy[0] if len(copy) == 1 else b"".join(copy)
        return replace(result, body=body, body_truncated=truncated, latency_ms=latency * 1000.0)

    def _skip_reason(self, plan: ServicePlan, method: str, inbound: Inbound, too_large: bool) -> str | None:
        if inbound.marked:
            return "loop_guard"
        if inbound.upgrade:
            return "upgrade"  # served as plain HTTP to the client (http1.server); never tunnelled, never mirrored
        if not plan.mirror:
            return "mirror_off"
        if method not in plan.methods:
            return "method"
        if too_large:
            return "request_too_large"
        if not plan.sampler.sampled(inbound.sample_key):
            return "sampled_out"
        return None

    def _launch(
        self,
        plan: ServicePlan,
        primary_app: str,
        inbound: Inbound,
        recorded: RecordedRequest,
        target_path: str,
        started_at: datetime,
        origin: bytes | None,
    ) -> Flight:
        shadow_app = _OTHER[primary_app]
        shadow = self.upstreams[shadow_app]
        # Launched before the primary is sent: the mirror task starts at the primary's first await, so both requests
        # leave within microseconds (the tests hold it under 5 ms; measured ~0.1 ms between arrivals).
        calls = [
            MirrorCall(
                Role.SHADOW,
                shadow_app,
                shadow,
                upstream_headers(inbound, host=self._host(inbound, shadow), shadow=True),
            )
        ]
        if self.secondary is not None:
            # Whatever the primary is: a secondary that missed the writes while V2 was primary would drift from V1,
            # and after a rollback its differences would pass real ones off as noise.
            secondary = self.secondary
            headers = upstream_headers(inbound, host=self._host(inbound, secondary), shadow=True)
            calls.append(MirrorCall(Role.SECONDARY, self._secondary_app, secondary, headers))
        job = Job(
            id=inbound.request_id,
            started_at=started_at,
            service=plan.name,
            request=recorded,
            target_path=target_path,
            json_body="json" in inbound.content_type,
            timeout=plan.shadow_timeout,
            max_body=self._max_response,
            ids=plan.ids,
            primary_side=primary_app,
            proxy_origin=origin,
        )
        return self.mirror.launch(job, calls)

    def _created_ids(self, flight: Flight, method: str, answer: Answer) -> Created | None:
        """The ids a mirrored create (a POST to a collection) returned, when correlation applies (parsing JSON only
        then)."""
        job = flight.job
        if (
            method != "POST"
            or self.correlator is None
            or job.ids is None
            or not 200 <= answer.status < 300
            or answer.truncated
            or answer.rest is not None
            or not answer.body
        ):
            return None
        for name, value in answer.headers:
            lower = name.lower()
            if lower == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                return None
            if lower == b"content-type" and b"json" not in value.lower():
                return None
        target = self.mirror.target(flight)
        if target is None or (target.item is not None and target.collection == target.item.resource):
            return None  # a POST to an item is not a create
        try:
            document = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return None
        return created_ids(document, target.collection, job.ids.naming) or None

    async def _primary_failed(
        self,
        exc: UpstreamError,
        service: str,
        method: str,
        app: str,
        inbound: Inbound,
        seconds: float,
        send: Send,
    ) -> SideResponse:
        kind = error_kind(exc)
        status = 504 if isinstance(exc, UpstreamTimeout) else 502
        code = "UPSTREAM_TIMEOUT" if status == 504 else "UPSTREAM_UNAVAILABLE"
        body = orjson.dumps({"error": {"code": code, "message": f"primary upstream {exc}", "upstream": app}})
        headers = [
            *_JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", inbound.request_id.encode("latin-1")),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers, BODY_FOLLOWS: True})
        await send({"type": "http.response.body", "body": body})
        self.metrics.primary_error(service, kind.value)
        self.metrics.request(service, method, status)
        return SideResponse(Role.PRIMARY, app, None, (), b"", seconds * 1000.0, kind)


def _tune_gc() -> tuple[int, int, int]:
    """Freeze what start-up built and collect the young generation less often; returns the old thresholds.

    Measured here: the default collector cost ~40 µs a proxied request, mostly full collections (25–75 ms pauses,
    the p99) that re-scan every module-level object; after a freeze they scan only what requests left alive.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(previous[0], GC_YOUNG_THRESHOLD), previous[1], previous[2])
    return previous


class ProxyApp(Starlette):
    """Starlette for the lifespan (and anything but HTTP); every HTTP request goes straight to the proxy."""

    def __init__(self, proxy: Proxy, *, tune_gc: bool = False) -> None:
        self.proxy = proxy

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await proxy.open()
            tuned = _tune_gc() if tune_gc else None
            try:
                yield
            finally:
                await proxy.aclose()
                if tuned is not None:
                    gc.set_threshold(*tuned)
                    gc.unfreeze()

        super().__init__(lifespan=lifespan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.proxy(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_proxy_app(
    settings: Settings,
    *,
    primaries: PrimaryLookup,
    sink: ExchangeSink,
    metrics: ProxyMetrics,
    correlator: IdCorrelator | None = None,
    capture: Capture | None = None,
    tune_gc: bool = False,
    shared: SharedIds | None = None,
) -> Starlette:
    """The data-plane app; it opens its upstream sessions on startup and drains in-flight shadows on shutdown.

    `tune_gc` (for the server process, not for tests sharing a process) freezes start-up objects out of the
    garbage collector's reach and raises its young-generation threshold while the app runs.
    """
    proxy = Proxy(
        settings, primaries=primaries, sink=sink, metrics=metrics, correlator=correlator, capture=capture, shared=shared
    )
    return ProxyApp(proxy, tune_gc=tune_gc)
