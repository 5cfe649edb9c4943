"""Comparer: endpoint, rules per endpoint, outcome, noise flags and counts for whole exchanges."""

from __future__ import annotations

from typing import Any

import pytest

from diffs.comparer import Comparer
from diffs.exchange import DiffKind, ErrorKind, Exchange, Outcome, Role
from diffs.id_pairs import IdPair, IdPairs
from diffs.resources import IdNaming
from diffs.rules import CompareRules, EndpointRules, TextSimilarity
from diffs.templating import OVERFLOW, LearnedTemplate
from proxy.config import ServiceConfig
from tests.factories import (
    ai_body,
    exchange,
    failed,
    order_body,
    primary,
    secondary,
    shadow,
    v1_error,
    v2_error,
)

SERVICES = {
    "orders": ServiceConfig(prefixes=("/api/orders",), endpoint_patterns=("/api/orders/{order_id}/items/{item_id}",)),
    "products": ServiceConfig(prefixes=("/api/products",), endpoint_patterns=("/api/products/sku/{sku}",)),
    "ai": ServiceConfig(
        prefixes=("/api/ai",),
        rules=CompareRules(ignore=("root.cached",)),
        endpoints=(
            EndpointRules(endpoint="POST /api/ai/generate", text_similarity=(TextSimilarity(path="root.text"),)),
            EndpointRules(endpoint="/api/ai/products/{product_id}/description", ignore=("root.provider",)),
        ),
    ),
    "default": ServiceConfig(prefixes=("/",)),
}


@pytest.fixture
def comparer() -> Comparer:
    return Comparer(SERVICES)


CHANGED = order_body(total="28.00")


@pytest.mark.parametrize(
    ("built", "outcome", "reason"),
    [
        (exchange(), Outcome.MATCH, None),
        (exchange(shadow=shadow(CHANGED)), Outcome.DIFF, None),
        (exchange(skip_reason="sampled_out", shadow=None), Outcome.SKIPPED, "sampled_out"),
        (exchange(skip_reason="mirror_off", shadow=shadow(CHANGED)), Outcome.SKIPPED, "mirror_off"),
        (exchange(shadow=None), Outcome.SKIPPED, "no_shadow"),
        (exchange(shadow=shadow(CHANGED, body_truncated=True)), Outcome.SKIPPED, "body_truncated"),
        (exchange(primary=primary(order_body(), body_truncated=True)), Outcome.SKIPPED, "body_truncated"),
        (exchange(shadow=failed(error=ErrorKind.TOO_LARGE)), Outcome.SKIPPED, "body_truncated"),
        (exchange(shadow=failed(error=ErrorKind.TIMEOUT)), Outcome.SHADOW_ERROR, "shadow_timeout"),
        (exchange(shadow=failed(error=ErrorKind.CONNECT)), Outcome.SHADOW_ERROR, "shadow_connect"),
        (exchange(shadow=failed(error=ErrorKind.RESET)), Outcome.SHADOW_ERROR, "shadow_reset"),
        (exchange(shadow=shadow(status=None)), Outcome.SHADOW_ERROR, "shadow_error"),
        (exchange(shadow=failed(error=ErrorKind.DROPPED)), Outcome.DROPPED, "shadow_dropped"),
        (exchange(primary=failed(Role.PRIMARY), shadow=shadow(CHANGED)), Outcome.SKIPPED, "primary_error"),
        (exchange(shadow=shadow(order_body(), status=500)), Outcome.DIFF, None),  # a 500 is an answer, not an error
    ],
)
def test_outcomes(comparer: Comparer, built: Exchange, outcome: Outcome, reason: str | None) -> None:
    result = comparer.compare(built)
    assert result.outcome is outcome
    assert result.exchange.skip_reason == reason
    assert bool(result.diffs) is (outcome is Outcome.DIFF)
    assert result.exchange.id == built.id


@pytest.mark.parametrize(
    ("service", "method", "path", "endpoint"),
    [
        ("orders", "GET", "/api/orders/42", "GET /api/orders/{id}"),
        ("orders", "GET", "/api/orders/42/items/7", "GET /api/orders/{order_id}/items/{item_id}"),
        ("products", "GET", "/api/products/sku/SKU-0001", "GET /api/products/sku/{sku}"),
        ("orders", "GET", "/api/products/sku/SKU-0001", "GET /api/products/sku/{id}"),  # another service's pattern
        ("unknown", "GET", "/things/12", "GET /things/{id}"),  # the default service
    ],
)
def test_endpoint_templates_use_the_service_patterns(
    comparer: Comparer, service: str, method: str, path: str, endpoint: str
) -> None:
    result = comparer.compare(exchange(service=service, method=method, path=path, shadow=shadow(CHANGED)))
    assert result.endpoint == endpoint
    assert {d.endpoint for d in result.diffs} == {endpoint}


def ai_exchange(path: str, a: dict[str, Any], b: dict[str, Any]) -> Exchange:
    return exchange(service="ai", method="POST", path=path, primary=primary(a), shadow=shadow(b))


def test_endpoint_rules_merge_over_the_service_rules(comparer: Comparer) -> None:
    a = ai_body("describe the walnut desk for the study room please")
    b = ai_body("describe the walnut desk for the study room now", cached=True)
    # service rule ignores cached; the generate endpoint tolerates similar text
    assert comparer.compare(ai_exchange("/api/ai/generate", a, b)).outcome is Outcome.MATCH
    # another endpoint of the same service: cached still ignored, the text is not tolerated
    other = comparer.compare(ai_exchange("/api/ai/other", a, b))
    assert [d.path for d in other.diffs] == ["root.text"]


def test_endpoint_rules_match_by_shape_whatever_the_placeholder_names_and_method(comparer: Comparer) -> None:
    a = {"product_id": 3, "description": "x", "provider": "offline", "cached": False}
    b = {**a, "provider": "openai", "cached": True}
    result = comparer.compare(ai_exchange("/api/ai/products/3/description", a, b))
    assert result.endpoint == "POST /api/ai/products/{id}/description"
    assert result.outcome is Outcome.MATCH
    assert comparer.rules_for("ai", result.endpoint).ignore == ("root.cached", "root.provider")


def test_the_secondary_flags_noise_and_the_exchange_matches(comparer: Comparer) -> None:
    generated = {"order_number": "ORD-11AA22BB", "created_at": "2026-11-28T15:00:00+00:00"}
    result = comparer.compare(
        exchange(
            method="POST",
            path="/api/orders",
            primary=primary(order_body(), status=201),
            shadow=shadow(order_body(**generated), status=201),
            secondary=secondary(order_body(**generated), status=201),
        )
    )
    assert result.outcome is Outcome.MATCH
    assert {(d.path, d.noise) for d in result.diffs} == {("root.order_number", True), ("root.created_at", True)}
    assert result.noisy == {("root.order_number", DiffKind.CHANGED), ("root.created_at", DiffKind.CHANGED)}


def test_a_real_difference_next_to_noise_is_a_diff(comparer: Comparer) -> None:
    result = comparer.compare(
        exchange(
            primary=primary(order_body()),
            shadow=shadow(order_body(order_number="ORD-1", total="28.00")),
            secondary=secondary(order_body(order_number="ORD-2")),
        )
    )
    assert result.outcome is Outcome.DIFF
    assert {(d.path, d.noise) for d in result.diffs} == {("root.order_number", True), ("root.total", False)}


def test_noise_is_matched_by_kind_a_varying_value_does_not_excuse_a_removed_field(comparer: Comparer) -> None:
    result = comparer.compare(
        exchange(
            primary=primary({"posts": 5, "took_ms": 3.1}),
            shadow=shadow({"posts": 5}),
            secondary=secondary({"posts": 5, "took_ms": 7.9}),
        )
    )
    assert result.noisy == {("root.took_ms", DiffKind.CHANGED)}
    [removed] = result.diffs
    assert (removed.path, removed.kind, removed.noise) == ("root.took_ms", DiffKind.REMOVED, False)
    assert result.outcome is Outcome.DIFF


def test_after_a_promotion_noise_is_measured_against_the_shadow_the_side_running_the_secondarys_app(
    comparer: Comparer,
) -> None:
    # V2 is primary, V1 the shadow; the secondary is a second V1. V1's own variation (order_number) is noise; V2's
    # differences from V1 are not, although the secondary differs from the primary there too.
    v2_body = order_body(order_number="ORD-V2", total="28.00")
    result = comparer.compare(
        exchange(
            primary=primary(v2_body, app="v2"),
            shadow=shadow(order_body(order_number="ORD-A"), app="v1"),
            secondary=secondary(order_body(order_number="ORD-B"), app="v1"),
        )
    )
    assert {(d.path, d.noise) for d in result.diffs} == {("root.order_number", True), ("root.total", False)}
    assert result.outcome is Outcome.DIFF


def test_a_failed_secondary_measures_nothing(comparer: Comparer) -> None:
    result = comparer.compare(
        exchange(shadow=shadow(order_body(order_number="ORD-1")), secondary=failed(Role.SECONDARY))
    )
    assert result.outcome is Outcome.DIFF and result.noisy == frozenset()


def test_marks_flag_noise_and_can_be_refreshed(comparer: Comparer) -> None:
    built = exchange(shadow=shadow(order_body(order_number="ORD-1")))
    assert comparer.compare(built).outcome is Outcome.DIFF
    comparer.set_marks([("GET /api/orders/{id}", "root.order_number")])
    marked = comparer.compare(built)
    assert marked.outcome is Outcome.MATCH and marked.diffs[0].noise
    comparer.set_marks([])
    assert comparer.compare(built).outcome is Outcome.DIFF


def test_marks_given_at_construction() -> None:
    comparer = Comparer(SERVICES, marks=[("*", "status")])
    result = comparer.compare(exchange(shadow=shadow(order_body(), status=202)))
    assert result.outcome is Outcome.MATCH and [d.path for d in result.diffs] == ["status"]


# V1 against V2, as docs/api-contract.md describes them ------------------------------------------------------------


def test_not_found_bodies_are_a_diff_with_equal_status(comparer: Comparer) -> None:
    result = comparer.compare(
        exchange(
            path="/api/products/42",
            service="products",
            primary=primary(v1_error(), status=404),
            shadow=shadow(v2_error(), status=404),
        )
    )
    assert result.outcome is Outcome.DIFF
    assert [(d.path, d.kind.value) for d in result.diffs] == [("root.detail", "removed"), ("root.error", "added")]


def test_validation_failure_is_a_status_diff(comparer: Comparer) -> None:
    result = comparer.compare(
        exchange(
            method="POST",
            path="/api/orders",
            primary=primary(v1_error("quantity must be >= 1"), status=400),
            shadow=shadow(v2_error("VALIDATION_ERROR", "invalid"), status=422),
        )
    )
    status = result.diffs[0]
    assert (status.path, status.primary_value, status.shadow_value) == ("status", 400, 422)
    assert result.outcome is Outcome.DIFF


def test_cached_is_a_finding_unless_the_service_ignores_it() -> None:
    plain = Comparer({"default": ServiceConfig()})
    built = exchange(
        service="ai",
        method="POST",
        path="/api/ai/generate",
        primary=primary(ai_body()),
        shadow=shadow(ai_body(cached=True)),
    )
    result = plain.compare(built)
    assert [(d.path, d.primary_value, d.shadow_value) for d in result.diffs] == [("root.cached", False, True)]
    assert Comparer(SERVICES).compare(built).outcome is Outcome.MATCH


def test_an_endpoint_picks_its_own_list_key() -> None:
    services = {
        "orders": ServiceConfig(
            prefixes=("/api/orders",),
            endpoints=(EndpointRules(endpoint="GET /api/orders", list_key="order_number"),),
        )
    }
    comparer = Comparer(services)
    a = {"items": [{"order_number": "A", "id": 1}, {"order_number": "B", "id": 2}]}
    b = {"items": [{"order_number": "B", "id": 2}, {"order_number": "A", "id": 1}]}
    listing = comparer.compare(exchange(path="/api/orders", primary=primary(a), shadow=shadow(b)))
    assert [(d.path, d.kind) for d in listing.diffs] == [("root.items", DiffKind.REORDERED)]
    assert listing.diffs[0].primary_value == ["A", "B"]  # reported by the endpoint's key
    assert comparer.rules_for("orders", "GET /api/orders/{id}").list_key == "id"  # other endpoints keep the default


def test_lists_align_paired_records_on_every_side_the_secondary_included(comparer: Comparer) -> None:
    # V1's order 3 is V2's order 4 and the secondary's order 9; order numbers are generated on every run
    pairs = IdPairs()
    pairs.remember(
        [IdPair("orders", "/api/orders", "v1", 3, "v2", 4), IdPair("orders", "/api/orders", "v1", 3, "secondary", 9)]
    )
    built = exchange(
        path="/api/orders",
        primary=primary({"items": [order_body(id=3, order_number="ORD-A")]}),
        shadow=shadow({"items": [order_body(id=4, order_number="ORD-B")]}),
        secondary=secondary({"items": [order_body(id=9, order_number="ORD-C")]}),
    )
    result = comparer.compare(built, pairs=pairs, naming=IdNaming())
    found = {(d.path, d.kind.value): d.noise for d in result.diffs}
    # one record on each side: its order number and its id differ between two V1s too (noise, measured)
    assert found == {("root.items[*].id", "changed"): True, ("root.items[*].order_number", "changed"): True}
    unpaired = comparer.compare(built)
    assert {d.kind.value for d in unpaired.diffs} == {"item_added", "item_removed"}


def test_endpoints_past_the_bound_share_one_overflow_endpoint_the_report_can_name() -> None:
    comparer = Comparer({"default": ServiceConfig()}, max_endpoints=3)
    names = [
        comparer.endpoint(exchange(path=f"/things/{word}", service="default")) for word in ("a", "b", "c", "d", "e")
    ]
    assert names == ["GET /things/a", "GET /things/b", "GET /things/c", f"GET {OVERFLOW}", f"GET {OVERFLOW}"]
    assert comparer.endpoint(exchange(path="/things/a", service="default")) == "GET /things/a"  # known ones stay


def test_learned_positions_are_handed_out_once_and_taken_back_from_elsewhere() -> None:
    here, there = Comparer(SERVICES), Comparer(SERVICES)
    there.endpoint(exchange(path="/api/orders/7"))
    facts = there.learned()
    assert LearnedTemplate("orders", "/api/orders/{id}", "id") in facts and there.learned() == []
    assert here.endpoint(exchange(path="/api/orders/vrkjkvKpxV_")) == "GET /api/orders/vrkjkvKpxV_"
    here.learn(facts)
    assert here.endpoint(exchange(path="/api/orders/vrkjkvKpxV_")) == "GET /api/orders/{id}"
