"""Settings: file < SHADOWDIFF_* env < overrides, errors that name key and value, the guide's USE_V2_* flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import (
    ConfigError,
    check_admin_exposure,
    configured_primary,
    guide_flag,
    is_loopback,
    load_settings,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shadowdiff.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert (settings.port, settings.admin_host, settings.admin_port, settings.workers) == (8000, "127.0.0.1", 8900, 1)
    assert settings.database_url == "sqlite+aiosqlite:///./shadowdiff.db"
    assert settings.admin_token is None
    assert {name: s.primary for name, s in settings.services.items()} == {
        "orders": "v1",
        "products": "v1",
        "ai": "v1",
        "default": "v1",
    }


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = write(tmp_path, 'port = 7000\nadmin_port = 7900\nv1_url = "http://file:1"\nqueue_size = 5\n')
    environ = {"SHADOWDIFF_PORT": "7100", "SHADOWDIFF_V1_URL": "http://env:1"}
    settings = load_settings(config, overrides={"port": 7200}, environ=environ)
    assert settings.port == 7200  # flag over env over file
    assert settings.v1_url == "http://env:1"  # env over file
    assert settings.admin_port == 7900  # file over default
    assert settings.queue_size == 5
    assert load_settings(config, overrides={"port": None}, environ=environ).port == 7100  # an unset flag is no override


def test_dashes_in_file_keys_are_accepted(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "admin-port = 7901\n"), environ={}).admin_port == 7901


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"port": "eighty"}, "Config 'port' has value 'eighty'. Input should be a valid integer"),
        ({"workers": 0}, "Config 'workers' has value 0. Input should be greater than or equal to 1"),
        ({"v1_url": "localhost:8001"}, "Config 'v1_url' has value 'localhost:8001'. Not an http:// or https:// URL"),
        ({"host_header": "keep"}, "Config 'host_header' has value 'keep'. Input should be 'preserve' or 'rewrite'"),
        ({"services": {"orders": {"primary": "v3"}}}, "Config 'services.orders.primary' has value 'v3'"),
        ({"services": {"orders": {"sample_rate": 2}}}, "Config 'services.orders.sample_rate' has value 2"),
        ({"colour": "red"}, "Config 'colour' has value 'red'. Extra inputs are not permitted"),
        ({"readiness": {"max_diff_rate": 2}}, "Config 'readiness.max_diff_rate' has value 2"),
        ({"port": 8900}, "port and admin_port are both 8900"),
        (
            {"services": {"orders": {"id_fields": ["*_id"]}}},
            "Config 'services.orders.id_fields' has value ['*_id']. '*_id' does not name a resource",
        ),
        (
            {"services": {"orders": {"id_references": {"author": "users"}}}},
            "'author' refers to 'users', which is not a collection path",
        ),
    ],
)
def test_bad_values_name_the_key_and_the_value(source: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides=source, environ={})
    assert message in str(caught.value)


def test_bad_env_values_name_the_key_and_the_value() -> None:
    with pytest.raises(ConfigError, match="Config 'admin_port' has value '99999'"):
        load_settings(environ={"SHADOWDIFF_ADMIN_PORT": "99999"})


def test_missing_and_broken_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(write(tmp_path, "port = = 1\n"), environ={})


def test_a_service_in_the_file_adjusts_the_built_in_ones(tmp_path: Path) -> None:
    config = write(tmp_path, '[services.orders]\nprimary = "v2"\n\n[services.search]\nprefixes = ["/api/search"]\n')
    services = load_settings(config, environ={}).services
    assert list(services) == ["orders", "products", "ai", "default", "search"]
    assert services["orders"].prefixes == ("/api/orders",)  # kept though the file did not repeat it
    assert services["orders"].primary == "v2"
    assert services["search"].prefixes == ("/api/search",)


def test_nested_env_sets_one_service_field() -> None:
    services = load_settings(environ={"SHADOWDIFF_SERVICES__AI__MIRROR": "false"}).services
    assert services["ai"].mirror is False and services["ai"].prefixes == ("/api/ai",)
    assert services["orders"].mirror is True


def test_an_empty_admin_token_means_no_token() -> None:
    assert load_settings(overrides={"admin_token": "  "}, environ={}).admin_token is None


# -- the migration guide's flags ----------------------------------------------------------------------------------


def primaries(environ: dict[str, str], config: Path | None = None) -> dict[str, str]:
    return {name: s.primary for name, s in load_settings(config, environ=environ).services.items()}


def test_use_v2_services_promotes_every_service() -> None:
    assert set(primaries({"USE_V2_SERVICES": "true"}).values()) == {"v2"}
    assert set(primaries({"USE_V2_SERVICES": "false"}).values()) == {"v1"}


@pytest.mark.parametrize(
    ("variable", "service"),
    [("USE_V2_ORDER_SERVICE", "orders"), ("USE_V2_PRODUCT_SERVICE", "products"), ("USE_V2_AI_SERVICE", "ai")],
)
def test_per_service_flags(variable: str, service: str) -> None:
    result = primaries({variable: "1"})
    assert result[service] == "v2"
    assert [name for name, side in result.items() if side == "v2"] == [service]


def test_a_per_service_flag_wins_over_use_v2_services() -> None:
    result = primaries({"USE_V2_SERVICES": "true", "USE_V2_ORDER_SERVICE": "false"})
    assert result == {"orders": "v1", "products": "v2", "ai": "v2", "default": "v2"}
    assert guide_flag("orders", {"USE_V2_SERVICES": "true", "USE_V2_ORDER_SERVICE": "false"}) == (
        "USE_V2_ORDER_SERVICE",
        False,
    )
    assert guide_flag("ai", {"USE_V2_SERVICES": "yes"}) == ("USE_V2_SERVICES", True)
    assert guide_flag("ai", {"USE_V2_SERVICES": ""}) is None


def test_guide_flags_win_over_the_config_file(tmp_path: Path) -> None:
    config = write(tmp_path, '[services.orders]\nprimary = "v2"\n')
    assert primaries({}, config)["orders"] == "v2"
    assert primaries({"USE_V2_SERVICES": "false"}, config)["orders"] == "v1"


def test_a_bad_flag_names_the_variable_and_the_value() -> None:
    with pytest.raises(ConfigError, match="USE_V2_SERVICES has value 'maybe'. Not a valid boolean"):
        load_settings(environ={"USE_V2_SERVICES": "maybe"})


def test_configured_primary_is_none_unless_set_explicitly(tmp_path: Path) -> None:
    plain = load_settings(environ={}).services
    assert configured_primary(plain["orders"]) is None
    flagged = load_settings(environ={"USE_V2_SERVICES": "false"}).services
    assert configured_primary(flagged["orders"]) == "v1"  # explicitly v1: a decision, unlike the default
    filed = load_settings(write(tmp_path, '[services.ai]\nprimary = "v2"\n'), environ={}).services
    assert configured_primary(filed["ai"]) == "v2" and configured_primary(filed["orders"]) is None


# -- the admin plane's exposure -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True)]
    + [("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("admin.internal", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_admin_exposure_needs_a_token_off_loopback() -> None:
    check_admin_exposure(load_settings(environ={}))
    check_admin_exposure(load_settings(overrides={"admin_host": "0.0.0.0", "admin_token": "t"}, environ={}))
    with pytest.raises(ConfigError, match="'admin_host' has value '0.0.0.0'"):
        check_admin_exposure(load_settings(overrides={"admin_host": "0.0.0.0"}, environ={}))


# -- the example file ---------------------------------------------------------------------------------------------


EXAMPLE = Path(__file__).parents[2] / "shadowdiff.example.toml"


def test_the_example_file_loads_and_holds_the_defaults() -> None:
    assert load_settings(EXAMPLE, environ={}) == load_settings(environ={})


def test_the_example_file_documents_every_setting() -> None:
    from diffs.rules import CompareRules, ListKey, NumericTolerance, TextSimilarity
    from proxy.config import CaptureConfig, NoiseConfig, ServiceConfig, Settings

    text = EXAMPLE.read_text(encoding="utf-8")
    models = (
        Settings,
        ServiceConfig,
        CaptureConfig,
        NoiseConfig,
        CompareRules,
        NumericTolerance,
        TextSimilarity,
        ListKey,
    )
    for model in models:
        missing = [name for name in model.model_fields if name not in text]
        assert not missing, f"{model.__name__}: {missing} not in shadowdiff.example.toml"


def test_other_commands_variables_do_not_disturb_the_proxy_settings() -> None:
    environ = {"SHADOWDIFF_LEGACY_PORT": "1", "SHADOWDIFF_ADMIN_URL": "http://x", "SHADOWDIFF_CONFIG": "x.toml"}
    assert load_settings(environ=environ) == load_settings(environ={})
