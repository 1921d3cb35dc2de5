"""Prometheus configuration for a set of bcfl nodes, and where the shipped monitoring files live.

`bcfl devnet up` calls `write_prometheus_config` with its nodes' metrics
addresses; the compose stack uses `devnet/prometheus/prometheus.yml`, which is
this function's output for the compose service names (a test keeps the two in
step). Every target gets a `node` label, which the dashboard and the alerts
group by. The rules file is the same `devnet/prometheus/alerts.yml` everywhere.

The file is written as YAML by hand (strings JSON-quoted, which YAML accepts),
so the project needs no YAML library. Prometheus configuration reference:
https://prometheus.io/docs/prometheus/latest/configuration/configuration/
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

DEVNET_DIR = Path(__file__).resolve().parents[1] / "devnet"
ALERTS_PATH = DEVNET_DIR / "prometheus" / "alerts.yml"
DASHBOARD_PATH = DEVNET_DIR / "grafana" / "dashboards" / "bcfl.json"
COMPOSE_PROMETHEUS_PATH = DEVNET_DIR / "prometheus" / "prometheus.yml"
JOB = "bcfl"


def _q(value: str) -> str:
    return json.dumps(value)


def prometheus_config(
    targets: Sequence[tuple[str, str]],
    rules_path: str | os.PathLike[str] | None = ALERTS_PATH,
    *,
    scrape_interval_s: float = 2.0,
    evaluation_interval_s: float | None = None,
) -> str:
    """The text of a prometheus.yml scraping `targets` [(node name, "host:port"), ...]."""
    if not targets:
        raise ValueError("at least one scrape target is needed")
    names = [name for name, _ in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"node names must be unique, got {names}")
    interval = _duration(scrape_interval_s)
    evaluation = _duration(evaluation_interval_s or scrape_interval_s)
    lines = [
        "# Written by bcfl (telemetry.promconfig.write_prometheus_config); regenerate, do not edit.",
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {interval}",
        f"  evaluation_interval: {evaluation}",
    ]
    if rules_path is not None:
        lines += ["rule_files:", f"  - {_q(os.fspath(rules_path))}"]
    lines += [
        "scrape_configs:",
        f"  - job_name: {_q(JOB)}",
        '    metrics_path: "/metrics"',
        "    static_configs:",
    ]
    for name, address in targets:
        if ":" not in address:
            raise ValueError(f"target {address!r} for {name} must be host:port")
        lines += [
            f"      - targets: [{_q(address)}]",
            "        labels:",
            f"          node: {_q(name)}",
        ]
    return "\n".join(lines) + "\n"


def write_prometheus_config(
    path: str | os.PathLike[str],
    targets: Sequence[tuple[str, str]],
    rules_path: str | os.PathLike[str] | None = ALERTS_PATH,
    *,
    scrape_interval_s: float = 2.0,
) -> Path:
    """Write a prometheus.yml for `targets` to `path` (parents created); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        prometheus_config(targets, rules_path, scrape_interval_s=scrape_interval_s),
        encoding="utf-8",
    )
    return out


def _duration(seconds: float) -> str:
    if seconds <= 0:
        raise ValueError("intervals must be positive")
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"
