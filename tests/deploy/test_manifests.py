"""The deployment files are valid and true to the code: Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate), compose.yaml against the compose-spec schema (check-jsonschema's copy), and every command,
setting and probe path they use against shadowdiff itself."""

from __future__ import annotations

import json
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml

from proxy.cli import app
from proxy.config import load_settings

ROOT = Path(__file__).parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes still widely run and the newest the package knows."""


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in documents(path):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def cli_options(command: str) -> set[str]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {opt for param in click_command.params for opt in (*param.opts, *param.secondary_opts)}


def assert_cli(args: list[str]) -> None:
    """`shadowdiff ARGS` names a command and only options it has."""
    command, *rest = args
    options = cli_options(command)
    used = {arg.split("=", 1)[0] for arg in rest if arg.startswith("-")}
    assert used <= options, f"shadowdiff {command} has no {sorted(used - options)}"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", sorted(KUBERNETES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_is_valid_for_kubernetes(path: Path, version: str) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or wrong field


def test_a_broken_manifest_is_caught() -> None:
    deployment = manifests()["Deployment/shadowdiff"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"not": "a port"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_the_deployment_is_what_scaling_out_needs() -> None:
    found = manifests()
    deployment = found["Deployment/shadowdiff"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8900"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"proxy": 8000, "admin": 8900}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "admin"}
    env = {e["name"]: e for e in container["env"]}
    assert env["SHADOWDIFF_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "shadowdiff"
    assert env["SHADOWDIFF_DATABASE_URL"]["value"].startswith("postgresql+asyncpg://")
    assert "admin-token" in found["Secret/shadowdiff"]["stringData"]
    for name in ("Service/shadowdiff", "Service/shadowdiff-admin"):
        assert found[name]["spec"]["selector"].items() <= labels.items()
    assert found["PodDisruptionBudget/shadowdiff"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert_cli(container["args"])


def test_the_config_map_is_a_valid_configuration_and_the_probes_exist(tmp_path: Path) -> None:
    config = tmp_path / "shadowdiff.toml"
    config.write_text(manifests()["ConfigMap/shadowdiff"]["data"]["shadowdiff.toml"], encoding="utf-8")
    environ = {"SHADOWDIFF_ADMIN_TOKEN": "t", "SHADOWDIFF_DATABASE_URL": "postgresql+asyncpg://u:p@db/shadowdiff"}
    settings = load_settings(config, environ=environ)
    assert settings.workers == 2 and settings.admin_host == "0.0.0.0" and settings.admin_token == "t"
    assert "shadowdiff-admin" in settings.admin_allowed_hosts

    from proxy.control.admin import AdminApi

    paths = {route.path for route in AdminApi.routes(object.__new__(AdminApi))}  # type: ignore[attr-defined]
    assert {"/ready", "/live", "/metrics"} <= paths


def compose_schema() -> dict[str, Any]:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def test_compose_yaml_is_valid_compose_and_uses_real_commands() -> None:
    (compose,) = documents(ROOT / "compose.yaml")
    jsonschema.validate(compose, compose_schema())
    commands = {
        name: service["command"]
        for name, service in compose["services"].items()
        if service.get("image", "").startswith("shadowdiff") or "build" in service
    }
    assert {"proxy", "legacy", "v2", "seed"} <= set(commands)
    for command in commands.values():
        args = command if isinstance(command, list) else shlex.split(command)
        assert_cli(args)
    proxy = shlex.split(compose["services"]["proxy"]["command"])
    assert "--workers" in proxy and any(a.startswith("postgresql") for a in proxy)


def test_a_broken_compose_file_is_caught() -> None:
    (compose,) = documents(ROOT / "compose.yaml")
    compose["services"]["proxy"]["replica"] = 2  # a typo: compose would refuse the file
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(compose, compose_schema())
