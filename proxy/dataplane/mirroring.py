"""Mirroring: send the request to the shadow (and the secondary) beside the primary, collect their answers in the
background within their own timeout and an in-flight cap, and hand each finished exchange to the sink.

Nothing here can delay or change the client's response: the handler only launches a flight and, once the primary
has answered, resolves it; every failure on a mirrored side becomes data on the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from diffs.exchange import ErrorKind, Exchange, RecordedRequest, Role, SideResponse
from proxy.dataplane.correlation import IdCorrelator, IdFields, IdMap, PendingCreate, extract_ids
from proxy.dataplane.forwarding import Answer, UnsafeRequest, Upstream, error_kind
from proxy.dataplane.headers import RawHeaders, response_headers
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.sink import ExchangeSink
from proxy.errors import UpstreamError

log = structlog.get_logger("shadowdiff.mirror")
_BODYLESS_STATUS = frozenset((204, 304))


@dataclass(frozen=True, slots=True)
class MirrorCall:
    """One mirrored side of a request: where it goes and with which headers."""

    role: Role
    app: str
    upstream: Upstream
    headers: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Job:
    """What every mirrored side of one request shares."""

    id: str
    started_at: datetime
    service: str
    request: RecordedRequest
    target_path: str
    """The raw (still percent-encoded) path sent upstream; `request.path` is the decoded one."""
    json_body: bool
    timeout: float
    max_body: int
    id_fields: IdFields | None
    """Set when ids are correlated for this service; None skips correlation entirely."""
    proxy_origin: bytes | None = None
    """scheme://host the client used, for Location/Link rewriting (None: not rewritten)."""


class Flight:
    """One request's mirrored sides in the air; the handler resolves it once the primary has answered."""

    __slots__ = ("job", "sent", "not_sent", "primary", "pending", "closed")

    def __init__(self, job: Job, sent: tuple[MirrorCall, ...], not_sent: tuple[SideResponse, ...]) -> None:
        self.job = job
        self.sent = sent
        self.not_sent = not_sent
        self.primary: asyncio.Future[SideResponse | None] = asyncio.get_running_loop().create_future()
        self.pending: dict[Role, PendingCreate] = {}
        self.closed = False
        """Its mirrored sides are finished (or were cancelled): nothing may start waiting on it any more."""


def answered(
    role: Role,
    app: str,
    method: str,
    answer: Answer,
    request_id: str,
    redirect: tuple[bytes, bytes] | None = None,
) -> tuple[SideResponse, RawHeaders]:
    """A side's answer as the exchange records it, and the headers the client gets (or would get) with it.

    Recorded headers are those client headers with secrets redacted, the same treatment on every side so that
    only real differences show. `redirect`: see `response_headers`.
    """
    bodiless_status = answer.status in _BODYLESS_STATUS
    bodyless = method == "HEAD" or bodiless_status or answer.rest is not None
    headers, recorded_headers = response_headers(
        answer.headers,
        request_id,
        None if bodyless or answer.truncated else len(answer.body),
        redirect,
        bodiless_status,
    )
    recorded = SideResponse(
        role,
        app,
        answer.status,
        recorded_headers,
        answer.body,
        answer.latency * 1000.0,
        ErrorKind.NONE,
        answer.truncated,
    )
    return recorded, headers


class Mirror:
    """Launches flights within `max_inflight` mirrored requests, finishes them, and drains them on shutdown."""

    def __init__(
        self,
        *,
        sink: ExchangeSink,
        metrics: ProxyMetrics,
        correlator: IdCorrelator | None,
        max_inflight: int,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._correlator = correlator
        self._max_inflight = max_inflight
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.max_seen = 0
        """The most mirrored requests ever in flight at once (tests read it; never above the cap)."""

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def tasks(self) -> int:
        return len(self._tasks)

    def launch(self, job: Job, calls: list[MirrorCall]) -> Flight:
        """Start every call that fits under the cap now; the rest are recorded as dropped."""
        sent: list[MirrorCall] = []
        dropped: list[SideResponse] = []
        for call in calls:
            if self._inflight >= self._max_inflight:
                self._metrics.drop("inflight_cap")
                dropped.append(SideResponse(call.role, call.app, None, (), b"", 0.0, ErrorKind.DROPPED))
                continue
            self._inflight += 1
            sent.append(call)
        if self._inflight > self.max_seen:
            self.max_seen = self._inflight
        if sent:
            # inc/dec rather than a scrape-time function: multiprocess mode (--workers N) only sums written values.
            self._metrics.inflight(len(sent))
        flight = Flight(job, tuple(sent), tuple(dropped))
        if sent:
            task = asyncio.get_running_loop().create_task(self._fly(flight))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            flight.closed = True
        return flight

    def expect_creates(self, flight: Flight, created: IdMap) -> None:
        """The primary answered a mirrored create with these ids: requests naming them wait for the shadow's."""
        correlator = self._correlator
        if correlator is None or flight.closed:
            return
        for call in flight.sent:
            pending = correlator.begin(flight.job.service, call.role, created)
            if pending is not None:
                flight.pending[call.role] = pending

    def primary_answered(self, flight: Flight, primary: SideResponse | None) -> None:
        """Resolve the flight with the primary's side (None: there is none, the exchange is not recorded)."""
        if not flight.sent:
            if primary is not None:
                self._finish(flight, primary, ())
            return
        if not flight.primary.done():
            flight.primary.set_result(primary)

    async def _fly(self, flight: Flight) -> None:
        job = flight.job
        results: list[SideResponse] = []
        unsafe = False
        try:
            if len(flight.sent) == 1:
                answers = [await self._call(job, flight.sent[0])]
            else:
                answers = await asyncio.gather(*(self._call(job, call) for call in flight.sent))
            results.extend(answer for answer in answers if answer is not None)
            unsafe = len(results) < len(answers)
            primary = await flight.primary
        finally:
            self._release(flight, results)
        if primary is None:
            self._metrics.drop("primary_cancelled")
            return
        if unsafe:
            self._metrics.skip(job.service, "unsafe_rewrite")
        self._finish(flight, primary, results, "unsafe_rewrite" if unsafe else None)

    def _finish(
        self, flight: Flight, primary: SideResponse, results: Sequence[SideResponse], skip_reason: str | None = None
    ) -> None:
        job = flight.job
        shadow = secondary = None
        for result in (*results, *flight.not_sent):
            if result.role is Role.SHADOW:
                shadow = result
            else:
                secondary = result
        if shadow is not None and shadow.ok and primary.ok:
            self._metrics.delta(job.service, (shadow.latency_ms - primary.latency_ms) / 1000.0)
        self.submit(Exchange(job.id, job.started_at, job.service, job.request, primary, shadow, secondary, skip_reason))

    def _release(self, flight: Flight, results: list[SideResponse]) -> None:
        """Complete pending creates (always, or waiters would sit out their whole timeout)."""
        flight.closed = True
        correlator = self._correlator
        if correlator is None or not flight.pending:
            return
        fields = flight.job.id_fields
        answers = {result.role: result for result in results}
        for role, pending in flight.pending.items():
            answer = answers.get(role)
            ids = None
            if fields and answer is not None and answer.ok and answer.status is not None and 200 <= answer.status < 300:
                ids = extract_ids(answer.body, fields)
            correlator.complete(pending, ids)
        flight.pending.clear()

    async def _call(self, job: Job, call: MirrorCall) -> SideResponse | None:
        """The side's answer, or None when it was not sent: the request (rewritten) would not be valid HTTP/1.1."""
        request = job.request
        service = job.service
        try:
            path, query, body = job.target_path, request.query, request.body
            correlator = self._correlator
            if correlator is not None and job.id_fields is not None and correlator.active(service, call.role):
                path, query, body = await correlator.rewrite(
                    service, call.role, path, query, body, job.id_fields, json_body=job.json_body
                )
            target = f"{path}?{query}" if query else path
            started = time.perf_counter()
            try:
                answer = await call.upstream.send(
                    request.method,
                    target,
                    call.headers,
                    body if body or request.method in ("POST", "PUT", "PATCH") else None,
                    timeout=job.timeout,
                    max_body=job.max_body,
                    stream=False,
                )
            except UnsafeRequest as exc:
                # A rewritten id or value that would have split the request line or a header: never sent.
                log.warning("mirrored request not sent", exchange_id=job.id, role=call.role.value, reason=str(exc))
                return None
            except UpstreamError as exc:
                kind = error_kind(exc)
                self._metrics.shadow_error(service, kind.value)
                elapsed = (time.perf_counter() - started) * 1000.0
                return SideResponse(call.role, call.app, None, (), b"", elapsed, kind)
            self._metrics.upstream(service, call.role.value, call.app, answer.latency)
            if answer.truncated:
                self._metrics.too_large(service, call.role.value)
            redirect = None if job.proxy_origin is None else (call.upstream.origin.encode("latin-1"), job.proxy_origin)
            return answered(call.role, call.app, request.method, answer, job.id, redirect)[0]
        except Exception:
            # A bug here must cost one exchange, never the proxy: record it like a failed side.
            log.exception("mirrored request failed unexpectedly", exchange_id=job.id, role=call.role.value)
            self._metrics.shadow_error(service, ErrorKind.RESET.value)
            return SideResponse(call.role, call.app, None, (), b"", 0.0, ErrorKind.RESET)
        finally:
            self._inflight -= 1
            self._metrics.inflight(-1)

    def submit(self, exchange: Exchange) -> None:
        """Hand an exchange to the sink; a full sink is a counted drop."""
        try:
            accepted = self._sink.submit(exchange)
        except Exception:
            log.exception("sink failed", exchange_id=exchange.id)
            accepted = False
        if not accepted:
            self._metrics.drop("queue_full")

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for flights in the air, then cancel the rest; returns how many were cut."""
        if not self._tasks:
            return 0
        _, left = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in left:
            task.cancel()
        if left:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*left, return_exceptions=True)
            log.warning("mirrored requests cancelled at shutdown", count=len(left))
        return len(left)
