"""The shipped monitoring files: dashboard in step with its generator, rules and configs pass promtool."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from telemetry.dashboard import build_dashboard, dashboard_json
from telemetry.metrics import NodeMetrics
from telemetry.promconfig import (
    ALERTS_PATH,
    COMPOSE_PROMETHEUS_PATH,
    DASHBOARD_PATH,
    prometheus_config,
    write_prometheus_config,
)
from telemetry.synthetic import exercise_every_metric


def _promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, timeout=60)


def _exposition() -> str:
    metrics = NodeMetrics(node_id="n", chain_id="c", version="0.1.0")
    exercise_every_metric(metrics, 1, random.Random(0))
    return metrics.render().decode()


def test_checked_in_dashboard_is_what_the_generator_builds() -> None:
    """devnet/grafana/dashboards/bcfl.json == python -m telemetry.dashboard."""
    assert DASHBOARD_PATH.read_text(encoding="utf-8") == dashboard_json()


def test_dashboard_has_one_row_per_concern() -> None:
    """Rows: Chain, Learning, Network, Node health; panel ids are unique."""
    panels = build_dashboard()["panels"]
    assert [p["title"] for p in panels if p["type"] == "row"] == [
        "Chain",
        "Learning",
        "Network",
        "Node health",
    ]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))


def test_dashboard_and_rules_only_name_exported_metrics() -> None:
    """Every bcfl_/process_ name in a query is a family (or sample) the node exports."""
    exported = {line.split("{")[0].split(" ")[0] for line in _exposition().splitlines() if line}
    text = DASHBOARD_PATH.read_text() + ALERTS_PATH.read_text()
    used = set(re.findall(r"\b(?:bcfl|process)_[a-z0-9_]+", text))
    assert used and not used - exported, sorted(used - exported)


def test_promtool_accepts_the_alert_rules() -> None:
    """promtool check rules devnet/prometheus/alerts.yml."""
    result = _promtool("check", "rules", str(ALERTS_PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"8 rules found" in result.stdout


def test_promtool_finds_no_problem_in_the_exposition() -> None:
    """promtool check metrics on a registry with every metric exercised."""
    result = _promtool("check", "metrics", stdin=_exposition().encode())
    assert result.returncode == 0, result.stdout + result.stderr


def test_written_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """A devnet config (4 nodes, shipped rules) passes promtool check config."""
    targets = [(f"node{i}", f"127.0.0.1:{9101 + i}") for i in range(4)]
    path = write_prometheus_config(tmp_path / "p" / "prometheus.yml", targets, ALERTS_PATH)
    result = _promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'node: "node3"' in path.read_text()


def test_compose_prometheus_config_is_the_generated_one() -> None:
    """devnet/prometheus/prometheus.yml is write_prometheus_config for the compose services."""
    expected = prometheus_config(
        [(f"node{i}", f"node{i}:9100") for i in range(4)],
        "/etc/prometheus/alerts.yml",
        scrape_interval_s=5,
    )
    assert COMPOSE_PROMETHEUS_PATH.read_text() == expected


@pytest.mark.parametrize(
    "targets",
    [[], [("a", "127.0.0.1:1"), ("a", "127.0.0.1:2")], [("a", "127.0.0.1")]],
)
def test_prometheus_config_refuses_bad_targets(targets: list[tuple[str, str]]) -> None:
    """No targets, duplicate node names, or an address without a port are refused."""
    with pytest.raises(ValueError):
        prometheus_config(targets)
