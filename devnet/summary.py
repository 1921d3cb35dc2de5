"""The `bcfl devnet up --json` result: blocks, phases, the ledger and each node's figures.

Collected from the nodes' HTTP APIs and metrics, the first honest node's store, and the
resource monitor (devnet/resources.py); the launcher (devnet/launcher.py) calls `collect`.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from consensus.types import Privacy
from devnet.launcher import DevnetNode, DevnetSpec
from devnet.resources import ResourceMonitor


def collect(
    spec: DevnetSpec,
    nodes: list[DevnetNode],
    blocks: int | None,
    monitor: ResourceMonitor | None = None,
) -> dict[str, Any]:
    """The `--json` result, from the nodes' APIs and the first honest node's blob store.

    With `monitor`, each node also gets `cpu_seconds_per_height` and `peak_rss_bytes`
    (devnet/resources.py).
    """
    from learning import (
        apply_delta,
        builtin_task,
        default_train_config,
        evaluate,
        global_test,
        initial_weights,
        pooled_train,
        train,
    )
    from node.blobs import BlobCorruptError
    from node.chain import Chain
    from node.home import NodeHome
    from node.store import ChainStore

    task = builtin_task(spec.dataset, model=spec.model)
    metric = task.metric
    test = global_test(task, spec.seed)
    chains = {n.name: (n.get("/chain", timeout=10.0) or []) for n in nodes}
    node_rows = [
        {
            "name": n.name,
            "byzantine": n.byzantine or None,
            "observer": n.observer,
            "block_hashes": {str(b["height"]): b["hash"] for b in chains[n.name]},
            "rejections": rejections_of(n.get_text("/metrics", timeout=10.0) or ""),
            "privacy": _site_privacy(n),
            **(monitor or ResourceMonitor()).report(n.name),
        }
        for n in nodes
    ]
    reference = next(n for n in nodes if not n.byzantine)
    store = ChainStore.open(NodeHome(reference.home))
    chain = Chain(store)
    init = initial_weights(task, spec.seed)
    genesis_metric = evaluate(task, init, test)[metric]
    rows = []
    ledger: dict[str, Any] = {}
    try:
        for summary in chains[reference.name]:
            if blocks is not None and summary["height"] > blocks:
                break
            ledger = summary.get("ledger") or ledger
            model_hash = bytes.fromhex(summary["model_hash"])
            try:
                model = chain.blob(model_hash)
            except BlobCorruptError:
                model = None  # a damaged blob has no metric; `bcfl chain verify` reports it
            value = None if model is None else evaluate(task, model, test)[metric]
            rows.append(
                {
                    "height": summary["height"],
                    "metric": value,
                    "carry_over": summary["kind"] != "model",
                    "carry_over_reason": summary.get("carry_over_reason"),
                    "updates": summary.get("updates"),
                    "rejected": summary.get("rejected"),
                    "phases": summary.get("phases") or {},
                    "reputation": summary.get("reputation"),
                    "time_ms": summary.get("time_ms"),
                    "validators": summary.get("validators"),
                    "commit_signers": summary.get("commit_signer_names"),
                }
            )
    finally:
        store.close()
    cfg = default_train_config(task)
    epochs = max(1, len(rows)) * cfg.epochs
    from dataclasses import replace

    delta, _, _ = train(task, init, pooled_train(task, spec.seed), replace(cfg, epochs=epochs))
    centralized = evaluate(task, apply_delta(init, delta), test)[metric]
    final = next((r["metric"] for r in reversed(rows) if r["metric"] is not None), genesis_metric)
    return {
        "metric_name": metric,
        "nodes": node_rows,
        "blocks": rows,
        "ledger": ledger,
        "genesis_metric": genesis_metric,
        "final_metric": final,
        "centralized_metric": centralized,
        "phase_medians": _phase_medians(rows),
        "privacy": _privacy(spec.privacy),
        "secure_aggregation": bool(spec.privacy is not None and spec.privacy.secure_aggregation),
    }


def _site_privacy(node: DevnetNode) -> dict[str, Any] | None:
    """A node's DP budget: the ledger's view (`/status`) and its own (`/metrics` gauges)."""
    ledger_view = (node.get("/status", timeout=10.0) or {}).get("privacy")
    if ledger_view is None:
        return None
    own = gauges_of(node.get_text("/metrics", timeout=10.0) or "", SITE_DP_GAUGES)
    return {"ledger": ledger_view, "site": own}


SITE_DP_GAUGES = ("bcfl_dp_epsilon_spent", "bcfl_dp_budget_exhausted")


def gauges_of(metrics_text: str, names: tuple[str, ...]) -> dict[str, float]:
    """name -> value of unlabelled gauges (the node's own labels aside) on a /metrics page."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name = line.partition("{")[0].partition(" ")[0]
        if name in names and not line.startswith("#"):
            out[name] = float(line.rsplit(" ", 1)[1])
    return out


def inbound_totals(metrics_text: str, names: tuple[str, ...]) -> list[float]:
    """Per name, the sum over its samples labelled direction="in" on a /metrics page."""
    totals = dict.fromkeys(names, 0.0)
    for line in metrics_text.splitlines():
        name = line.partition("{")[0]
        if name in totals and 'direction="in"' in line:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return [totals[n] for n in names]


def _privacy(policy: Privacy | None) -> dict[str, Any] | None:
    """The genesis privacy policy of the run (None with DP off)."""
    if policy is None or not policy.dp_enabled:
        return None
    return {
        "clip_norm": policy.clip_norm,
        "noise_multiplier": policy.noise_multiplier,
        "delta": policy.delta,
        "epsilon_budget": policy.epsilon_budget,
    }


REJECTION_COUNTERS = ("bcfl_gossip_rejected_total", "bcfl_consensus_rejected_total")


def rejections_of(metrics_text: str) -> dict[str, int]:
    """reason -> count of the node's own refusals, from its /metrics page: the gossip edge's
    `bcfl_gossip_rejected_total` (summed over topics) plus the core's
    `bcfl_consensus_rejected_total`; reasons never seen are left out."""
    out: dict[str, int] = {}
    for line in metrics_text.splitlines():
        name, _, rest = line.partition("{")
        if name not in REJECTION_COUNTERS or "} " not in rest:
            continue
        labels, _, value = rest.rpartition("} ")
        reason = next(
            (p.split("=", 1)[1].strip('"') for p in labels.split(",") if p.startswith("reason=")),
            "",
        )
        count = int(float(value))
        if reason and count:
            out[reason] = out.get(reason, 0) + count
    return dict(sorted(out.items()))


def _phase_medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    names = sorted({k for r in rows for k in r["phases"]})
    out = {}
    for name in names:
        values = [r["phases"][name] for r in rows if name in r["phases"]]
        if values:
            out[name] = median(values)
    intervals = [
        r["phases"]["block_interval"]
        - r["phases"].get("train", 0.0)
        - r["phases"].get("evaluate", 0.0)
        for r in rows
        if "block_interval" in r["phases"]
    ]
    if intervals:
        out["coordination_overhead"] = median(intervals)
    return out
