"""The compose stack (devnet/compose.yml): a structural check of the file and of what it mounts.

`docker compose config` (the plugin) or Debian's `docker-compose` 1.29, which CI
installs, validates the file against the Compose schema. The file is also checked
structurally, so that what it mounts is provably what the devnet uses: top-level
and service keys are Compose Specification keys, the N=4 nodes, Prometheus and
Grafana are there, and every monitoring file it mounts is the very file the
devnet uses. When `docker compose` is available the test also runs it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from telemetry.promconfig import (
    ALERTS_PATH,
    COMPOSE_PROMETHEUS_PATH,
    DASHBOARD_PATH,
    DEVNET_DIR,
)

COMPOSE = DEVNET_DIR / "compose.yml"
# https://github.com/compose-spec/compose-spec/blob/main/spec.md
TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "volumes", "ports", "depends_on",
    "restart", "healthcheck", "networks", "expose", "user", "working_dir", "labels",
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def _mounts(service: dict) -> dict[Path, str]:  # type: ignore[type-arg]
    """Bind mounts of a service: host path (resolved against devnet/) -> container path."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[(DEVNET_DIR / source).resolve()] = target
    return mounts


def test_compose_uses_only_compose_spec_keys(compose: dict) -> None:  # type: ignore[type-arg]
    """Top-level and service keys belong to the Compose Specification."""
    assert set(k for k in compose if not k.startswith("x-")) <= TOP_LEVEL
    for name, service in compose["services"].items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"], (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in compose["volumes"], (name, volume)


def test_compose_runs_four_nodes_prometheus_and_grafana(compose: dict) -> None:  # type: ignore[type-arg]
    """node0..node3 run `bcfl run --home /data/nodeI`; published ports bind 127.0.0.1."""
    services = compose["services"]
    for i in range(4):
        assert services[f"node{i}"]["command"] == ["run", "--home", f"/data/node{i}"]
    assert {"prometheus", "grafana", "setup"} <= set(services)
    build = services["setup"]["build"]
    assert (DEVNET_DIR / build["context"] / build["dockerfile"]).resolve() == (
        DEVNET_DIR / "Dockerfile"
    )
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_compose_mounts_the_devnet_rules_config_and_dashboard(compose: dict) -> None:  # type: ignore[type-arg]
    """Prometheus mounts alerts.yml and prometheus.yml; Grafana the dashboard and provisioning."""
    prometheus = _mounts(compose["services"]["prometheus"])
    assert prometheus[ALERTS_PATH.resolve()] == "/etc/prometheus/alerts.yml"
    assert prometheus[COMPOSE_PROMETHEUS_PATH.resolve()] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load(COMPOSE_PROMETHEUS_PATH.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    targets = [t for c in config["scrape_configs"][0]["static_configs"] for t in c["targets"]]
    assert targets == [f"node{i}:9100" for i in range(4)]

    grafana = _mounts(compose["services"]["grafana"])
    dashboards_target = grafana[DASHBOARD_PATH.parent.resolve()]
    provisioning_target = grafana[(DEVNET_DIR / "grafana" / "provisioning").resolve()]
    assert provisioning_target == "/etc/grafana/provisioning"
    provider = yaml.safe_load((DEVNET_DIR / "grafana/provisioning/dashboards/bcfl.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == dashboards_target
    datasource = yaml.safe_load(
        (DEVNET_DIR / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["uid"] in DASHBOARD_PATH.read_text()


def test_setup_script_initialises_every_node_and_a_genesis() -> None:
    """compose-setup.sh is valid sh and creates homes for the nodes and one genesis."""
    script = DEVNET_DIR / "compose-setup.sh"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert "bcfl init" in text and "bcfl genesis" in text


def _compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or Debian's `docker-compose` 1.29, whichever exists."""
    if shutil.which("docker") is not None:
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") is not None else None


@pytest.mark.skipif(
    _compose_command() is None, reason="neither docker compose nor docker-compose is installed"
)
def test_docker_compose_config_accepts_the_file() -> None:
    """`docker compose config` validates the file against the Compose schema."""
    command = _compose_command()
    assert command is not None
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
