"""Issue 5's monitoring acceptance against a real 4-node devnet and a real Prometheus.

Four `bcfl run` daemons (the devnet launcher, a temporary directory) commit blocks
while the Debian `prometheus` binary scrapes every node's metrics port once a
second. Once several blocks are in and Prometheus has seen them, the test checks:
every target is `up`; `promtool check metrics` is clean on every node's
`/metrics`; every PromQL expression of every dashboard panel returns data (a
panel with no series fails the test: the driver must record what the dashboard
shows); every alert rule parses and evaluates without error. The devnet and
Prometheus are always stopped.

Short consensus timeouts keep a height at a few seconds on a loaded 2-core CI
machine; the panels' rate windows (`$__rate_interval` = 10 s in the harness)
then contain at least one commit.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from monitoring_harness import PrometheusHarness, promtool_check_metrics, substitute

from devnet.launcher import DevnetNode, DevnetSpec, create, start, wait_for_blocks
from devnet.monitoring import start_prometheus, write_scrape_config
from devnet.processes import NodeProcess, stop_all

pytestmark = pytest.mark.slow

NODES = 4
BLOCKS = 4
DEVNET_TIMEOUT_S = 60.0


@dataclass
class Running:
    """A started devnet with a Prometheus scraping it."""

    nodes: list[DevnetNode]
    processes: list[NodeProcess]
    prometheus: PrometheusHarness


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A 4-node devnet past BLOCKS blocks, scraped by a real Prometheus."""
    directory = tmp_path_factory.mktemp("devnet")
    spec = DevnetSpec(directory=directory, nodes=NODES, update_window_s=5.0, attestation_s=5.0)
    nodes = create(spec)
    processes: list[NodeProcess] = []
    try:
        processes = start(directory, nodes)
        targets = [(n.name, f"127.0.0.1:{n.metrics_port}") for n in nodes]
        with PrometheusHarness(targets, tmp_path_factory.mktemp("prometheus")) as prom:
            wait_for_blocks(nodes, processes, BLOCKS, DEVNET_TIMEOUT_S)
            prom.wait_targets_up()
            # Prometheus has scraped every node at the height the launcher saw.
            prom.wait_for_data(f"bcfl_chain_height >= {BLOCKS}", series=NODES, timeout_s=15)
            # A commit inside the panels' rate window, on every node.
            prom.wait_for_data(
                substitute(
                    "sum by (node) (rate(bcfl_blocks_committed_total[$__rate_interval])) > 0"
                ),
                series=NODES,
                timeout_s=30,
            )
            yield Running(nodes, processes, prom)
    finally:
        stop_all(directory, processes)


def test_every_node_is_scraped_and_up(devnet: Running) -> None:
    """Prometheus scrapes all four daemons successfully, each under its node label."""
    up = devnet.prometheus.query('up{job="bcfl"} == 1')
    assert sorted(s["metric"]["node"] for s in up) == [n.name for n in devnet.nodes]


def test_promtool_finds_no_problem_in_any_node_metrics(devnet: Running) -> None:
    """`promtool check metrics` is clean on every daemon's /metrics."""
    for node in devnet.nodes:
        url = f"http://127.0.0.1:{node.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
        assert b"bcfl_build_info" in body
        assert promtool_check_metrics(body) == "", node.name


def test_every_panel_returns_data_and_every_rule_evaluates(devnet: Running) -> None:
    """No dashboard panel is empty on a real devnet; no alert rule errors."""
    started = time.monotonic()
    failures = devnet.prometheus.check_dashboard_and_rules()
    assert not failures, "\n".join(failures)
    assert time.monotonic() - started < 60


def test_nodes_agree_and_report_the_model(devnet: Running) -> None:
    """The dashboard's chain and learning rows show real values: heights and a model AUC."""
    prom = devnet.prometheus
    heights = {s["metric"]["node"]: float(s["value"][1]) for s in prom.query("bcfl_chain_height")}
    assert len(heights) == NODES and min(heights.values()) >= BLOCKS
    auc = prom.query('bcfl_model_validation_metric{metric="auc"}')
    assert auc and all(0.5 < float(s["value"][1]) <= 1.0 for s in auc)
    peers = prom.query("bcfl_peers >= bcfl_peers_quorum")
    assert len(peers) == NODES


HEALTHY_DEVNET = {
    # Per node, on a healthy devnet: what the driver must record for its panel to mean anything.
    "steps observed": 'sum by (node) (bcfl_consensus_step_duration_seconds_count{step="prevote"}) > 0',
    "commit step observed": 'bcfl_consensus_step_duration_seconds_count{step="commit"} > 0',
    "proposals accepted": 'bcfl_proposals_total{result="accepted"} > 0',
    "prevotes accepted": 'bcfl_votes_total{type="prevote", result="accepted"} > 0',
    "precommits accepted": 'bcfl_votes_total{type="precommit", result="accepted"} > 0',
    "phases observed": 'bcfl_height_phase_duration_seconds_count{phase="block_interval"} > 0',
    "database size": "bcfl_store_database_bytes > 0",
    "blob store size": "bcfl_store_blob_bytes > 0",
    "sync target not below height": "bcfl_sync_target_height - bcfl_chain_height >= 0",
    "training observed": "bcfl_training_duration_seconds_count > 0",
    "improvement attested": "bcfl_model_attested_improvement",
}


def test_panels_show_what_a_healthy_devnet_does(devnet: Running) -> None:
    """Every node records steps, accepted votes, store sizes, ...: no panel is stuck at 0 or NaN."""
    empty = {
        name: expr
        for name, expr in HEALTHY_DEVNET.items()
        if len(devnet.prometheus.query(expr)) != NODES
    }
    assert not empty, empty


def test_harness_would_catch_an_empty_panel(devnet: Running, tmp_path: Path) -> None:
    """A panel querying a metric the daemons do not export is reported (the check can fail)."""
    dashboard = tmp_path / "ghost.json"
    dashboard.write_text(
        '{"panels": [{"title": "Ghost", "targets": [{"expr": "bcfl_ghost_total"}]}]}'
    )
    failures = devnet.prometheus.check_dashboard_and_rules(dashboard)
    assert any("'Ghost': no data" in f for f in failures)


def test_devnet_prometheus_starts_ready_with_every_node_and_the_rules(tmp_path: Path) -> None:
    """`bcfl devnet up --prometheus`'s server answers at its URL, scrapes each node, loads rules."""
    nodes = [DevnetNode(f"node{i}", tmp_path / f"node{i}", 0, 19100 + i) for i in range(2)]
    process, url = start_prometheus(tmp_path, write_scrape_config(tmp_path, nodes))
    try:
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 20
        names: list[str] = []
        while len(names) < len(nodes) and time.monotonic() < deadline:  # discovery is async
            with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=10) as reply:
                active = json.loads(reply.read())["data"]["activeTargets"]
            names = sorted(t["labels"]["node"] for t in active)
            time.sleep(0.2)
        assert names == ["node0", "node1"]
        with urllib.request.urlopen(f"{url}/api/v1/rules", timeout=10) as reply:
            groups = json.loads(reply.read())["data"]["groups"]
        assert any(r["name"] == "BcflNodeNotCommitting" for g in groups for r in g["rules"])
    finally:
        process.terminate()
        process.wait(timeout=10)
