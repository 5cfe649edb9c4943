"""proxy.dataplane.routing: longest prefix wins, on segment boundaries; plans precomputed from config."""

from __future__ import annotations

import pytest

from proxy.config import ServiceConfig, default_services
from proxy.dataplane.routing import RouteTable, StaticPrimaries, normalized_path


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/orders", "orders"),
        ("/api/orders/", "orders"),
        ("/api/orders/42", "orders"),
        ("/api/orders/42/items", "orders"),
        ("/api/ordersx", "default"),
        ("/api/products/7", "products"),
        ("/api/ai/recommend", "ai"),
        ("/", "default"),
        ("/health", "default"),
    ],
)
def test_default_services(path: str, service: str) -> None:
    assert RouteTable(default_services()).resolve(path) == service


def test_longest_prefix_wins() -> None:
    table = RouteTable(
        {
            "api": ServiceConfig(prefixes=("/api",)),
            "orders": ServiceConfig(prefixes=("/api/orders",)),
            "exports": ServiceConfig(prefixes=("/api/orders/export/",)),
        }
    )
    assert table.resolve("/api/orders/export/csv") == "exports"
    assert table.resolve("/api/orders/1") == "orders"
    assert table.resolve("/api/users") == "api"


def test_unmatched_paths_go_to_default_even_without_a_catch_all() -> None:
    table = RouteTable({"orders": ServiceConfig(prefixes=("/api/orders",))})
    assert table.resolve("/other") == "default"
    assert table.plan("default").mirror


def test_plan_reflects_config() -> None:
    config = ServiceConfig(
        prefixes=("/x",), mirror=False, methods=("get",), sample_key_header="X-User", shadow_timeout=0.5
    )
    plan = RouteTable({"x": config}).plan("x")
    assert not plan.mirror
    assert plan.methods == frozenset({"GET"})
    assert plan.sample_key_header == b"x-user"
    assert plan.shadow_timeout == 0.5
    assert plan.ids.naming.key == "id" and plan.ids.naming.references == ("{singular}_id", "{singular}Id")
    custom = ServiceConfig(id_key="uid", id_fields=("{singular}_ref",), id_references={"author": "/users"})
    naming = RouteTable({"x": custom}).plan("x").ids.naming
    assert (naming.key, naming.references, dict(naming.explicit)) == ("uid", ("{singular}_ref",), {"author": "/users"})


def test_static_primaries() -> None:
    services = {"orders": ServiceConfig(primary="v2"), "products": ServiceConfig()}
    primaries = StaticPrimaries(services)
    assert primaries.primary("orders") == "v2"
    assert primaries.primary("products") == "v1"
    assert primaries.primary("unknown") == "v1"


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/api/products/../orders/1", "/api/orders/1"),
        ("/api/./orders", "/api/orders"),
        ("/api//orders/", "/api/orders/"),
        ("/../../etc", "/etc"),
        ("/api/orders/..", "/api/"),
        ("/a/b/.", "/a/b/"),
        ("/", "/"),
        ("/..", "/"),
    ],
)
def test_paths_are_normalised_as_nginx_matches_locations(path: str, normal: str) -> None:
    assert normalized_path(path) == normal


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/products/../orders/1", "orders"),
        ("/api/orders/../products/1", "products"),
        ("/api//orders/1", "orders"),
        ("/api/orders/./1", "orders"),
        ("/api/orders/../../health", "default"),
    ],
)
def test_routing_uses_the_normalised_path(path: str, service: str) -> None:
    assert RouteTable(default_services()).resolve(path) == service
