"""From an exchange to its verdict: template the endpoint, pick the rules, compare, flag noise, count.

Pure and synchronous — the proxy runs `Comparer.compare` in its comparison workers; no I/O happens here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from diffs.exchange import Comparison, ErrorKind, Exchange, FieldDiff, Outcome, Role, SideResponse
from diffs.id_pairs import IdPairs, counterpart
from diffs.noise import Marks, Noisy, flag_noise
from diffs.resources import IdNaming
from diffs.response_diff import MAX_DIFFS, KeyCounterpart, compare_responses
from diffs.rules import CompareRules, EndpointRules, merge_rules
from diffs.templating import OVERFLOW, EndpointTemplater, LearnedTemplate, TemplateLearner

DEFAULT_SERVICE = "default"
_PLACEHOLDER = re.compile(r"\{[^{}/]*\}")


class ServiceRules(Protocol):
    """What the comparer reads of a service's configuration (`proxy.config.ServiceConfig` has it)."""

    @property
    def rules(self) -> CompareRules: ...
    @property
    def endpoints(self) -> tuple[EndpointRules, ...]: ...
    @property
    def endpoint_patterns(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class _NoRules:
    rules: CompareRules = CompareRules()
    endpoints: tuple[EndpointRules, ...] = ()
    endpoint_patterns: tuple[str, ...] = ()


_NO_SERVICE = _NoRules()


def _shape(endpoint: str) -> str:
    # "GET /api/orders/{order_id}" in config matches the template "GET /api/orders/{id}": names don't matter.
    return _PLACEHOLDER.sub("{}", endpoint.strip())


def _comparable(side: SideResponse) -> bool:
    return not side.body_truncated and side.error is not ErrorKind.TOO_LARGE


def skip_reason(exchange: Exchange) -> tuple[Outcome, str] | None:
    """Why an exchange gets no field comparison (and its outcome), or None when primary and shadow can be compared."""
    primary, shadow = exchange.primary, exchange.shadow
    if exchange.skip_reason is not None:
        return Outcome.SKIPPED, exchange.skip_reason
    if shadow is None:
        return Outcome.SKIPPED, "no_shadow"
    if shadow.error is ErrorKind.DROPPED:
        return Outcome.DROPPED, "shadow_dropped"
    if not _comparable(primary) or not _comparable(shadow):
        return Outcome.SKIPPED, "body_truncated"
    if not primary.ok:
        return Outcome.SKIPPED, "primary_error"  # nothing sound to compare the shadow against
    if not shadow.ok:
        return Outcome.SHADOW_ERROR, "shadow_error" if shadow.error is ErrorKind.NONE else f"shadow_{shadow.error}"
    return None


class Comparer:
    """Turns exchanges into comparisons for every configured service."""

    def __init__(
        self,
        services: Mapping[str, ServiceRules],
        marks: Iterable[tuple[str, str]] = (),
        *,
        value_limit: int = 1024,
        max_diffs: int = MAX_DIFFS,
        cache_size: int = 4096,
        learn_after: int = 20,
        max_endpoints: int = 500,
    ) -> None:
        self.services = dict(services)
        self.value_limit = value_limit
        self.max_diffs = max_diffs
        self.max_endpoints = max_endpoints
        self._marks = Marks(marks)
        self._templaters = {
            name: EndpointTemplater(
                service.endpoint_patterns, cache_size=cache_size, learner=TemplateLearner(name, learn_after=learn_after)
            )
            for name, service in self.services.items()
        }
        self._fallback_templater = EndpointTemplater(cache_size=cache_size)
        self._endpoints: dict[str, set[str]] = {}
        self._rules = lru_cache(maxsize=cache_size)(self._resolve_rules)

    def set_marks(self, marks: Iterable[tuple[str, str]]) -> None:
        """Replace the noise marks (the caller reloads them from the store)."""
        self._marks = Marks(marks)

    def service(self, name: str) -> ServiceRules:
        return self.services.get(name) or self.services.get(DEFAULT_SERVICE) or _NO_SERVICE

    def endpoint(self, exchange: Exchange) -> str:
        """The exchange's endpoint template: its service's patterns, the automatic rules, what was learned; past
        `max_endpoints` distinct ones in a service, `METHOD (other endpoints)`, so labels and rows stay bounded."""
        service, method = exchange.service, exchange.request.method
        templater = self._templaters.get(service) or self._templaters.get(DEFAULT_SERVICE)
        name = (templater or self._fallback_templater).template(method, exchange.request.path)
        known = self._endpoints.setdefault(service if service in self.services else DEFAULT_SERVICE, set())
        if name not in known:
            if len(known) >= self.max_endpoints:
                return f"{method.upper()} {OVERFLOW}"
            known.add(name)
        return name

    def learned(self) -> list[LearnedTemplate]:
        """Template positions learned since the last call, for the caller to persist and share."""
        return [fact for t in self._templaters.values() if t.learner is not None for fact in t.learner.take()]

    def learn(self, facts: Iterable[LearnedTemplate]) -> None:
        """Template positions learned by other processes (read back from the store)."""
        by_service: dict[str, list[LearnedTemplate]] = {}
        for fact in facts:
            by_service.setdefault(fact.service, []).append(fact)
        for service, group in by_service.items():
            templater = self._templaters.get(service)
            if templater is not None:
                templater.learn(group)

    def rules_for(self, service: str, endpoint: str) -> CompareRules:
        """The service's rules merged with every `EndpointRules` naming this endpoint (cached per endpoint)."""
        return self._rules(service, endpoint)

    def _resolve_rules(self, service: str, endpoint: str) -> CompareRules:
        config = self.service(service)
        shape = _shape(endpoint)
        path_shape = shape.partition(" ")[2]
        rules = config.rules
        for override in config.endpoints:
            wanted = _shape(override.endpoint)
            if wanted == shape or wanted == path_shape:
                rules = merge_rules(rules, override)
        return rules

    def compare(
        self, exchange: Exchange, *, pairs: IdPairs | None = None, naming: IdNaming | None = None
    ) -> Comparison:
        """Compare one exchange: outcome, and field diffs with noise flags.

        `pairs` (with the service's `naming`): lists aligned by key align records through the id pairs, so V1's
        order 3 meets V2's order 4 when they are one record (the differing id is then the caller's to discount).
        """
        endpoint = self.endpoint(exchange)
        skipped = skip_reason(exchange)
        if skipped is not None:
            outcome, reason = skipped
            if exchange.skip_reason is None:
                # The store keeps the reason with the exchange; "not compared" is a skip like "not mirrored".
                exchange = dataclasses.replace(exchange, skip_reason=reason)
            return Comparison(exchange, endpoint, outcome)
        assert exchange.shadow is not None  # skip_reason returns a reason when there is none
        rules = self.rules_for(exchange.service, endpoint)
        ids = None
        if pairs is not None and pairs.active(exchange.service):
            ids = (pairs, naming or IdNaming())
        raw = self._diff(exchange.primary, exchange.shadow, rules, exchange.id, endpoint, ids, exchange.service)
        noisy = self._noisy(exchange, rules, endpoint, ids)
        diffs = flag_noise(raw, noisy, self._marks, endpoint)
        outcome = Outcome.DIFF if any(not d.noise for d in diffs) else Outcome.MATCH
        return Comparison(exchange, endpoint, outcome, tuple(diffs), noisy)

    def _diff(
        self,
        primary: SideResponse,
        other: SideResponse,
        rules: CompareRules,
        exchange_id: str,
        endpoint: str,
        ids: tuple[IdPairs, IdNaming] | None = None,
        service: str = "",
    ) -> list[FieldDiff]:
        return compare_responses(
            primary,
            other,
            rules,
            exchange_id=exchange_id,
            endpoint=endpoint,
            value_limit=self.value_limit,
            max_diffs=self.max_diffs,
            counterpart=None if ids is None else _key_counterpart(ids, service, endpoint, primary, other),
        )

    def _noisy(
        self, exchange: Exchange, rules: CompareRules, endpoint: str, ids: tuple[IdPairs, IdNaming] | None = None
    ) -> Noisy:
        """What differs between the secondary and the side that runs the secondary's app (the primary until a
        promotion, the shadow after one: both are copies of the same app, so what differs between them is noise)."""
        secondary = exchange.secondary
        if secondary is None or not secondary.ok or not _comparable(secondary):
            return frozenset()
        reference = exchange.primary if exchange.primary.app == secondary.app else exchange.shadow
        if reference is None or reference.app != secondary.app or not reference.ok or not _comparable(reference):
            return frozenset()
        found = self._diff(reference, secondary, rules, exchange.id, endpoint, ids, exchange.service)
        return frozenset((d.path, d.kind) for d in found)


def _side(side: SideResponse) -> str:
    """A side as id pairs name it: the upstream (`v1`, `v2`), or `secondary`, which has a database of its own."""
    return "secondary" if side.role is Role.SECONDARY else side.app


def _key_counterpart(
    ids: tuple[IdPairs, IdNaming], service: str, endpoint: str, one: SideResponse, other: SideResponse
) -> KeyCounterpart:
    pairs, naming = ids
    from_side, to_side = _side(one), _side(other)

    def find(path: str, value: object) -> object:
        return counterpart(
            path, value, service=service, endpoint=endpoint, from_side=from_side, to_side=to_side, pairs=pairs,
            naming=naming,
        )  # fmt: skip

    return find
