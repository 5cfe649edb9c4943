"""Mirroring: send the request to the shadow (and the secondary) beside the primary, collect their answers in the
background within their own timeout and an in-flight cap, and hand each finished exchange to the sink.

Nothing here can delay or change the client's response: the handler only launches a flight and, once the primary
has answered, resolves it; every failure on a mirrored side becomes data on the exchange. A mirrored side may wait
for earlier mirrored writes to the same resource (`ordering`) and gets its own ids (`correlation`); each side's
exchange records the target, headers and (rewritten) body it was actually sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from diffs.decoding import decode_body
from diffs.exchange import ErrorKind, Exchange, Headers, RecordedRequest, Role, SentRequest, SideResponse
from diffs.resources import Resource, Target
from proxy.dataplane.correlation import Created, IdCorrelator, ServiceIds, UnsafeId, created_ids
from proxy.dataplane.forwarding import Answer, UnsafeRequest, Upstream, error_kind
from proxy.dataplane.headers import RawHeaders, response_headers
from proxy.dataplane.metrics import ProxyMetrics
from proxy.dataplane.ordering import CausalOrder, Write, read_keys, write_keys
from proxy.dataplane.shared_ids import SharedIds
from proxy.dataplane.sink import ExchangeSink
from proxy.errors import UpstreamError

log = structlog.get_logger("shadowdiff.mirror")

OUT_OF_ORDER = "out_of_order"
"""The skip reason of an exchange whose mirrored side was sent past a causal-order bound (`Flight.raced`)."""
_BODYLESS_STATUS = frozenset((204, 304))
WRITES = frozenset(("POST", "PUT", "PATCH", "DELETE"))


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
    ids: ServiceIds | None
    """How this service names resources; None: no correlation and no ordering (no correlator in this proxy)."""
    primary_side: str = "v1"
    """The primary's app: the side whose ids the client uses."""
    proxy_origin: bytes | None = None
    """scheme://host the client used, for Location/Link rewriting (None: not rewritten)."""


class Flight:
    """One request's mirrored sides in the air; the handler resolves it once the primary has answered."""

    __slots__ = (
        "answers",
        "arrived",
        "closed",
        "created",
        "job",
        "not_sent",
        "primary",
        "primary_known",
        "raced",
        "sent",
        "target",
        "waits",
        "writes",
    )

    def __init__(self, job: Job, sent: tuple[MirrorCall, ...], not_sent: tuple[SideResponse, ...]) -> None:
        self.job = job
        self.sent = sent
        self.not_sent = not_sent
        self.arrived = time.monotonic()
        """When the request was launched: what a process must have heard of before it rewrites (`shared_ids`)."""
        self.primary: asyncio.Future[SideResponse | None] = asyncio.get_running_loop().create_future()
        self.closed = False
        """Its mirrored sides are finished (or were cancelled)."""
        self.target: Target | None = None
        """What the path addresses (parsed only when ordering or correlation needs it)."""
        self.waits: dict[Role, list[asyncio.Event]] = {}
        """Per side, the earlier writes to wait for before sending."""
        self.writes: dict[Role, Write] = {}
        """Per side, this request's own write in flight, released once that side answered."""
        self.answers: dict[Role, SideResponse | None] = {}
        """Per side, its answer once it has one (None: it was not sent, see `Mirror._send`)."""
        self.created: Created | None = None
        """The ids the primary's create answered with."""
        self.primary_known = False
        self.raced = False
        """A side was sent before what it had to wait for (earlier writes, another process's create) was settled:
        past `causal_wait_seconds`. Its answer may show a race, not a difference: the exchange is not compared."""


def answered(
    role: Role,
    app: str,
    method: str,
    answer: Answer,
    request_id: str,
    *,
    sent: SentRequest | None = None,
    redirect: tuple[bytes, bytes] | None = None,
) -> tuple[SideResponse, RawHeaders]:
    """A side's answer as the exchange records it, and the headers the client gets (or would get) with it.

    Recorded headers are those client headers with secrets redacted, the same treatment on every side so that
    only real differences show. `sent`: what the side was sent (`sent_request`); `redirect`: see `response_headers`.
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
        sent,
    )
    return recorded, headers


def sent_request(upstream: Upstream, target: str, headers: list[tuple[str, str]], body: bytes | None) -> SentRequest:
    """What an upstream is sent, as the exchange records it (the Host the client adds when none is given)."""
    recorded: Headers = tuple(headers)
    for name, _ in recorded:
        if name == "host":  # upstream_headers names it in lower case, as every forwarded header
            break
    else:
        recorded = (*recorded, ("host", upstream.host))
    return SentRequest(target, recorded, body)


class Mirror:
    """Launches flights within `max_inflight` mirrored requests, finishes them, and drains them on shutdown."""

    def __init__(
        self,
        *,
        sink: ExchangeSink,
        metrics: ProxyMetrics,
        correlator: IdCorrelator | None,
        max_inflight: int,
        order: CausalOrder | None = None,
        shared: SharedIds | None = None,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._correlator = correlator
        self._order = order
        self._shared = shared
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
            self._order_flight(flight)
            task = asyncio.get_running_loop().create_task(self._fly(flight))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            flight.closed = True
        return flight

    def target(self, flight: Flight) -> Target | None:
        """What the flight's path addresses (parsed once, on demand)."""
        job = flight.job
        if flight.target is None and job.ids is not None:
            known = self._correlator.resources(job.service) if self._correlator is not None else ()
            flight.target = job.ids.target(job.request.method, job.target_path, known)
        return flight.target

    def _order_flight(self, flight: Flight) -> None:
        """At launch, before anything else can happen: which earlier writes each side waits for, and this request's
        own write, which later requests to the same resource wait for."""
        order, job = self._order, flight.job
        if order is None or job.ids is None:
            return
        write = job.request.method in WRITES
        for call in flight.sent:
            side = call.upstream.app
            if not write and not order.busy(side, job.service):
                continue  # the common case, a read with no write in flight: nothing to parse
            target = self.target(flight)
            assert target is not None
            events = order.earlier(side, read_keys(job.service, target, _depth(job.target_path)))
            if events:
                flight.waits[call.role] = events
            if write:
                flight.writes[call.role] = order.begin(side, job.service, write_keys(job.service, target))

    def expect_creates(self, flight: Flight, created: Created) -> None:
        """The primary answered a mirrored create with these ids: requests naming them wait for each side's create,
        whose answer then gives the pairs."""
        job = flight.job
        flight.created = created
        if self._correlator is not None:
            self._correlator.announce(job.service, created)
        if self._order is not None:
            keys = {(job.service, resource.collection, str(value)) for resource, value in created.values()}
            for call in flight.sent:
                write = flight.writes.get(call.role)
                if write is not None:
                    self._order.extend(call.upstream.app, write, keys)
        self._primary_done(flight)

    def primary_head(self, flight: Flight) -> None:
        """The primary's head is in, its body may still be streaming to the client: the write it answered is done
        there, so each side that has answered too releases its own write now, not when the client has read it all."""
        self._primary_done(flight)

    def primary_answered(self, flight: Flight, primary: SideResponse | None) -> None:
        """Resolve the flight with the primary's side (None: there is none, the exchange is not recorded)."""
        if not flight.sent:
            if primary is not None:
                self._finish(flight, primary, ())
            return
        self._primary_done(flight)
        if not flight.primary.done():
            flight.primary.set_result(primary)

    def _primary_done(self, flight: Flight) -> None:
        if flight.primary_known:
            return
        flight.primary_known = True
        for call in flight.sent:
            if call.role in flight.answers:
                self._settle(flight, call)

    def _settle(self, flight: Flight, call: MirrorCall) -> None:
        """Both the primary and this side have answered: learn the create's pairs, release the write's waiters."""
        write = flight.writes.pop(call.role, None)
        if write is None:
            return
        job = flight.job
        try:
            answer = flight.answers.get(call.role)
            created, correlator, target = flight.created, self._correlator, flight.target
            if created and correlator is not None and job.ids is not None and target is not None and answer is not None:
                pairs = []
                if answer.ok and answer.status is not None and 200 <= answer.status < 300:
                    decoded = decode_body(answer.body, answer.headers)
                    if decoded.kind == "json":
                        other = created_ids(decoded.value, target.collection, job.ids.naming)
                        pairs = correlator.learn(job.service, created, job.primary_side, other, call.upstream.app)
                if call.role is Role.SHADOW:
                    correlator.settled(job.service, job.primary_side, created, pairs)
        finally:
            if self._order is not None:
                self._order.done(call.upstream.app, job.service, write)

    async def _fly(self, flight: Flight) -> None:
        job = flight.job
        results: list[SideResponse] = []
        unsafe = False
        try:
            if len(flight.sent) == 1:
                answers = [await self._call(flight, flight.sent[0])]
            else:
                answers = await asyncio.gather(*(self._call(flight, call) for call in flight.sent))
            results.extend(answer for answer in answers if answer is not None)
            unsafe = len(results) < len(answers)
            primary = await flight.primary
        finally:
            flight.closed = True
            # Cancelled or not, no write may stay in flight: its waiters would sit out their whole bound.
            if self._order is not None:
                for call in flight.sent:
                    write = flight.writes.pop(call.role, None)
                    if write is not None:
                        self._order.done(call.upstream.app, job.service, write)
        if primary is None:
            self._metrics.drop("primary_cancelled")
            return
        reason = "unsafe_rewrite" if unsafe else OUT_OF_ORDER if flight.raced else None
        if reason is not None:
            self._metrics.skip(job.service, reason)
        self._finish(flight, primary, results, reason)

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

    async def _call(self, flight: Flight, call: MirrorCall) -> SideResponse | None:
        result = await self._send(flight, call)
        flight.answers[call.role] = result
        if flight.primary_known:
            self._settle(flight, call)
        return result

    async def _send(self, flight: Flight, call: MirrorCall) -> SideResponse | None:
        """The side's answer, or None when it was not sent: the request (rewritten) would not be valid HTTP/1.1,
        or would have had to name this side's record by an id that cannot go into a request line."""
        job = flight.job
        request = job.request
        service = job.service
        try:
            earlier = flight.waits.pop(call.role, None)
            if earlier and self._order is not None:
                in_time = await self._order.wait(earlier)
                self._metrics.causal_wait(service, "waited" if in_time else "timeout")
                flight.raced = flight.raced or not in_time
            path, query, body = job.target_path, request.query, request.body
            correlator = self._correlator
            if self._shared is not None and correlator is not None and job.ids is not None:
                target = self.target(flight)
                assert target is not None
                misses: list[tuple[Resource, object]] = []
                correlator.rewrite(
                    service, job.primary_side, call.upstream.app, path, query, body, request=target,
                    naming=job.ids.naming, json_body=job.json_body, misses=misses,
                )  # fmt: skip
                if misses:  # ids with no pair here: creates other processes saw may hold them
                    if not await self._shared.resolve(service, job.primary_side, misses, flight.arrived):
                        flight.raced = True
            if correlator is not None and job.ids is not None and correlator.active(service):
                target = self.target(flight)
                assert target is not None
                try:
                    path, query, body = correlator.rewrite(
                        service,
                        job.primary_side,
                        call.upstream.app,
                        path,
                        query,
                        body,
                        request=target,
                        naming=job.ids.naming,
                        json_body=job.json_body,
                        strict=True,
                    )
                except UnsafeId as exc:
                    # This side's record is named by an id that cannot go into a request line: the primary's id
                    # would name another record (or none), so the side is not sent at all.
                    log.warning("mirrored request not sent", exchange_id=job.id, role=call.role.value, reason=str(exc))
                    return None
            target_line = f"{path}?{query}" if query else path
            sent = sent_request(call.upstream, target_line, call.headers, body if body is not request.body else None)
            started = time.perf_counter()
            try:
                answer = await call.upstream.send(
                    request.method,
                    target_line,
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
                return SideResponse(call.role, call.app, None, (), b"", elapsed, kind, sent=sent)
            self._metrics.upstream(service, call.role.value, call.app, answer.latency)
            if answer.truncated:
                self._metrics.too_large(service, call.role.value)
            redirect = None if job.proxy_origin is None else (call.upstream.origin.encode("latin-1"), job.proxy_origin)
            return answered(call.role, call.app, request.method, answer, job.id, sent=sent, redirect=redirect)[0]
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


def _depth(raw_path: str) -> int:
    stripped = raw_path.strip("/")
    return len(stripped.split("/")) if stripped else 0
