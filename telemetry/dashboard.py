"""The Grafana dashboard, generated: `python -m telemetry.dashboard > devnet/grafana/dashboards/bcfl.json`.

The dashboard is code so that every query is reviewable next to the metric
definitions; a test checks the checked-in JSON is what this module generates
(edit here, regenerate, commit both). One row per concern, as issue 5 lists:
chain, learning, network, node health. Every panel filters on the `node` label
that `telemetry.promconfig` attaches to each scrape target, through a
multi-value `$node` variable. The data source is provisioned with the fixed uid
`bcfl-prometheus` (devnet/grafana/provisioning/datasources/prometheus.yml).

Grafana JSON model: https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/
"""

from __future__ import annotations

import json
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "bcfl-prometheus"}
N = '{node=~"$node"}'
RI = "$__rate_interval"


def _rate(metric: str, by: str, extra: str = "") -> str:
    sel = '{node=~"$node"' + (", " + extra if extra else "") + "}"
    return f"sum by ({by}) (rate({metric}{sel}[{RI}]))"


def _quantile(q: float, metric: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{N}[{RI}])))"


def _mean(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}_sum{N}[{RI}])) / sum by ({by}) (rate({metric}_count{N}[{RI}]))"


class _Layout:
    """Places panels left to right, 3 per row of the grid, and numbers them."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        if self.x:
            self.y += 8
            self.x = 0
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        unit: str = "short",
        kind: str = "timeseries",
        description: str = "",
    ) -> None:
        self.panels.append(
            {
                "type": kind,
                "id": self._id(),
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": 8, "x": self.x, "y": self.y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {
                        "datasource": DATASOURCE,
                        "expr": expr,
                        "legendFormat": legend,
                        "refId": chr(ord("A") + i),
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        self.x += 8
        if self.x >= 24:
            self.x = 0
            self.y += 8

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def build_dashboard() -> dict[str, Any]:
    """The dashboard JSON model as a dict."""
    d = _Layout()
    d.row("Chain")
    d.panel("Height per node", [(f"bcfl_chain_height{N}", "{{node}}")], "none")
    d.panel(
        "Block interval",
        [
            (_quantile(0.5, "bcfl_block_interval_seconds", "node"), "{{node}} p50"),
            (_quantile(0.95, "bcfl_block_interval_seconds", "node"), "{{node}} p95"),
        ],
        "s",
    )
    d.panel(
        "Rounds per height (mean)",
        [(_mean("bcfl_consensus_rounds_per_height", "node"), "{{node}}")],
        "none",
        description="1 means every height committed in its first round.",
    )
    d.panel(
        "Missing and Byzantine validators",
        [
            (f"bcfl_consensus_missing_validators{N}", "{{node}} missing precommits"),
            (f"bcfl_consensus_byzantine_validators{N}", "{{node}} byzantine"),
            (_rate("bcfl_byzantine_evidence_total", "node, kind"), "{{node}} evidence {{kind}}/s"),
        ],
        "none",
        description=(
            "Missing: validators from whom this node saw no precommit for the height before"
            " the last committed one (late votes included): 0 on a healthy chain; a validator"
            " that stays missing is down or cut off."
        ),
    )
    d.panel(
        "Blocks committed by kind",
        [(_rate("bcfl_blocks_committed_total", "node, kind"), "{{node}} {{kind}}")],
        "ops",
        description="model = a certified model update; carry_over = the model was kept.",
    )
    d.panel(
        "Proposals and votes by result",
        [
            (_rate("bcfl_proposals_total", "result"), "proposal {{result}}"),
            (_rate("bcfl_votes_total", "type, result"), "{{type}} {{result}}"),
        ],
        "ops",
    )
    d.panel(
        "Consensus step duration (p95)",
        [(_quantile(0.95, "bcfl_consensus_step_duration_seconds", "step"), "{{step}}")],
        "s",
    )
    d.panel(
        "Certificate size (p50)",
        [(_quantile(0.5, "bcfl_certificate_size_bytes", "kind"), "{{kind}}")],
        "bytes",
    )

    d.row("Learning")
    d.panel(
        "Global model metric (validation)",
        [(f"bcfl_model_validation_metric{N}", "{{node}} {{metric}}")],
        "none",
        description="The committed global model on each node's private validation split.",
    )
    d.panel(
        "Global model loss (validation)", [(f"bcfl_model_validation_loss{N}", "{{node}}")], "none"
    )
    d.panel(
        "Attested improvement",
        [(f"bcfl_model_attested_improvement{N}", "{{node}}")],
        "none",
        description="Median improvement the validators certified for the last model block.",
    )
    d.panel(
        "Updates received, accepted, rejected",
        [
            (_rate("bcfl_updates_received_total", "node"), "{{node}} received"),
            (_rate("bcfl_updates_accepted_total", "node"), "{{node}} accepted"),
            (_rate("bcfl_updates_rejected_total", "reason"), "rejected: {{reason}}"),
        ],
        "ops",
    )
    d.panel(
        "Attestations by verdict",
        [(_rate("bcfl_attestations_total", "verdict"), "{{verdict}}")],
        "ops",
    )
    d.panel(
        "Differential-privacy budget spent",
        [
            (f"bcfl_dp_epsilon_spent{N}", "{{node}} epsilon"),
            (f"bcfl_dp_budget_exhausted{N}", "{{node}} budget spent (1: stopped)"),
        ],
        "none",
    )
    d.panel(
        "Training, evaluation, aggregation (p50)",
        [
            (_quantile(0.5, "bcfl_training_duration_seconds", "node"), "{{node}} train"),
            (_quantile(0.5, "bcfl_evaluation_duration_seconds", "node"), "{{node}} evaluate"),
            (_quantile(0.5, "bcfl_aggregation_duration_seconds", "node"), "{{node}} aggregate"),
        ],
        "s",
    )

    d.row("Network")
    d.panel(
        "Peers",
        [
            (f"bcfl_peers{N}", "{{node}} peers"),
            (f"bcfl_peers_quorum{N}", "{{node}} needed for quorum"),
        ],
        "none",
    )
    d.panel(
        "Gossip messages by topic",
        [(_rate("bcfl_gossip_messages_total", "topic, direction"), "{{topic}} {{direction}}")],
        "ops",
    )
    d.panel(
        "Gossip bytes by topic",
        [(_rate("bcfl_gossip_bytes_total", "topic, direction"), "{{topic}} {{direction}}")],
        "Bps",
    )
    d.panel(
        "Rejected messages by topic and reason",
        [
            (_rate("bcfl_gossip_rejected_total", "topic, reason"), "{{topic}} {{reason}}"),
            (_rate("bcfl_connections_refused_total", "reason"), "connection refused {{reason}}"),
        ],
        "ops",
    )
    d.panel(
        "Messages the consensus core refused, by reason",
        [(_rate("bcfl_consensus_rejected_total", "reason"), "{{reason}}")],
        "ops",
    )
    d.panel(
        "Blob transfer rate",
        [
            (_rate("bcfl_blob_transfer_bytes_total", "node, direction"), "{{node}} {{direction}}"),
            (
                _rate("bcfl_blob_transfers_total", "direction", 'result="failed"'),
                "failed {{direction}}",
            ),
        ],
        "Bps",
    )
    d.panel(
        "Blob transfer duration (p95)",
        [(_quantile(0.95, "bcfl_blob_transfer_duration_seconds", "direction"), "{{direction}}")],
        "s",
    )
    d.panel(
        "Sync",
        [
            (f"bcfl_sync_target_height{N} - bcfl_chain_height{N}", "{{node}} blocks behind"),
            (f"bcfl_sync_state{N} == 1", "{{node}} {{state}}"),
            (_rate("bcfl_sync_blocks_total", "node"), "{{node}} synced blocks/s"),
        ],
        "none",
    )

    d.row("Node health")
    d.panel("Scrape target up", [('up{job="bcfl", node=~"$node"}', "{{node}}")], "none")
    d.panel(
        "Event-loop lag (p99)",
        [(_quantile(0.99, "bcfl_event_loop_lag_seconds", "node"), "{{node}}")],
        "s",
        description="Above ~0.1 s the node answers consensus messages late.",
    )
    d.panel("CPU", [(f"rate(process_cpu_seconds_total{N}[{RI}])", "{{node}}")], "percentunit")
    d.panel("Memory (RSS)", [(f"process_resident_memory_bytes{N}", "{{node}}")], "bytes")
    d.panel(
        "Phase durations of a height (p50)",
        [(_quantile(0.5, "bcfl_height_phase_duration_seconds", "phase"), "{{phase}}")],
        "s",
    )
    d.panel(
        "Storage size",
        [
            (f"bcfl_store_database_bytes{N}", "{{node}} database"),
            (f"bcfl_store_blob_bytes{N}", "{{node}} blobs"),
        ],
        "bytes",
        description="Chain database (with its WAL) and blob directory, measured every 5 s.",
    )
    d.panel(
        "Store write duration (p95)",
        [(_quantile(0.95, "bcfl_store_write_duration_seconds", "kind"), "{{kind}}")],
        "s",
        description="Durable writes including fsync; slow disks show here first.",
    )
    d.panel(
        "Blobs pruned",
        [(_rate("bcfl_store_blobs_pruned_total", "node"), "{{node}}")],
        "ops",
        description="Old model blobs removed by the pruning policy (the chain is never pruned).",
    )

    return {
        "title": "bcfl nodes",
        "uid": "bcfl-nodes",
        "tags": ["bcfl"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "node",
                    "label": "Node",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(bcfl_build_info, node)", "refId": "node"},
                    "definition": "label_values(bcfl_build_info, node)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "sort": 1,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": d.panels,
    }


def dashboard_json() -> str:
    """The dashboard as the exact text of devnet/grafana/dashboards/bcfl.json."""
    return json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(dashboard_json(), end="")
